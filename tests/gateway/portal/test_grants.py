"""The portal's grants as Consents (no server): each is in the enforced subset, means what
its words say under the gateway's own decision, and reads back as the same choice; and the
sealed cookies that carry a session."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from consent.policy import Request, Target, check_consent, decide, grant_from
from gateway.portal.grants import ALL, CATEGORIES, consent_for, describe
from gateway.portal.session import Sealer
from mappings.core.definitions import load_definitions

NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
END = dt.date(2027, 3, 1)
GP = "Organization/gp"
CRISIS = "CarePlan/crisisplan"
SERVED = frozenset(load_definitions().served)
PSY = [("http://terminology.hl7.org/CodeSystem/v3-ActCode", "PSY")]


def _allowed(consent: dict, resource: str, labels=(), *, actor: str = GP, at: dt.datetime = NOW):
    rtype, rid = resource.split("/")
    grant = grant_from({**consent, "id": "c1"}, Request(frozenset({actor}), "read", None, at))
    if grant is None:
        return False
    return decide([grant], Target(rtype, rid, frozenset({"anna"}), frozenset(labels))).allowed


CHOICES = [
    list(c)
    for n in (1, 2, 3)
    for c in itertools.combinations(["plan", "scores", "visits", "crisis"], n)
]


@pytest.mark.parametrize("categories", CHOICES, ids=["+".join(c) for c in CHOICES])
def test_a_choice_is_a_supported_consent_that_permits_exactly_its_categories(
    categories: list[str],
) -> None:
    consent = consent_for(
        "anna", GP, categories, END, crisis_plans=[CRISIS], served=SERVED, now=NOW
    )
    assert check_consent(consent, SERVED) == []
    assert _allowed(consent, "Patient/anna")  # always: the grant has a name
    for category, types in CATEGORIES.items():
        for resource_type in types:
            if resource_type in SERVED:
                expected = category in categories
                assert _allowed(consent, f"{resource_type}/x") is expected, resource_type
    crisis_by_plan = "plan" in categories or "crisis" in categories
    assert _allowed(consent, CRISIS) is crisis_by_plan
    assert not _allowed(consent, "Claim/x")  # nothing outside the choice
    assert not _allowed(consent, "CarePlan/krachtplan", actor="Organization/other")
    assert not _allowed(consent, "Patient/anna", at=dt.datetime(2027, 3, 2, tzinfo=dt.UTC))
    described = describe(consent, [CRISIS])
    assert set(described.categories) == set(categories)
    assert described.actors == (GP,) and described.end == END.isoformat()
    assert described.made_here and not described.writes


def test_everything_except_mental_health_notes() -> None:
    consent = consent_for("anna", GP, [ALL], END, served=SERVED, now=NOW)
    assert check_consent(consent, SERVED) == []
    assert _allowed(consent, "Observation/zrm")
    assert _allowed(consent, "Claim/x")
    assert not _allowed(consent, "Observation/ggz", PSY)
    described = describe(consent)
    assert described.categories == (ALL,) and described.except_labels == ("PSY",)


def test_a_consent_made_elsewhere_reads_as_what_it_permits() -> None:
    everything = {
        "resourceType": "Consent",
        "policyRule": {"coding": [{"code": "OPTIN"}]},
        "provision": {
            "actor": [{"reference": {"reference": "CareTeam/team"}}],
            "action": [{"coding": [{"code": "access"}, {"code": "correct"}]}],
        },
    }
    described = describe(everything)
    assert described.everything and described.writes and not described.made_here
    goals = {
        "resourceType": "Consent",
        "provision": {
            "type": "permit",
            "actor": [{"reference": {"reference": GP}}],
            "class": [{"code": "Goal"}, {"code": "Observation"}],
        },
    }
    described = describe(goals)
    assert described.categories == ("scores",) and described.types == ("Goal",)


@pytest.mark.parametrize("categories", [[], ["geheim"], ["crisis"]])
def test_a_choice_that_gives_nothing_is_refused(categories: list[str]) -> None:
    with pytest.raises(ValueError):
        consent_for("anna", GP, categories, END, crisis_plans=[], now=NOW)


def test_a_sealed_value_opens_only_unchanged_in_time_and_with_a_live_key() -> None:
    keys = [b"k" * 32]
    sealer = Sealer(lambda: keys, "purpose")
    sealed = sealer.seal({"a": 1}, 60)
    assert sealer.open(sealed) == {"a": 1}
    assert Sealer(lambda: keys, "another purpose").open(sealed) is None
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    assert sealer.open(tampered) is None
    assert sealer.open("not base64 !!") is None and sealer.open("") is None
    assert sealer.open(sealer.seal({"a": 1}, -1)) is None  # expired
    keys.insert(0, b"n" * 32)  # a new key seals; the old one still opens
    assert sealer.open(sealed) == {"a": 1}
    del keys[1]  # the old key retired: its seals are gone
    assert sealer.open(sealed) is None
