"""The whole access decision without a database: scopes cap, the client's own dossier, the
client's Consents decide, nested denies win, and nothing a caller holds less of ever opens
more. Property-based (hypothesis) over scopes and provision trees."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from consent.context import AccessContext, Kind
from consent.decision import AUDIT_TYPE, Reach, admits, reach, write_refusal
from consent.policy import Request, Target, check_consent, grant_from
from consent.scopes import parse_scopes
from tests.consents import privacy_consent

SERVED = frozenset({"Patient", "Observation", "CarePlan", "Encounter", "Organization", AUDIT_TYPE})
COMPARTMENT = frozenset({"Patient", "Observation", "CarePlan", "Encounter", AUDIT_TYPE})
NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
GP = "Organization/gp"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"

levels = st.sampled_from(["patient", "user", "system"])
types = st.sampled_from(["*", "Patient", "Observation", "CarePlan", "Encounter", AUDIT_TYPE])
letters = st.sets(st.sampled_from("cruds"), min_size=1).map(
    lambda s: "".join(c for c in "cruds" if c in s)
)
scope_words = st.builds(lambda lv, t, ls: f"{lv}/{t}.{ls}", levels, types, letters)
scope_texts = st.lists(scope_words, max_size=5).map(" ".join)
kinds = st.sampled_from([Kind.PATIENT, Kind.PRACTITIONER, Kind.SYSTEM, Kind.ADMIN])


def _who(kind: str, scope: str, patient: str | None = "anna") -> AccessContext:
    return AccessContext(
        kind=kind,
        client_id="app",
        scopes=parse_scopes(scope)[0],
        subject="x",
        token_id="t",
        patient=patient if kind == Kind.PATIENT else None,
    )


def _no_grants(action: str) -> tuple[()]:
    return ()


@given(kinds, scope_texts, st.sampled_from("cruds"))
def test_fewer_scopes_never_reach_more(kind: str, scope: str, letter: str) -> None:
    words = scope.split()
    full = reach(_who(kind, scope), letter, SERVED, COMPARTMENT, _no_grants)
    fewer = reach(_who(kind, " ".join(words[:-1])), letter, SERVED, COMPARTMENT, _no_grants)
    assert full.types is not None and fewer.types is not None
    assert fewer.types <= full.types


@given(kinds, scope_texts, st.sampled_from("cruds"))
def test_the_invariants_of_every_reach(kind: str, scope: str, letter: str) -> None:
    found = reach(_who(kind, scope), letter, SERVED, COMPARTMENT, _no_grants)
    assert found.types is not None and found.types <= SERVED
    if not found.types:
        return  # nothing reached at all
    if letter in "cud":
        assert AUDIT_TYPE not in found.types  # nobody writes the access log
    if kind == Kind.ADMIN:
        assert found.types <= (SERVED - COMPARTMENT) | {AUDIT_TYPE}
        assert found.patients is None
    elif kind == Kind.PATIENT:
        assert found.patients == frozenset({"anna"})
        if letter in "cud":
            assert found.types <= COMPARTMENT
    else:
        assert AUDIT_TYPE not in found.types
        assert found.patients == frozenset()  # no dossier of their own


@given(scope_texts)
def test_a_scope_of_another_level_grants_nothing(scope: str) -> None:
    user_only = " ".join(w for w in scope.split() if w.startswith("user/"))
    found = reach(_who(Kind.SYSTEM, user_only), "r", SERVED, COMPARTMENT, _no_grants)
    assert found.types == frozenset()


def test_the_client_reaches_their_own_dossier_and_nobody_elses() -> None:
    found = reach(_who(Kind.PATIENT, "patient/*.rs"), "r", SERVED, COMPARTMENT, _no_grants)
    assert admits(found, Target("Observation", "o", frozenset({"anna"}))).allowed
    assert not admits(found, Target("Observation", "o", frozenset({"bert"}))).allowed
    assert admits(found, Target("Organization", "gp", frozenset())).allowed  # the directory
    household = Target("CarePlan", "p", frozenset({"anna", "bert"}))
    assert not admits(found, household).allowed  # bert has not allowed it


def test_a_granular_scope_is_decided_in_searches_only() -> None:
    who = _who(Kind.PATIENT, "patient/Observation.rs?category=survey")
    found = reach(who, "r", SERVED, COMPARTMENT, _no_grants)
    assert found.types == frozenset({"Observation"})
    assert [t for t, _ in found.conditional] == ["Observation"]
    assert not admits(found, Target("Observation", "o", frozenset({"anna"}))).allowed


def test_only_the_client_makes_a_consent_active() -> None:
    consent = {"resourceType": "Consent", "status": "active"}
    assert write_refusal(_who(Kind.PRACTITIONER, "user/*.cruds"), consent)
    assert write_refusal(_who(Kind.PATIENT, "patient/*.cruds"), consent) is None
    proposed = {**consent, "status": "proposed"}
    assert write_refusal(_who(Kind.PRACTITIONER, "user/*.cruds"), proposed) is None


# -- provisions ------------------------------------------------------------------------

classes = st.lists(st.sampled_from(["Observation", "CarePlan", "Encounter"]), max_size=2)
labels = st.lists(st.sampled_from(["PSY", "SEX", "N"]), max_size=1)


@st.composite
def provisions(draw: Any, depth: int = 1) -> dict[str, Any]:
    provision: dict[str, Any] = {"type": draw(st.sampled_from(["permit", "deny"]))}
    if depth == 1:
        provision["type"] = "permit"
        provision["actor"] = [{"reference": {"reference": GP}}]
    if chosen := draw(classes):
        provision["class"] = [
            {"system": "http://hl7.org/fhir/resource-types", "code": c} for c in chosen
        ]
    if chosen := draw(labels):
        provision["securityLabel"] = [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": c}
            for c in chosen
        ]
    if depth < 3:
        children = draw(st.lists(provisions(depth + 1), max_size=2))
        if children:
            provision["provision"] = children
    return provision


def _consent(provision: dict[str, Any]) -> dict[str, Any]:
    return privacy_consent("c", "anna", provision)


targets = st.builds(
    lambda t, label: Target(
        t,
        "r1",
        frozenset({"anna"}),
        frozenset({("http://terminology.hl7.org/CodeSystem/v3-ActCode", label)} if label else ()),
    ),
    st.sampled_from(["Observation", "CarePlan", "Encounter"]),
    st.sampled_from([None, "PSY", "SEX"]),
)


def _gp_reach(consents: list[dict[str, Any]]) -> Reach:
    grants = tuple(
        g
        for c in consents
        if (g := grant_from(c, Request(frozenset({GP}), "read", None, NOW))) is not None
    )
    who = AccessContext(Kind.SYSTEM, "gp-app", parse_scopes("system/*.rs")[0], "gp-app", "t")
    return reach(who, "r", SERVED, COMPARTMENT, lambda action: grants)


@settings(max_examples=300)
@given(provisions(), targets)
def test_every_generated_provision_is_enforceable_and_a_nested_deny_only_closes(
    provision: dict[str, Any], target: Target
) -> None:
    consent = _consent(provision)
    assert check_consent(consent, SERVED) == []
    before = admits(_gp_reach([consent]), target).allowed
    denied = {**provision, "provision": [*provision.get("provision", []), {"type": "deny"}]}
    assert not admits(_gp_reach([_consent(denied)]), target).allowed  # deny-all child wins
    narrowed = {
        **provision,
        "provision": [
            *provision.get("provision", []),
            {
                "type": "deny",
                "class": [
                    {"system": "http://hl7.org/fhir/resource-types", "code": target.resource_type}
                ],
            },
        ],
    }
    assert not admits(_gp_reach([_consent(narrowed)]), target).allowed
    revoked = {**consent, "status": "inactive"}
    assert not admits(_gp_reach([revoked]), target).allowed  # revocation closes
    assert admits(_gp_reach([consent, revoked]), target).allowed == before
    other = Target(target.resource_type, "r2", frozenset({"bert"}), target.labels)
    assert not admits(_gp_reach([consent]), other).allowed  # anna's consent, not bert's
