"""The care mappings in the gateway: definitions served, profiles enforced on
writes and by ``$validate?profile=``, the demo dossier, and ``Patient/$zrm-progress``
with the client's consent applied."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.interactions.model import Services
from gateway.loading import load
from mappings.care.definitions import definition_resources
from mappings.care.demo import demo_dossier
from mappings.care.zrm import ZrmAssessment, zrm_to_fhir
from mappings.nl.identifiers import AGB, BSN
from tests.smart import account, backend_app, backend_token, bearer, login

PROFILE = "https://eigendossier.nl/fhir/StructureDefinition/zrm-observation"
TODAY = dt.date(2026, 11, 22)


def _zrm(score: int = 2) -> list[dict[str, Any]]:
    return zrm_to_fhir(
        ZrmAssessment(
            "z1", "2017", "anna", "Practitioner/sanne", "intake", TODAY, {"financien": score}
        )
    )


def test_conformance_load_serves_every_resource(client: httpx.Client, services: Services) -> None:
    url = str(services.store.engine.url.render_as_string(hide_password=False))
    result = CliRunner().invoke(app, ["definitions", "load", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert f"{len(definition_resources())} created" in result.output
    again = CliRunner().invoke(app, ["definitions", "load", "--database-url", url])
    assert "0 created" in again.output
    definition = client.get("StructureDefinition/zrm-observation").json()
    assert definition["url"] == PROFILE and definition["derivation"] == "constraint"
    found = client.get(
        "CodeSystem", params={"url": "https://eigendossier.nl/fhir/CodeSystem/zrm-2017"}
    )
    assert found.json()["total"] == 1
    questionnaire = client.get("Questionnaire/zrm-2013").json()
    assert questionnaire["version"] == "2013"
    assert client.get("ConceptMap/zrm-2017-to-omaha").status_code == 200
    assert client.get("NamingSystem/nl-bsn").status_code == 200
    assert client.get("OperationDefinition/zrm-progress").status_code == 200


def test_a_write_claiming_our_profile_must_fit_it(client: httpx.Client) -> None:
    observation = _zrm()[1]
    observation.pop("valueInteger")
    refused = client.put(f"Observation/{observation['id']}", json=observation)
    assert refused.status_code == 422
    issue = refused.json()["issue"][0]
    assert issue["expression"] == ["Observation.value[x]"]
    assert client.get(f"Observation/{observation['id']}").status_code == 404  # nothing kept
    observation.pop("meta")  # without the claim, base FHIR is enough
    assert client.put(f"Observation/{observation['id']}", json=observation).status_code == 201


def test_a_zrm_score_off_the_scale_is_refused_and_never_charted(client: httpx.Client) -> None:
    client.put("Patient/anna", json={"resourceType": "Patient", "id": "anna"})
    for score in (9, 0):
        observation = _zrm()[1]
        observation["valueInteger"] = score
        refused = client.put(f"Observation/{observation['id']}", json=observation)
        assert refused.status_code == 422, score
        assert refused.json()["issue"][0]["expression"] == ["Observation.valueInteger"]
        checked = client.post(
            "Observation/$validate", params={"profile": PROFILE}, json=observation
        )
        errors = [i for i in checked.json()["issue"] if i["severity"] == "error"]
        assert errors and errors[0]["expression"] == ["Observation.valueInteger"]
    # without the profile claim base FHIR stores it, but the chart passes it over
    observation = _zrm()[1]
    observation.update(valueInteger=9)
    observation.pop("meta")
    assert client.put(f"Observation/{observation['id']}", json=observation).status_code == 201
    assert client.get("Patient/anna/$zrm-progress").json().get("parameter", []) == []


def test_validate_with_a_profile(client: httpx.Client) -> None:
    observation = _zrm()[1]
    good = client.post("Observation/$validate", params={"profile": PROFILE}, json=observation)
    assert good.status_code == 200
    assert all(i["severity"] == "information" for i in good.json()["issue"])
    observation["code"]["coding"][0]["code"] = "dagbesteding"  # a 2013 domain
    observation.pop("meta")  # $validate checks the profile asked for, claimed or not
    bad = client.post("Observation/$validate", params={"profile": PROFILE}, json=observation)
    errors = [i for i in bad.json()["issue"] if i["severity"] == "error"]
    assert errors[0]["expression"] == ["Observation.code"]
    unknown = client.post(
        "Observation/$validate",
        params={"profile": "https://elsewhere.example/SD/x"},
        json=observation,
    )
    assert unknown.json()["issue"][0]["code"] == "not-supported"


def test_capability_statement_names_profiles_and_the_operation(client: httpx.Client) -> None:
    statement = client.get("metadata").json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert PROFILE in resources["Observation"]["supportedProfile"]
    assert any(o["name"] == "zrm-progress" for o in resources["Patient"]["operation"])


def test_demo_dossier_and_progress(client: httpx.Client, services: Services) -> None:
    outcome = load(services, demo_dossier(TODAY))
    assert outcome["created"] == len(demo_dossier(TODAY))
    plan = client.get("CarePlan/krachtplan").json()
    assert plan["title"] == "Weer grip op geld en post"
    progress = client.get("Patient/anna/$zrm-progress")
    assert progress.status_code == 200
    series = {
        next(p["valueCoding"]["code"] for p in s["part"] if p["name"] == "domain"): [
            {
                q["name"]: next(v for k, v in q.items() if k.startswith("value"))
                for q in point["part"]
            }
            for point in s["part"]
            if point["name"] == "point"
        ]
        for s in progress.json()["parameter"]
    }
    assert [p["score"] for p in series["financien"]] == [1, 2, 4]
    assert [p["moment"] for p in series["financien"]] == ["intake", "progress", "exit"]
    assert len(series) == 13
    assert client.get("Patient/nobody/$zrm-progress").status_code == 404
    # an update of the plan is a new version, the old one stays readable
    plan["status"] = "completed"
    assert client.put("CarePlan/krachtplan", json=plan).status_code == 200
    assert client.get("CarePlan/krachtplan/_history/1").json()["status"] == "active"


def test_progress_respects_the_clients_consent(
    secure: dict[str, Any], client: httpx.Client
) -> None:
    services, security, base = secure["services"], secure["security"], secure["base"]
    load(services, demo_dossier(TODAY))
    account(security, "anna", "patient", "Patient/anna")
    anna = login(base, security, "anna")["access_token"]
    own = httpx.get(f"{base}/Patient/anna/$zrm-progress", headers=bearer(anna))
    assert own.status_code == 200 and len(own.json()["parameter"]) == 13
    client_id, key = backend_app(security)  # the GP practice's AGB: no Consent names it
    gp = backend_token(base, client_id, key).json()["access_token"]
    assert httpx.get(f"{base}/Patient/anna/$zrm-progress", headers=bearer(gp)).status_code == 404
    log = httpx.get(f"{base}/AuditEvent", params={"patient": "anna"}, headers=bearer(anna)).json()
    events = [
        e["resource"]
        for e in log.get("entry", [])
        if any(c.get("code") == "$zrm-progress" for c in e["resource"].get("subtype", []))
    ]
    allowed = [e for e in events if e["outcome"] == "0"]
    refused = [e for e in events if e["outcome"] != "0"]
    assert len(allowed) == 1 and len(refused) == 1  # Anna's own view, and the GP turned away
    shown = {entity["what"]["reference"] for entity in allowed[0]["entity"]}
    assert "Observation/anna-zrm-1-financien" in shown


@pytest.mark.parametrize(
    ("identifier", "expression"),
    [
        ({"system": BSN, "value": "123456789"}, "Patient.identifier[0].value"),
        ({"system": BSN, "value": "abc"}, "Patient.identifier[0].value"),
        ({"system": BSN, "value": "\uff11" * 9}, "Patient.identifier[0].value"),
        ({"system": AGB, "value": "1234567"}, "Patient.generalPractitioner[0].identifier.value"),
    ],
)
def test_dutch_identifiers_are_checked_on_every_write_and_by_validate(
    client: httpx.Client, identifier: dict[str, str], expression: str
) -> None:
    patient: dict[str, Any] = {"resourceType": "Patient", "id": "ids"}
    if expression.startswith("Patient.identifier"):
        patient["identifier"] = [identifier]
    else:
        patient["generalPractitioner"] = [{"identifier": identifier, "display": "De Wijk"}]
    refused = client.put("Patient/ids", json=patient)
    assert refused.status_code == 422
    assert refused.json()["issue"][0]["expression"] == [expression]
    assert client.get("Patient/ids").status_code == 404  # nothing kept
    created = client.post("Patient", json={k: v for k, v in patient.items() if k != "id"})
    assert created.status_code == 422
    checked = client.post("Patient/$validate", json=patient).json()
    errors = [i for i in checked["issue"] if i["severity"] == "error"]
    assert [e["expression"] for e in errors] == [[expression]]


def test_a_valid_bsn_and_other_systems_pass(client: httpx.Client) -> None:
    patient = {
        "resourceType": "Patient",
        "id": "ids",
        "identifier": [
            {"system": BSN, "value": "999911120"},
            {"system": "urn:oid:2.16.840.1.113883.2.4.6.3", "value": "not-ours-to-check"},
        ],
    }
    assert client.put("Patient/ids", json=patient).status_code == 201


def test_a_profile_check_of_ill_typed_codings_is_a_fault_not_a_crash(client: httpx.Client) -> None:
    observation = _zrm()[1]
    observation["code"]["coding"][0]["system"] = {"not": "a string"}
    observation["extension"][0]["url"] = ["not a string"]
    checked = client.post("Observation/$validate", params={"profile": PROFILE}, json=observation)
    assert checked.status_code == 200
    assert any(i["severity"] == "error" for i in checked.json()["issue"])
    assert client.put(f"Observation/{observation['id']}", json=observation).status_code == 400
