"""``Patient/{id}/$summary``: the document a GP system displays, under the client's consent."""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import re
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from gateway.interactions.model import Services
from gateway.loading import load
from mappings.care.demo import demo_dossier
from mappings.care.summary import NOTHING, summary_document
from mappings.core.definitions import load_definitions
from mappings.core.validate import Validator
from mappings.nl.identifiers import AGB
from tests.consents import ACCESS, actor, classes, privacy_consent
from tests.smart import account, backend_app, backend_token, bearer, login

TODAY = dt.date(2026, 11, 22)
GOLDEN = pathlib.Path(__file__).parents[1] / "data" / "golden" / "summary-anna.json"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _sections(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    composition = bundle["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    return {s["code"]["coding"][0]["code"]: s for s in composition["section"]}


def _anna(resources: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    found: dict[str, list[Any]] = {}
    for resource in resources:
        found.setdefault(resource["resourceType"], []).append(resource)
    (anna,) = [p for p in found["Patient"] if p["id"] == "anna"]
    mine = {
        t: [r for r in rs if "anna" in json.dumps(r.get("subject") or r.get("patient") or {})]
        for t, rs in found.items()
    }
    mine["Practitioner"] = found["Practitioner"]
    return anna, mine


def test_the_demo_clients_summary_is_its_golden_document() -> None:
    now = dt.datetime(2026, 11, 22, 12, tzinfo=ZoneInfo("Europe/Amsterdam"))
    anna, found = _anna(demo_dossier(TODAY))
    document = summary_document(anna, found, now, "https://gateway.example/fhir")
    assert Validator(load_definitions()).validate(document, served_only=False) == []
    text = _UUID.sub("<uuid>", json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True))
    if os.environ.get("EIGENDOSSIER_REGENERATE_GOLDEN"):
        GOLDEN.write_text(text + "\n", encoding="utf-8")
    assert text + "\n" == GOLDEN.read_text(encoding="utf-8")
    sections = _sections(document)
    assert list(sections) == ["krachtplan", "zrm", "crisisplan", "contacten", "zorgteam"]
    assert all("entry" in s and "emptyReason" not in s for s in sections.values())
    listed = {e["resource"]["resourceType"] for e in document["entry"]}
    assert {"Composition", "Patient", "CarePlan", "Goal", "Observation", "Encounter"} <= listed


def test_summary_over_http_in_json_and_xml(client: httpx.Client, services: Services) -> None:
    load(services, demo_dossier(dt.date.today()), "test: the demo")
    response = client.get("Patient/anna/$summary")
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["type"] == "document"
    references = {e["fullUrl"].split("/fhir/")[-1] for e in document["entry"]}
    for section in _sections(document).values():  # every entry resolves inside the Bundle
        for entry in section.get("entry", []):
            assert entry["reference"] in references
    as_xml = client.get("Patient/anna/$summary", headers={"Accept": "application/fhir+xml"})
    assert as_xml.status_code == 200 and b"<Composition" in as_xml.content
    assert client.get("Patient/nobody/$summary").status_code == 404


def test_a_section_the_caller_may_not_see_says_what_an_empty_one_says(
    secure: dict[str, Any], services: Services
) -> None:
    load(services, demo_dossier(dt.date.today()), "test: the demo")
    load(services, [{"resourceType": "Patient", "id": "leeg"}], "test: a client with nothing")
    base, security = secure["base"], secure["security"]
    account(security, "anna", "patient", "Patient/anna")
    account(security, "leeg", "patient", "Patient/leeg")
    anna = bearer(login(base, security, "anna")["access_token"])
    empty = bearer(login(base, security, "leeg")["access_token"])
    gp_id, gp_key = backend_app(security, organization=f"{AGB}|01234567")  # the demo's GP
    gp = bearer(backend_token(base, gp_id, gp_key).json()["access_token"])
    assert httpx.get(f"{base}/Patient/anna/$summary", headers=gp).status_code == 404
    plans_only = {
        "type": "permit",
        "actor": [actor("Organization/gp")],
        "action": [ACCESS],
        "class": classes("Patient", "CarePlan", "Goal"),
    }
    grant = privacy_consent("gp-summary", "anna", plans_only)
    assert httpx.put(f"{base}/Consent/gp-summary", json=grant, headers=anna).status_code == 201
    shown = httpx.get(f"{base}/Patient/anna/$summary", headers=gp)
    assert shown.status_code == 200, shown.text
    sections = _sections(shown.json())
    assert "entry" in sections["krachtplan"] and "entry" in sections["crisisplan"]
    types = {e["resource"]["resourceType"] for e in shown.json()["entry"]}
    assert not types & {"Observation", "Encounter", "CareTeam", "RelatedPerson"}
    nothing = _sections(httpx.get(f"{base}/Patient/leeg/$summary", headers=empty).json())
    for code in ("zrm", "contacten", "zorgteam"):  # hidden reads as truly empty
        assert sections[code] == nothing[code]
        assert sections[code]["emptyReason"]["text"] == NOTHING
    httpx.delete(f"{base}/Consent/gp-summary", headers=anna)
    assert httpx.get(f"{base}/Patient/anna/$summary", headers=gp).status_code == 404
