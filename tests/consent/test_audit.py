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
