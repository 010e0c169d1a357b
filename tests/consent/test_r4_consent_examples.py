"""The official R4 Consent examples of scope patient-privacy: each is kept and enforced as
its narrative reads under our opt-in model, or refused naming what cannot be enforced.

R4's root provision may carry no type: its decision then comes from ``policyRule`` (OPTIN
permits, OPTOUT denies). docs/consent.md lists each example with the reason.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from consent.policy import Request, Target, check_consent, decide, grant_from, root_decision
from tests.conftest import example
from tests.consents import privacy_consent

SERVED = frozenset({"Patient", "Observation", "CarePlan", "Consent", "Encounter"})

#: example -> the expressions of its refusal (empty: kept)
EXPECTED: dict[str, set[str]] = {
    "consent-example-basic": {"Consent.provision.actor"},
    "consent-example-notTime": {"Consent.provision.actor"},
    "consent-example-notThis": {"Consent.provision.actor", "Consent.provision.data[0]"},
    "consent-example-smartonfhir": {
        "Consent.provision.actor",
        "Consent.provision.provision[0].actor",
        "Consent.provision.provision[0].class[0]",
    },
    "consent-example-notAuthor": {"Consent.provision.actor[0].role"},
    "consent-example-Out": {"Consent.provision.actor[0].role"},
    "consent-example-Emergency": {
        "Consent.provision.actor[0].role",
        "Consent.provision.provision[0].actor[0].role",
    },
    "consent-example-grantor": {
        "Consent.provision.actor[0].role",
        "Consent.provision.actor[1].reference",
    },
    "consent-example-pkb": {f"Consent.provision.provision[{i}].type" for i in range(11)},
    "consent-example-signature": {
        "Consent.provision.provision[0]",
        "Consent.provision.provision[0].actor[0].role",
        "Consent.provision.provision[0].class[0]",
    },
    "consent-example-notThem": set(),
    "consent-example-notOrg": set(),
}


def _consent(name: str) -> dict[str, Any]:
    return example(f"Consent-{name}")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_example_is_kept_or_refused_naming_what_cannot_be_enforced(name: str) -> None:
    issues = check_consent(_consent(name), SERVED)
    assert {e for issue in issues for e in issue.expression} == EXPECTED[name]
    assert all(issue.code in ("not-supported", "invariant") for issue in issues)


def test_a_root_without_type_takes_its_decision_from_the_policy_rule() -> None:
    assert root_decision(_consent("consent-example-notThem")) == "permit"  # OPTIN
    assert root_decision(_consent("consent-example-Out")) == "deny"  # OPTOUT
    assert root_decision(_consent("consent-example-notOrg")) == "deny"  # stated
    unclear = {**_consent("consent-example-Out"), "policyRule": {"text": "see the paper form"}}
    issues = check_consent(unclear, SERVED)
    assert "Consent.provision.type" in {e for i in issues for e in i.expression}


NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _allowed(resource: dict[str, Any], actors: set[str], action: str, target: Target) -> bool:
    grant = grant_from(resource, Request(frozenset(actors), action, None, NOW))
    return decide([grant] if grant else [], target).allowed


def test_not_them_under_opt_in_permits_exactly_that_nurse_to_read_and_correct() -> None:
    """Under an opt-in model its narrative reads "consent to disclose to a specific agent"."""
    consent = _consent("consent-example-notThem")
    target = Target("Observation", "o", frozenset({"f001"}))
    assert _allowed(consent, {"Practitioner/f204"}, "read", target)
    assert _allowed(consent, {"Practitioner/f204"}, "write", target)
    assert not _allowed(consent, {"Practitioner/other"}, "read", target)
    assert not _allowed(
        consent, {"Practitioner/f204"}, "read", Target("Observation", "o", frozenset({"x"}))
    )


def test_not_org_denies_that_organisation() -> None:
    consent = _consent("consent-example-notOrg")
    target = Target("Observation", "o", frozenset({"f001"}))
    grant = grant_from(consent, Request(frozenset({"Organization/f001"}), "read", None, NOW))
    assert grant is not None and not decide([grant], target).allowed
    assert decide([grant], target).consent == "Consent/consent-example-notOrg"


def _privacy(policy: str, provision: dict[str, Any]) -> dict[str, Any]:
    consent = privacy_consent("c", "anna", provision)
    consent["policyRule"]["coding"][0]["code"] = policy
    return consent


def _actor(reference: str) -> dict[str, Any]:
    return {"reference": {"reference": reference}}


def test_an_opt_out_with_a_nested_permit_lets_in_only_that_actor() -> None:
    consent = _privacy(
        "OPTOUT",
        {"provision": [{"type": "permit", "actor": [_actor("Organization/gp")]}]},
    )
    assert check_consent(consent, SERVED) == []
    target = Target("CarePlan", "p", frozenset({"anna"}))
    assert _allowed(consent, {"Organization/gp"}, "read", target)
    assert not _allowed(consent, {"Organization/gp"}, "write", target)  # reading only
    assert not _allowed(consent, {"Organization/insurer"}, "read", target)


def test_an_opt_in_with_a_nested_deny_for_one_resource_and_one_class() -> None:
    consent = _privacy(
        "OPTIN",
        {
            "actor": [_actor("CareTeam/team")],
            "provision": [
                {
                    "type": "deny",
                    "data": [
                        {"meaning": "instance", "reference": {"reference": "CarePlan/crisis"}}
                    ],
                },
                {
                    "type": "deny",
                    "class": [
                        {"system": "http://hl7.org/fhir/resource-types", "code": "Encounter"}
                    ],
                },
            ],
        },
    )
    assert check_consent(consent, SERVED) == []
    team = {"CareTeam/team"}
    assert _allowed(consent, team, "read", Target("CarePlan", "plan", frozenset({"anna"})))
    assert not _allowed(consent, team, "read", Target("CarePlan", "crisis", frozenset({"anna"})))
    assert not _allowed(consent, team, "read", Target("Encounter", "v", frozenset({"anna"})))


def test_a_nested_permit_to_everyone_under_an_opt_out_is_refused() -> None:
    consent = _privacy("OPTOUT", {"provision": [{"type": "permit"}]})
    issues = check_consent(consent, SERVED)
    assert [e for i in issues for e in i.expression] == ["Consent.provision.provision[0].actor"]
