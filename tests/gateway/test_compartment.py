"""A compartment row carries its resource's type (migration 0013, ADR 0038), however the row
came to be: a write, a household's arrival after the resources about it, a change of who
is in the household, an access-log entry."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from gateway.interactions.model import Services
from gateway.store.schema import patient_compartment, resources


def _household(*members: str) -> dict[str, Any]:
    return {
        "resourceType": "Group",
        "id": "home",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": f"Patient/{m}"}} for m in members],
    }


def _rows(services: Services) -> set[tuple[str, str, str, str]]:
    """(resource's type, its id, the patient, the row's type) of every compartment row."""
    c, r = patient_compartment.c, resources.c
    query = select(r.res_type, r.res_id, c.patient_id, c.res_type).join(resources, r.pk == c.res_pk)
    with services.store.read() as session:
        return {tuple(row) for row in session.connection.execute(query)}  # type: ignore[misc]


def _put(services: Services, *batch: dict[str, Any]) -> None:
    def write(session: Any) -> None:
        for resource in batch:
            session.put(dict(resource), method="PUT")

    services.store.write(write)


def test_each_compartment_row_has_the_type_of_its_resource(services: Services) -> None:
    goal = {
        "resourceType": "Goal",
        "id": "g",
        "lifecycleStatus": "active",
        "description": {"text": "x"},
        "subject": {"reference": "Group/home"},
    }
    seen = {
        "resourceType": "Observation",
        "id": "o",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "Patient/anna"},
    }
    _put(services, {"resourceType": "Patient", "id": "anna"})
    _put(services, {"resourceType": "Patient", "id": "bert"}, goal, seen)
    _put(services, _household("anna"))  # the household arrives after the Goal about it
    assert _rows(services) == {
        ("Patient", "anna", "anna", "Patient"),
        ("Patient", "bert", "bert", "Patient"),
        ("Goal", "g", "anna", "Goal"),
        ("Observation", "o", "anna", "Observation"),
        ("Group", "home", "anna", "Group"),
    }
    _put(services, _household("anna", "bert"))  # who is in it changes: derived again
    rows = _rows(services)
    assert ("Goal", "g", "bert", "Goal") in rows
    assert all(kind == row_type for kind, _, _, row_type in rows)


def test_an_access_log_entry_lies_in_its_patients_compartment_as_an_audit_event(
    services: Services,
) -> None:
    _put(services, {"resourceType": "Patient", "id": "anna"})
    event = {
        "resourceType": "AuditEvent",
        "id": "e1",
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
        },
        "recorded": "2026-12-06T06:00:00Z",
        "agent": [{"requestor": True, "who": {"identifier": {"value": "app"}}}],
        "source": {"observer": {"display": "Eigen Dossier"}},
        "entity": [{"what": {"reference": "Patient/anna"}}],
    }
    services.store.write(lambda session: session.index_copies(services.store.prepare_new([event])))
    assert ("AuditEvent", "e1", "anna", "AuditEvent") in _rows(services)
