"""Access-log entries as AuditEvents: a caller's agents are made once, each entry its own."""

from __future__ import annotations

import datetime as dt

from consent.audit import Access, audit_event
from consent.context import AccessContext, Kind
from consent.scopes import granted_scopes

BASE = "https://dossier.example.nl/fhir"


def _gp(address: str = "10.0.0.7") -> AccessContext:
    return AccessContext(
        kind=Kind.SYSTEM,
        client_id="gp-app",
        scopes=granted_scopes("system/*.rs"),
        subject="gp-app",
        token_id="t1",
        organization_identifier="http://fhir.nl/fhir/NamingSystem/agb|01234567",
        network_address=address,
    )


def _read(consents: tuple[str, ...] = ("Consent/c1",)) -> Access:
    at = dt.datetime(2026, 12, 6, 1, 30, tzinfo=dt.UTC)
    return Access("read", "0", at, patient="anna", objects=["CarePlan/p1"], consents=consents)


def test_entries_of_one_caller_name_the_same_agents_each_in_a_list_of_its_own() -> None:
    first, second = audit_event(_gp(), _read(), BASE), audit_event(_gp(), _read(), BASE)
    assert first == second
    assert first["agent"] is not second["agent"]
    first["agent"].append({"who": {"display": "a recipient"}})  # as a dossier export adds
    assert len(second["agent"]) == 3 == len(audit_event(_gp(), _read(), BASE)["agent"])


def test_the_agents_follow_the_consents_the_address_and_the_caller() -> None:
    user = audit_event(_gp(), _read(), BASE)["agent"][0]
    assert user["policy"] == [f"{BASE}/Consent/c1"]
    assert user["network"] == {"address": "10.0.0.7", "type": "2"}
    other = audit_event(_gp(), _read(("Consent/c2", "Consent/c3")), BASE)["agent"][0]
    assert other["policy"] == [f"{BASE}/Consent/c2", f"{BASE}/Consent/c3"]
    assert "policy" not in audit_event(_gp(), _read(()), BASE)["agent"][0]
    moved = audit_event(_gp("10.0.0.8"), _read(), BASE)["agent"][0]
    assert moved["network"]["address"] == "10.0.0.8"


def test_an_unauthenticated_callers_agent_is_made_for_its_entry_alone() -> None:
    at = dt.datetime(2026, 12, 6, 1, 30, tzinfo=dt.UTC)
    refused = Access("read", "4", at, description="refused: no valid token")
    first = audit_event(None, refused, BASE)
    first["agent"][0]["network"] = {"address": "10.0.0.9", "type": "2"}  # as the edge does
    assert "network" not in audit_event(None, refused, BASE)["agent"][0]


def test_entries_of_one_caller_share_their_frame_and_keep_their_own_times_and_order() -> None:
    """The elements every entry of a caller's interaction shares are made once (ADR 0051);
    each entry has its own time, outcome, description and records, its elements in the
    order they always had, and what one entry is given (its id, an action of its own) is
    in no other."""
    refused = Access(
        "read",
        "4",
        dt.datetime(2026, 12, 6, 1, 30, 5, 250_000, tzinfo=dt.UTC),
        patient="anna",
        objects=["CarePlan/p1"],
        description="refused: no grant",
    )
    first = audit_event(_gp(), _read(), BASE)
    second = audit_event(_gp(), refused, BASE)
    assert first["recorded"] == "2026-12-06T01:30:00.000Z" and first["outcome"] == "0"
    assert second["recorded"] == "2026-12-06T01:30:05.250Z" and second["outcome"] == "4"
    assert list(second) == [
        "resourceType",
        "type",
        "action",
        "recorded",
        "outcome",
        "agent",
        "source",
        "subtype",
        "outcomeDesc",
        "entity",
    ]
    assert "outcomeDesc" not in first and second["outcomeDesc"] == "refused: no grant"
    first["id"], first["action"] = "e1", "E"
    third = audit_event(_gp(), _read(), BASE)
    assert "id" not in third and third["action"] == "R"
    assert third["entity"] is not first["entity"]
