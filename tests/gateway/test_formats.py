"""JSON and XML over HTTP: Accept, Content-Type, _format, _pretty; 406 and 415."""

from __future__ import annotations

import httpx
from lxml import etree

from tests.conftest import canonical, example

XML_TYPE = "application/fhir+xml"


def test_xml_in_xml_out_round_trip(client: httpx.Client) -> None:
    patient = example("Patient-example")
    created = client.post(
        "Patient", json=patient, headers={"Content-Type": "application/fhir+json"}
    )
    pid = created.json()["id"]
    as_xml = client.get(f"Patient/{pid}", headers={"Accept": XML_TYPE})
    assert as_xml.status_code == 200 and as_xml.headers["Content-Type"].startswith(XML_TYPE)
    root = etree.fromstring(as_xml.content)
    assert root.tag == "{http://hl7.org/fhir}Patient"
    updated = client.put(
        f"Patient/{pid}", content=as_xml.content, headers={"Content-Type": XML_TYPE}
    )
    assert updated.status_code == 200, updated.text
    back = updated.json()
    back.pop("meta")
    original = created.json()
    original.pop("meta")
    assert canonical(back) == canonical(original)


def test_format_parameter_wins_over_accept(client: httpx.Client) -> None:
    response = client.get(
        "metadata", params={"_format": "xml"}, headers={"Accept": "application/fhir+json"}
    )
    assert response.headers["Content-Type"].startswith(XML_TYPE)
    assert client.get("metadata", params={"_format": "json"}).json()["fhirVersion"] == "4.0.1"


def test_pretty_printing(client: httpx.Client) -> None:
    response = client.get("metadata", params={"_pretty": "true"})
    assert response.text.startswith('{\n  "resourceType"')


def test_unsupported_accept_is_406(client: httpx.Client) -> None:
    response = client.get("metadata", headers={"Accept": "text/html"})
    assert response.status_code == 406
    assert response.json()["resourceType"] == "OperationOutcome"
    assert client.get("metadata", params={"_format": "yaml"}).status_code == 406


def test_unsupported_content_type_is_415(client: httpx.Client) -> None:
    response = client.post(
        "Patient", content=b"resourceType=Patient", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415


def test_hostile_xml_body_is_refused_and_nothing_is_stored(client: httpx.Client) -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "bbbbbbbb"><!ENTITY c "&b;&b;&b;">]>'
        b'<Patient xmlns="http://hl7.org/fhir"><id value="&c;"/></Patient>'
    )
    response = client.post("Patient", content=bomb, headers={"Content-Type": XML_TYPE})
    assert response.status_code == 400
    assert client.get("Patient").json()["total"] == 0
