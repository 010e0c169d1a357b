"""The CapabilityStatement matches what is routed and indexed; $validate reports faults."""

from __future__ import annotations

import httpx

from gateway.interactions.routes import ROUTES
from gateway.plugins import load_plugins, operations_of
from mappings.care.definitions import CareDefinitions
from tests.conftest import example

JSON = {"Content-Type": "application/fhir+json"}


def test_capability_statement_is_generated_from_the_routes(
    client: httpx.Client, services: object
) -> None:
    statement = client.get("metadata").json()
    assert statement["fhirVersion"] == "4.0.1" and statement["kind"] == "instance"
    rest = statement["rest"][0]
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    codes = {i["code"] for i in patient["interaction"]}
    routed = {
        r.name for r in ROUTES if "(?P<type>" in r.pattern.pattern and not r.name.startswith("$")
    }
    assert codes == routed
    assert {
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "create",
        "search-type",
        "history-instance",
        "history-type",
    } <= codes
    params = {p["name"]: p["type"] for p in patient["searchParam"]}
    assert params["birthdate"] == "date" and params["identifier"] == "token"
    assert params["_id"] == "token" and params["_lastUpdated"] == "date"
    assert {i["code"] for i in rest["interaction"]} == {
        "transaction",
        "batch",
        "search-system",
        "history-system",
    }
    served = {r["type"] for r in rest["resource"]}
    assert {"Patient", "CarePlan", "Consent", "AuditEvent", "SearchParameter"} <= served


def test_every_declared_search_parameter_is_accepted(client: httpx.Client) -> None:
    statement = client.get("metadata").json()
    samples = {
        "composite": "http://x|a$2020",
        "token": "x",
        "string": "x",
        "date": "2020",
        "reference": "Patient/x",
        "quantity": "1",
        "number": "1",
        "uri": "http://x",
    }
    for resource in statement["rest"][0]["resource"]:
        for param in resource["searchParam"]:
            response = client.get(
                resource["type"],
                params={param["name"]: samples[param["type"]]},
                headers={"Prefer": "handling=strict"},
            )
            assert response.status_code == 200, (resource["type"], param["name"], response.text)


def test_validate_reports_faults_and_stores_nothing(client: httpx.Client) -> None:
    good = client.post("Patient/$validate", json=example("Patient-example"), headers=JSON)
    assert good.status_code == 200
    assert good.json()["issue"][0]["severity"] == "information"
    broken = example("Observation-example")
    broken["status"] = "bogus"
    parameters = {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": broken}],
    }
    bad = client.post("Observation/$validate", json=parameters, headers=JSON).json()
    assert bad["issue"][0]["expression"] == ["Observation.status"]
    assert client.get("Observation").json()["total"] == 0
    unknown_profile = client.post(
        "Patient/$validate",
        params={"profile": "http://x/y"},
        json=example("Patient-example"),
        headers=JSON,
    ).json()
    assert unknown_profile["issue"][0]["code"] == "not-supported"


def test_validate_checks_the_profiles_a_resource_claims_as_a_write_does(
    client: httpx.Client,
) -> None:
    """$validate answers what a create would: a ZRM score of 9 claims zrm-observation and
    breaks it, named at its element, with or without a profile parameter."""
    import datetime as dt

    from mappings.care.demo import demo_dossier

    zrm = next(r for r in demo_dossier(dt.date(2026, 12, 1)) if r["id"] == "anna-zrm-1-financien")
    good = client.post("Observation/$validate", json=zrm, headers=JSON).json()
    assert [i for i in good["issue"] if i["severity"] == "error"] == []
    wrong = {**zrm, "valueInteger": 9}
    for params in ({}, {"profile": zrm["meta"]["profile"][0]}):
        found = client.post("Observation/$validate", params=params, json=wrong, headers=JSON)
        errors = [i for i in found.json()["issue"] if i["severity"] == "error"]
        assert [i["expression"] for i in errors] == [["Observation.valueInteger"]], errors
    assert client.post("Observation", json=wrong, headers=JSON).status_code in (400, 422)


#: the core's, the one route of plugins' operations, and the Bulk Data IG's
_NOT_OURS = ("$validate", "$operation", "$export", "$export-status", "$export-file")


def test_every_operation_of_ours_has_its_operation_definition() -> None:
    care = CareDefinitions()
    defined = {r["code"]: r for r in care.resources if r["resourceType"] == "OperationDefinition"}
    ours = {r.name[1:] for r in ROUTES if r.name.startswith("$") and r.name not in _NOT_OURS}
    plugins = set(operations_of(load_plugins()))
    assert (
        ours | plugins
        == set(defined)
        == {
            "explain",
            "break-the-glass",
            "zrm-progress",
            "summary",
            "declare",
            "evaluate-measure",
            "omaha-export",
        }
    )
    for name in plugins:
        assert defined[name]["system"] is True
    for route in ROUTES:
        if route.on is not None and route.name not in _NOT_OURS:
            assert defined[route.name[1:]]["resource"] == [route.on]
