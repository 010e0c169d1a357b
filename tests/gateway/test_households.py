"""One household, one plan: a resource about a household (a Group) lies in the dossier of
every member. Each member reads it as their own; anyone else needs every member's consent;
who is in the household decides, from the next request on. Real HTTP, real tokens."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.consents import ACCESS, actor, classes, privacy_consent
from tests.smart import account, backend_app, backend_token, bearer, login

AGB = "http://fhir.nl/fhir/NamingSystem/agb"
GP_PLANS = {
    "type": "permit",
    "actor": [actor("Organization/gp")],
    "action": [ACCESS],
    "class": classes("CarePlan", "Goal"),
}
GOAL = {
    "resourceType": "Goal",
    "id": "rondkomen",
    "lifecycleStatus": "active",
    "description": {"text": "Rondkomen"},
    "subject": {"reference": "Group/huishouden"},
}


def _household(*members: str) -> dict[str, Any]:
    return {
        "resourceType": "Group",
        "id": "huishouden",
        "type": "person",
        "actual": True,
        "name": "Huishouden Jansen",
        "member": [{"entity": {"reference": f"Patient/{m}"}} for m in members],
    }


@pytest.fixture()
def home(secure: dict[str, Any], client: httpx.Client) -> dict[str, Any]:
    """Anna and Piet share a household and its plan; Mallory lives elsewhere."""
    plan = {
        "resourceType": "CarePlan",
        "id": "huishoudplan",
        "status": "active",
        "intent": "plan",
        "title": "Samen rondkomen",
        "subject": {"reference": "Group/huishouden"},
    }
    resources = [
        {"resourceType": "Patient", "id": "anna"},
        {"resourceType": "Patient", "id": "piet"},
        {"resourceType": "Patient", "id": "mallory"},
        {
            "resourceType": "Organization",
            "id": "gp",
            "identifier": [{"system": AGB, "value": "01234567"}],
        },
        plan,  # written before its household: the Group's arrival places it
        _household("anna", "piet"),
    ]
    for resource in resources:
        url = f"{resource['resourceType']}/{resource['id']}"
        assert client.put(url, json=resource).status_code == 201, url
    security, base = secure["security"], secure["base"]
    tokens = {"base": base}
    for person in ("anna", "piet", "mallory"):
        account(security, person, "patient", f"Patient/{person}")
        tokens[person] = login(base, security, person)["access_token"]
    gp_id, gp_key = backend_app(security, organization=f"{AGB}|01234567")
    tokens["gp"] = backend_token(base, gp_id, gp_key, "system/*.rs").json()["access_token"]
    return tokens


def _get(home: dict[str, Any], who: str, path: str, **params: str) -> httpx.Response:
    return httpx.get(f"{home['base']}/{path}", params=params, headers=bearer(home[who]))


def _put(home: dict[str, Any], who: str, resource: dict[str, Any]) -> httpx.Response:
    url = f"{home['base']}/{resource['resourceType']}/{resource['id']}"
    return httpx.put(url, json=resource, headers=bearer(home[who]))


def _plans(home: dict[str, Any], who: str) -> list[str]:
    found = _get(home, who, "CarePlan")
    assert found.status_code == 200, found.text
    return [e["resource"]["id"] for e in found.json().get("entry", [])]


def test_each_member_reads_the_household_plan_as_their_own(
    home: dict[str, Any], client: httpx.Client
) -> None:
    for member in ("anna", "piet"):
        assert _get(home, member, "CarePlan/huishoudplan").status_code == 200
        assert _plans(home, member) == ["huishoudplan"]
    assert _get(home, "mallory", "CarePlan/huishoudplan").status_code == 404
    assert _plans(home, "mallory") == []
    assert _get(home, "piet", "Group/huishouden").status_code == 200
    # written once the household is known: placed by its own write
    assert client.put("Goal/rondkomen", json=GOAL).status_code == 201
    assert _get(home, "piet", "Goal/rondkomen").status_code == 200
    assert _get(home, "mallory", "Goal/rondkomen").status_code == 404


def test_anyone_else_needs_every_members_consent(home: dict[str, Any]) -> None:
    anna_grant = privacy_consent("anna-gp", "anna", GP_PLANS)
    assert _put(home, "anna", anna_grant).status_code == 201
    assert _get(home, "gp", "CarePlan/huishoudplan").status_code == 404  # Piet has not
    assert _plans(home, "gp") == []
    piet_grant = privacy_consent("piet-gp", "piet", GP_PLANS)
    assert _put(home, "piet", piet_grant).status_code == 201
    assert _get(home, "gp", "CarePlan/huishoudplan").status_code == 200
    assert _plans(home, "gp") == ["huishoudplan"]
    # the access log of each member shows the read
    for member in ("anna", "piet"):
        log = _get(home, member, "AuditEvent", patient=member).json()
        seen = [
            e["resource"]
            for e in log.get("entry", [])
            if any(
                x["what"]["reference"] == "CarePlan/huishoudplan"
                for x in e["resource"].get("entity", [])
            )
            and e["resource"]["outcome"] == "0"
        ]
        # both the read by id and the search that found it: a search's page names every
        # member whose dossier holds a resource (one row per member, ADR 0052)
        done = {s["code"] for e in seen for s in e.get("subtype", [])}
        assert {"read", "search-type"} <= done, (member, done)
    # one member withdrawing closes it from the next request on
    assert _put(home, "piet", {**piet_grant, "status": "inactive"}).status_code == 200
    assert _get(home, "gp", "CarePlan/huishoudplan").status_code == 404
    assert _plans(home, "gp") == []


def test_one_members_deny_wins_over_the_others_permit(home: dict[str, Any]) -> None:
    _put(home, "anna", privacy_consent("anna-gp", "anna", GP_PLANS))
    piet_refuses = {**GP_PLANS, "type": "deny"}
    assert _put(home, "piet", privacy_consent("piet-no", "piet", piet_refuses)).status_code == 201
    assert _get(home, "gp", "CarePlan/huishoudplan").status_code == 404


def test_who_is_in_the_household_decides_from_the_next_request(
    home: dict[str, Any], client: httpx.Client
) -> None:
    _put(home, "anna", privacy_consent("anna-gp", "anna", GP_PLANS))
    assert client.put("Group/huishouden", json=_household("anna")).status_code == 200
    assert _get(home, "piet", "CarePlan/huishoudplan").status_code == 404  # moved out
    assert _get(home, "gp", "CarePlan/huishoudplan").status_code == 200  # Anna's alone now
    assert client.put("Group/huishouden", json=_household("anna", "mallory")).status_code == 200
    assert _get(home, "mallory", "CarePlan/huishoudplan").status_code == 200
    assert _get(home, "gp", "CarePlan/huishoudplan").status_code == 404  # Mallory has not
    assert client.delete("Group/huishouden").status_code in (200, 204)
    assert _get(home, "anna", "CarePlan/huishoudplan").status_code == 404  # no household


def test_a_member_cannot_write_for_the_others(home: dict[str, Any], client: httpx.Client) -> None:
    stranger = _household("anna", "piet", "mallory")
    assert _put(home, "anna", stranger).status_code == 403
    members = client.get("Group/huishouden").json()["member"]
    assert len(members) == 2  # unchanged
    assert _put(home, "anna", GOAL).status_code == 403  # Piet did not allow Anna to write
    assert client.get("Goal/rondkomen").status_code == 404  # nothing kept
    own = {**GOAL, "id": "eigen", "subject": {"reference": "Patient/anna"}}
    assert _put(home, "anna", own).status_code == 201
