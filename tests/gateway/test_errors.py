"""Every error is an OperationOutcome with the right status, and loses nothing."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from sqlalchemy import text

from gateway.app import build_services
from gateway.http.app import build_http_app
from gateway.settings import Settings
from tests.conftest import _free_port, example

JSON = {"Content-Type": "application/fhir+json"}


def assert_outcome(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"]
    return body


def test_malformed_json(client: httpx.Client) -> None:
    assert_outcome(client.post("Patient", content=b'{"resourceType": "Pat', headers=JSON), 400)


def test_wrong_resource_type_for_the_url(client: httpx.Client) -> None:
    body = assert_outcome(
        client.post("Patient", json=example("Observation-example"), headers=JSON), 400
    )
    assert body["issue"][0]["expression"] == ["resourceType"]


def test_id_mismatch_on_update(client: httpx.Client) -> None:
    patient = {"resourceType": "Patient", "id": "a"}
    assert_outcome(client.put("Patient/b", json=patient, headers=JSON), 400)


def test_invalid_resource_names_every_fault(client: httpx.Client) -> None:
    observation = example("Observation-example")
    observation["status"] = "bogus"
    observation["unknown"] = 1
    body = assert_outcome(client.post("Observation", json=observation, headers=JSON), 400)
    expressions = {e for issue in body["issue"] for e in issue.get("expression", [])}
    assert {"Observation.status", "Observation.unknown"} <= expressions
    assert client.get("Observation").json()["total"] == 0


def test_unknown_type_and_unknown_resource(client: httpx.Client) -> None:
    assert_outcome(client.get("Spaceship/1"), 404)
    assert_outcome(client.get("Patient/does-not-exist"), 404)
    assert_outcome(client.get("Patient/bad id!"), 400)


def test_unsupported_interaction_is_405_with_allow(client: httpx.Client) -> None:
    response = client.post("Patient/abc", json={}, headers=JSON)
    assert_outcome(response, 405)
    assert "GET" in response.headers["Allow"]
    assert_outcome(client.delete("metadata"), 405)


def test_oversized_body_is_413(client: httpx.Client) -> None:
    big = {"resourceType": "Patient", "name": [{"text": "x" * (5 * 1024 * 1024)}]}
    assert_outcome(client.post("Patient", json=big, headers=JSON), 413)
    assert client.get("Patient").json()["total"] == 0


def test_a_chunked_body_is_read_whole_and_a_bodiless_post_has_none(
    client: httpx.Client, base: str
) -> None:
    """A body sent in chunks (Transfer-Encoding, no Content-Length) is read to its end, as
    it is limited; a request with neither header has no body (RFC 9112, 6.3), which the
    endpoint takes without waiting for one (ADR 0051): a create without one is a 400."""
    patient = orjson.dumps({"resourceType": "Patient", "name": [{"family": "Chunked"}]})

    def chunks() -> Iterator[bytes]:
        yield patient[:10]
        yield patient[10:]

    created = client.post("Patient", content=chunks(), headers=JSON)
    assert created.status_code == 201, created.text
    assert "content-length" not in {k.lower() for k in created.request.headers}
    assert client.get(created.headers["Location"]).json()["name"][0]["family"] == "Chunked"
    assert_outcome(client.post("Patient", content=iter([b"x" * 2_000_000] * 20)), 413)
    before = client.get("Patient", params={"_summary": "count"}).json()["total"]
    host = httpx.URL(base)
    with socket.create_connection((host.host, host.port), timeout=10) as raw:
        raw.sendall(
            f"POST {host.path}/Patient HTTP/1.1\r\nHost: {host.host}\r\n"
            "Content-Type: application/fhir+json\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert orjson.loads(body)["resourceType"] == "OperationOutcome"
    assert client.get("Patient", params={"_summary": "count"}).json()["total"] == before


def test_wrong_json_types(client: httpx.Client) -> None:
    assert_outcome(client.post("Patient", content=b"[1, 2, 3]", headers=JSON), 400)
    assert_outcome(client.post("Patient", content=b'"text"', headers=JSON), 400)


def test_bad_search_values_are_400(client: httpx.Client) -> None:
    assert_outcome(client.get("Observation", params={"date": "yesterday"}), 400)
    assert_outcome(client.get("Observation", params={"value-quantity": "lots"}), 400)
    assert_outcome(client.get("Observation", params={"_count": "many"}), 400)
    assert_outcome(
        client.get("Patient", params={"shoe": "44"}, headers={"Prefer": "handling=strict"}), 400
    )


def test_outside_the_base_is_404_outcome(client: httpx.Client, base: str) -> None:
    response = httpx.get(base.rsplit("/fhir", 1)[0] + "/elsewhere")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_an_internal_failure_is_500_with_a_correlation_id_and_no_internals(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken database (an index table dropped) must not leak SQL or data to the client."""
    port = _free_port()
    settings = Settings(database_url=f"sqlite:///{tmp_path}/broken.db", port=port, open_mode=True)
    services = build_services(settings)
    with services.store.engine.begin() as connection:
        connection.execute(text("DROP TABLE search_string"))
    server = uvicorn.Server(
        uvicorn.Config(
            build_http_app(services, settings, None),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        secret = "Geheimenaam"
        patient = {"resourceType": "Patient", "name": [{"family": secret}]}
        response = httpx.post(f"{settings.public_base_url}/Patient", json=patient, headers=JSON)
        body = assert_outcome(response, 500)
        correlation = response.headers["X-Correlation-Id"]
        assert correlation in body["issue"][0]["diagnostics"]
        assert secret not in response.text and "search_string" not in response.text
        assert "INSERT" not in response.text and "SELECT" not in response.text
        assert secret not in caplog.text and "INSERT" not in caplog.text
        assert correlation in caplog.text
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        services.store.dispose()


@pytest.mark.parametrize("value", ["-5", "abc", "\u00b2", "\uff11\uff12", "1.5"])
def test_a_count_that_is_no_whole_number_of_at_least_zero_is_400(
    client: httpx.Client, value: str
) -> None:
    response = client.get("Patient", params={"_count": value})
    assert response.status_code == 400, value
    assert response.json()["issue"][0]["expression"] == ["_count"]


def test_a_count_over_the_cap_echoes_what_was_applied(client: httpx.Client) -> None:
    client.put("Patient/p", json={"resourceType": "Patient", "id": "p"})
    bundle = client.get("Patient", params={"_count": "99999999999999999999"}).json()
    self_link = next(x["url"] for x in bundle["link"] if x["relation"] == "self")
    assert "_count=1000" in self_link and "99999" not in self_link


def test_a_form_body_where_a_resource_belongs_is_415(client: httpx.Client) -> None:
    response = client.post("Patient", data={"name": "x"})
    assert response.status_code == 415
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "form to _search" in outcome["issue"][0]["diagnostics"]
    assert client.get("Patient").json()["total"] == 0
    searched = client.post("Patient/_search", data={"name": "x"})
    assert searched.status_code == 200


@pytest.mark.parametrize(
    "version", ["9223372036854775808", "2147483648", "%C2%B2", "0", "-1", "1e3"]
)
def test_a_version_that_cannot_exist_is_404_not_an_overflow(
    client: httpx.Client, version: str
) -> None:
    client.put("Patient/x", json={"resourceType": "Patient", "id": "x"})
    response = client.get(f"Patient/x/_history/{version}")
    assert response.status_code == 404, version
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("query", ["_offset=9223372036854775808", "_count=9223372036854775808"])
def test_huge_paging_numbers_in_history_are_clamped(client: httpx.Client, query: str) -> None:
    client.put("Patient/x", json={"resourceType": "Patient", "id": "x"})
    for url in (f"Patient/x/_history?{query}", f"Patient/_history?{query}", f"_history?{query}"):
        assert client.get(url).status_code == 200, url
    assert client.get("Patient/x/_history?_offset=\u00b2").status_code == 400


def test_non_ascii_digits_and_huge_numbers_in_patch_and_etags(client: httpx.Client) -> None:
    client.put("Patient/x", json={"resourceType": "Patient", "id": "x", "name": [{"text": "a"}]})
    for path in ("/name/\u00b2", "/name/99999999999999999999", "/name/01"):
        patched = client.patch(
            "Patient/x",
            json=[{"op": "replace", "path": f"{path}/text", "value": "b"}],
            headers={"Content-Type": "application/json-patch+json"},
        )
        assert patched.status_code == 422, path
    for etag in ('W/"99999999999999999999"', 'W/"\u00b2"'):
        response = client.put(
            "Patient/x",
            json={"resourceType": "Patient", "id": "x"},
            headers={"If-Match": etag.encode()},
        )
        assert response.status_code == 400, etag
    assert client.get("Patient/x").json()["name"] == [{"text": "a"}]


ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def test_dates_at_both_ends_of_their_range_are_storable_and_searchable(
    client: httpx.Client,
) -> None:
    late = client.put(
        "Patient/late", json={"resourceType": "Patient", "id": "late", "birthDate": "9999-12-31"}
    )
    assert late.status_code == 201
    early = client.put(
        "Patient/early", json={"resourceType": "Patient", "id": "early", "birthDate": "0001-01-01"}
    )
    assert early.status_code == 201

    def ids(query: str) -> list[str]:
        response = client.get(f"Patient?{query}")
        assert response.status_code == 200, (query, response.text)
        return sorted(e["resource"]["id"] for e in response.json().get("entry", []))

    assert ids("birthdate=9999-12-31") == ["late"]
    assert ids("birthdate=9999") == ["late"]
    assert ids("birthdate=sa9999-12-30") == ["late"]
    assert ids("birthdate=eb0001-01-02") == ["early"]
    assert ids("birthdate=0001-01-01T00:00:00-10:00") == []
    assert ids("_lastUpdated=gt9999-12-31T23:59:59Z") == []
    for url in ("Observation?date=sa9999-12-31", "_history?_since=9999-12-31"):
        assert client.get(url).status_code == 200, url
    consent = {
        "resourceType": "Consent",
        "id": "long",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/late"},
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
            ]
        },
        "provision": {
            "type": "permit",
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/"
                                "v3-ParticipationType",
                                "code": "IRCP",
                            }
                        ]
                    },
                    "reference": {"reference": "Organization/gp"},
                }
            ],
            "period": {"start": "0001-01-01", "end": "9999-12-31"},
        },
    }
    stored = client.put("Consent/long", json=consent)
    assert stored.status_code == 201, stored.text


def test_non_ascii_digits_are_no_date(client: httpx.Client) -> None:
    arabic = "\u0662\u0660\u0662\u0666"  # 2026 in Arabic-Indic digits
    assert client.get(f"Patient?birthdate={arabic}").status_code == 400
    stored = client.put(
        "Patient/d", json={"resourceType": "Patient", "id": "d", "birthDate": arabic}
    )
    assert stored.status_code == 400


@pytest.mark.parametrize(
    "div",
    [
        "<div xmlns='http://www.w3.org/1999/xhtml'><img src='x' onerror='alert(1)'/>x</div>",
        "<div xmlns='http://www.w3.org/1999/xhtml'><a href='javascript:x'>x</a></div>",
        "<!DOCTYPE x><div xmlns='http://www.w3.org/1999/xhtml'>x</div>",
    ],
)
def test_a_narrative_with_active_content_is_never_stored(client: httpx.Client, div: str) -> None:
    patient = {"resourceType": "Patient", "id": "n", "text": {"status": "generated", "div": div}}
    refused = client.put("Patient/n", json=patient)
    assert refused.status_code == 400
    assert refused.json()["issue"][0]["expression"] == ["Patient.text.div"]
    assert client.get("Patient/n").status_code == 404
    checked = client.post("Patient/$validate", json=patient).json()
    assert any(i["severity"] == "error" for i in checked["issue"])


def test_a_non_string_where_a_code_is_bound_is_a_type_fault_not_a_crash(
    client: httpx.Client,
) -> None:
    for system, code in (({}, "active"), ("http://x", {}), (["x"], 5)):
        condition = {
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": "Patient/x"},
        }
        checked = client.post("Condition/$validate", json=condition)
        assert checked.status_code == 200, checked.text
        assert any(i["severity"] == "error" for i in checked.json()["issue"])
        assert client.post("Condition", json=condition).status_code == 400


def _nested_extension(levels: int) -> bytes:
    """The JSON text itself: a client's encoder has a depth limit of its own."""
    inner = '{"url": "http://example.org/x", "valueString": "bottom"}'
    for _ in range(levels - 1):
        inner = f'{{"url": "http://example.org/x", "extension": [{inner}]}}'
    return f'{{"resourceType": "Patient", "id": "deep", "extension": [{inner}]}}'.encode()


def _nested_xml(levels: int) -> bytes:
    inner = '<valueString value="bottom"/>'
    for _ in range(levels):
        inner = f'<extension url="http://example.org/x">{inner}</extension>'
    return f'<Patient xmlns="http://hl7.org/fhir"><id value="deep"/>{inner}</Patient>'.encode()


@pytest.mark.parametrize("levels", [49, 126, 330, 2000])
def test_nesting_is_bounded_once_at_parse_time(client: httpx.Client, levels: int) -> None:
    body = _nested_extension(levels)
    xml = {"Content-Type": "application/fhir+xml"}
    json = {"Content-Type": "application/fhir+json"}
    for response in (
        client.put("Patient/deep", content=body, headers=json),
        client.post("Patient/$validate", content=body, headers=json),
        client.put("Patient/deep", content=_nested_xml(levels), headers=xml),
        client.post("Patient/$validate", content=_nested_xml(levels), headers=xml),
    ):
        if levels < 50:
            assert response.status_code in (200, 201), response.text[:300]
            continue
        assert response.status_code == 400, (levels, response.status_code)
        issue = response.json()["issue"][0]
        assert "deeper than 100" in issue["diagnostics"]
        if levels < 256:  # beyond, the parsers' own limits speak first
            assert issue["expression"][0].startswith("Patient.extension")
    if levels >= 50:
        assert client.get("Patient/deep").status_code == 404


def test_deeply_nested_questionnaire_answers_within_the_limit(client: httpx.Client) -> None:
    item: dict[str, Any] = {"linkId": "q20", "answer": [{"valueString": "x"}]}
    for level in range(19, 0, -1):
        item = {"linkId": f"q{level}", "answer": [{"valueString": "x", "item": [item]}]}
    response = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "item": [item],
    }
    assert client.post("QuestionnaireResponse", json=response).status_code == 201


def test_an_outcome_quoting_control_characters_renders_as_xml(client: httpx.Client) -> None:
    response = client.get(
        "AuditEvent", params={"_lastUpdated": "\x0c"}, headers={"Accept": "application/fhir+xml"}
    )
    assert response.status_code == 400
    assert b"<OperationOutcome" in response.content[:200]
