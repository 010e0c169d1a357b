"""Bulk Data exports for back offices: kick-off, status, NDJSON files, under consent."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any

import httpx
import orjson
import pytest

from gateway.delivery import Worker
from gateway.interactions.model import Services
from gateway.loading import load
from mappings.care.demo import demo_dossier
from mappings.nl.identifiers import AGB
from tests.consents import ACCESS, actor, classes, privacy_consent
from tests.smart import account, backend_app, backend_token, bearer, login

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def _export(
    base: str, path: str, params: dict[str, str], worker: Worker, headers: dict[str, str]
) -> dict[str, list[dict[str, Any]]]:
    """Kick off, let the worker run it, read the manifest and every file: type -> resources."""
    kicked = httpx.get(f"{base}/{path}", params=params, headers={**ASYNC, **headers})
    assert kicked.status_code == 202, kicked.text
    status = kicked.headers["Content-Location"]
    assert httpx.get(status, headers=headers).status_code == 202  # accepted, not yet run
    while worker.run_once():
        pass
    manifest = httpx.get(status, headers=headers)
    assert manifest.status_code == 200, manifest.text
    found: dict[str, list[dict[str, Any]]] = {}
    for output in manifest.json()["output"]:
        file = httpx.get(output["url"], headers=headers)
        assert file.headers["content-type"].startswith("application/fhir+ndjson")
        lines = [orjson.loads(line) for line in file.content.splitlines()]
        assert len(lines) == output["count"]
        found.setdefault(output["type"], []).extend(lines)
    return found


@pytest.fixture()
def open_worker(services: Services) -> Any:
    load(services, demo_dossier(dt.date.today()), "test: the demo")
    worker = Worker(services)
    yield worker
    worker.close()


def test_a_system_export_of_some_types(base: str, open_worker: Worker) -> None:
    found = _export(base, "$export", {"_type": "Patient,CarePlan"}, open_worker, {})
    assert set(found) == {"Patient", "CarePlan"}
    assert {p["id"] for p in found["Patient"]} >= {"anna", "karim", "mila"}
    assert {c["id"] for c in found["CarePlan"]} == {"krachtplan", "crisisplan"}


def test_a_patient_export_holds_the_dossiers_not_the_directory(
    base: str, open_worker: Worker
) -> None:
    found = _export(base, "Patient/$export", {}, open_worker, {})
    assert "Encounter" in found and "Patient" in found
    assert "Organization" not in found and "AuditEvent" not in found


def test_a_group_export_holds_its_members_only(
    base: str, open_worker: Worker, services: Services
) -> None:
    group = {
        "resourceType": "Group",
        "id": "wijk-oost",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": "Patient/karim"}}],
    }
    load(services, [group], "test: a group")
    found = _export(
        base, "Group/wijk-oost/$export", {"_type": "Patient,Encounter"}, open_worker, {}
    )
    assert {p["id"] for p in found["Patient"]} == {"karim"}
    assert {e["subject"]["reference"] for e in found["Encounter"]} == {"Patient/karim"}


def test_since_and_type_filter(base: str, open_worker: Worker, services: Services) -> None:
    since = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)).isoformat()
    later = next(r for r in demo_dossier(dt.date.today()) if r.get("id") == "karim")
    later = dict(later, gender="male")
    time.sleep(1.2)
    load(services, [later], "test: a later change")
    found = _export(base, "$export", {"_type": "Patient", "_since": since}, open_worker, {})
    assert [p["id"] for p in found["Patient"]] == ["karim"]
    filtered = _export(
        base,
        "$export",
        {"_type": "Encounter", "_typeFilter": "Encounter?subject=Patient/mila"},
        open_worker,
        {},
    )
    assert {e["subject"]["reference"] for e in filtered["Encounter"]} == {"Patient/mila"}


@pytest.mark.parametrize(
    ("params", "headers", "expected"),
    [
        ({}, {"Accept": "application/fhir+json"}, "respond-async"),
        ({"_type": "Nonsense"}, ASYNC, "_type"),
        ({"_typeFilter": "Encounter?nonsense=1"}, ASYNC, "_typeFilter"),
        ({"_typeFilter": "Encounter"}, ASYNC, "_typeFilter"),
        ({"_since": "yesterday"}, ASYNC, "_since"),
        ({"_outputFormat": "text/csv"}, ASYNC, "_outputFormat"),
        ({"_elements": "id"}, ASYNC, "_elements"),
    ],
)
def test_a_malformed_kick_off_is_refused(
    client: httpx.Client, params: dict[str, str], headers: dict[str, str], expected: str
) -> None:
    answer = client.get("$export", params=params, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["resourceType"] == "OperationOutcome" and expected in answer.text


def test_cancel_and_expiry(base: str, open_worker: Worker, services: Services) -> None:
    kicked = httpx.get(f"{base}/$export", params={"_type": "Patient"}, headers=ASYNC)
    status = kicked.headers["Content-Location"]
    assert httpx.delete(status).status_code == 202
    assert httpx.get(status).status_code == 404
    kicked = httpx.get(f"{base}/$export", params={"_type": "Patient"}, headers=ASYNC)
    while open_worker.run_once():
        pass
    status = kicked.headers["Content-Location"]
    assert httpx.get(status).status_code == 200
    from gateway.store.schema import export_jobs  # the clock moves on: an hour later

    with services.store.engine.begin() as connection:
        connection.execute(export_jobs.update().values(expires=0))
    assert httpx.get(status).status_code == 410


def test_a_back_office_exports_what_clients_granted_it_only(
    secure: dict[str, Any], services: Services
) -> None:
    load(services, demo_dossier(dt.date.today()), "test: the demo")
    base, security = secure["base"], secure["security"]
    account(security, "anna", "patient", "Patient/anna")
    anna = bearer(login(base, security, "anna")["access_token"])
    office_id, key = backend_app(security, organization=f"{AGB}|01234567", scope="system/*.rs")
    office = bearer(backend_token(base, office_id, key, "system/*.rs").json()["access_token"])
    grant = privacy_consent(
        "office",
        "anna",
        {
            "type": "permit",
            "actor": [actor("Organization/gp")],
            "action": [ACCESS],
            "class": classes("CarePlan"),
        },
    )
    assert httpx.put(f"{base}/Consent/office", json=grant, headers=anna).status_code == 201
    worker = Worker(dataclasses.replace(secure["services"]), apps=security.store.app)
    try:
        found = _export(base, "$export", {"_type": "CarePlan,Observation"}, worker, office)
    finally:
        worker.close()
    assert {c["id"] for c in found.get("CarePlan", [])} == {"krachtplan", "crisisplan"}
    assert "Observation" not in found  # Anna granted plans, not scores
    patient = httpx.get(f"{base}/$export", params={"_type": "CarePlan"}, headers={**ASYNC, **anna})
    assert patient.status_code == 403  # exports are for backend apps
    log = httpx.get(
        f"{base}/AuditEvent", params={"patient": "anna", "_count": "200"}, headers=anna
    ).json()
    assert any(
        any(c.get("code") == "$export" for c in e["resource"].get("subtype", []))
        for e in log["entry"]
    )
