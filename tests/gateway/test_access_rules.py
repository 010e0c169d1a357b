"""The Consent rules decide the same in SQL (reads, searches) and in Python (writes, explain)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from consent.policy import Request, Target, grant_from
from gateway.interactions.model import Services
from gateway.store.access import AccessFilter

PSY = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}
ACTOR = {"role": {"text": "GP"}, "reference": {"reference": "Organization/gp"}}
NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)


def _resources() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for patient in ("anna", "bert"):
        out.append({"resourceType": "Patient", "id": patient})
        for i, (kind, label) in enumerate(itertools.product(("Observation", "Goal"), (0, 1))):
            resource: dict[str, Any] = {
                "resourceType": kind,
                "id": f"{patient}-{i}",
                "subject": {"reference": f"Patient/{patient}"},
            }
            if kind == "Observation":
                resource.update(status="final", code={"text": "x"})
            else:
                resource.update(lifecycleStatus="active", description={"text": "x"})
            if label:
                resource["meta"] = {"security": [PSY]}
            out.append(resource)
    return out


def _classes(*names: str) -> list[dict[str, str]]:
    return [{"system": "http://hl7.org/fhir/resource-types", "code": n} for n in names]


PROVISIONS: list[dict[str, Any]] = [
    {"type": "permit", "actor": [ACTOR]},
    {"type": "permit", "actor": [ACTOR], "class": _classes("Observation")},
    {"type": "permit", "actor": [ACTOR], "provision": [{"type": "deny", "securityLabel": [PSY]}]},
    {
        "type": "permit",
        "actor": [ACTOR],
        "class": _classes("Goal", "Patient"),
        "provision": [
            {
                "type": "deny",
                "data": [{"meaning": "instance", "reference": {"reference": "Goal/anna-2"}}],
            }
        ],
    },
    {
        "type": "deny",
        "provision": [
            {
                "type": "permit",
                "actor": [ACTOR],
                "securityLabel": [PSY],
                "provision": [{"type": "deny", "class": _classes("Goal")}],
            }
        ],
    },
    {"type": "permit", "actor": [ACTOR], "period": {"end": "2020"}},
    {"type": "permit", "actor": [{**ACTOR, "reference": {"reference": "Organization/other"}}]},
]


def test_sql_and_python_decide_alike(services: Services) -> None:
    resources = _resources()

    def load(session: Any) -> None:
        for resource in resources:
            session.put(dict(resource), method="PUT")

    services.store.write(load)
    compartment = frozenset({"Patient", "Observation", "Goal"})
    request = Request(frozenset({"Organization/gp"}), "read", None, NOW)
    for index, provision in enumerate(PROVISIONS):
        consent = {
            "resourceType": "Consent",
            "id": f"c{index}",
            "status": "active",
            "patient": {"reference": "Patient/anna"},
            "provision": provision,
        }
        grant = grant_from(consent, request)
        access = AccessFilter(
            patients=frozenset(), compartment_types=compartment, grants=(grant,) if grant else ()
        )
        with services.store.read() as session:
            for resource in resources:
                in_sql = session.current(resource["resourceType"], resource["id"], access)
                patient = resource["id"].split("-")[0]
                target = Target.of(resource, {patient})
                assert (in_sql is not None) == access.admits(target), (index, resource["id"])
        visible = set()
        with services.store.read() as session:
            for resource in resources:
                if session.current(resource["resourceType"], resource["id"], access):
                    visible.add(resource["id"])
        assert not any(v.startswith("bert") for v in visible), index
        assert visible == EXPECTED[index], (index, sorted(visible))


EXPECTED = [
    {"anna", "anna-0", "anna-1", "anna-2", "anna-3"},
    {"anna-0", "anna-1"},
    {"anna", "anna-0", "anna-2"},
    {"anna", "anna-3"},
    {"anna-1"},
    set(),
    set(),
]
