"""create, read, vread, update, patch, delete over real HTTP, with versioning headers."""

from __future__ import annotations

import httpx

from tests.conftest import example

JSON = {"Content-Type": "application/fhir+json"}


def create(client: httpx.Client, resource: dict, **headers: str) -> httpx.Response:
    response = client.post(resource["resourceType"], json=resource, headers={**JSON, **headers})
    assert response.status_code in (200, 201), response.text
    return response


def test_create_assigns_id_version_and_location(client: httpx.Client, base: str) -> None:
    patient = example("Patient-example")
    response = create(client, patient)
    body = response.json()
    assert response.status_code == 201
    assert body["id"] != "example"  # a create ignores the client's id
    assert body["meta"]["versionId"] == "1" and body["meta"]["lastUpdated"].endswith("Z")
    assert response.headers["ETag"] == 'W/"1"'
    assert response.headers["Location"] == f"{base}/Patient/{body['id']}/_history/1"
    assert "Last-Modified" in response.headers
    assert response.headers["Content-Type"].startswith("application/fhir+json")


def test_read_serves_what_was_stored(client: httpx.Client) -> None:
    created = create(client, example("Observation-example")).json()
    read = client.get(f"Observation/{created['id']}")
    assert read.status_code == 200 and read.json() == created
    assert read.headers["ETag"] == 'W/"1"'


def test_update_makes_a_new_version_and_vread_keeps_the_old(client: httpx.Client) -> None:
    created = create(client, example("Patient-example")).json()
    changed = {**created, "active": False}
    updated = client.put(f"Patient/{created['id']}", json=changed, headers=JSON)
    assert updated.status_code == 200 and updated.json()["meta"]["versionId"] == "2"
    old = client.get(f"Patient/{created['id']}/_history/1").json()
    assert old["active"] is True and old["meta"]["versionId"] == "1"
    assert client.get(f"Patient/{created['id']}/_history/2").json()["active"] is False
    assert client.get(f"Patient/{created['id']}/_history/3").status_code == 404


def test_update_creates_with_a_client_id(client: httpx.Client) -> None:
    patient = {"resourceType": "Patient", "id": "client-chosen-1", "active": True}
    response = client.put("Patient/client-chosen-1", json=patient, headers=JSON)
    assert response.status_code == 201
    assert client.get("Patient/client-chosen-1").json()["active"] is True


def test_if_match_guards_the_update(client: httpx.Client) -> None:
    created = create(client, example("Patient-example")).json()
    url = f"Patient/{created['id']}"
    stale = client.put(url, json=created, headers={**JSON, "If-Match": 'W/"7"'})
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    fresh = client.put(url, json=created, headers={**JSON, "If-Match": 'W/"1"'})
    assert fresh.status_code == 200
    assert client.put(url, json=created, headers={**JSON, "If-Match": "garbage"}).status_code == 400


def test_if_none_match_answers_not_modified(client: httpx.Client) -> None:
    created = create(client, example("Patient-example")).json()
    response = client.get(f"Patient/{created['id']}", headers={"If-None-Match": 'W/"1"'})
    assert response.status_code == 304


def test_delete_then_read_is_gone_and_history_keeps_the_delete(client: httpx.Client) -> None:
    created = create(client, example("Patient-example")).json()
    url = f"Patient/{created['id']}"
    assert client.delete(url).status_code == 200
    gone = client.get(url)
    assert gone.status_code == 410 and gone.json()["issue"][0]["code"] == "deleted"
    history = client.get(f"{url}/_history").json()
    assert [e["response"]["status"] for e in history["entry"]] == ["204 No Content", "201 Created"]
    assert client.get(f"{url}/_history/2").status_code == 410
    assert client.get("Patient", params={"_id": created["id"]}).json()["total"] == 0
    assert client.delete(url).status_code == 200  # deleting a deleted resource is idempotent
    assert client.delete("Patient/never-existed").status_code == 404
    recreated = client.put(url, json=created, headers=JSON)
    assert recreated.status_code == 201 and recreated.json()["meta"]["versionId"] == "3"


def test_json_patch(client: httpx.Client) -> None:
    created = create(client, example("Patient-example")).json()
    url = f"Patient/{created['id']}"
    patch = [
        {"op": "replace", "path": "/active", "value": False},
        {"op": "add", "path": "/name/-", "value": {"family": "Nieuw"}},
        {"op": "remove", "path": "/telecom"},
    ]
    response = client.patch(
        url, json=patch, headers={"Content-Type": "application/json-patch+json"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["active"] is False and body["name"][-1] == {"family": "Nieuw"}
    assert "telecom" not in body and body["meta"]["versionId"] == "2"


def test_patch_that_breaks_the_resource_is_refused_and_changes_nothing(
    client: httpx.Client,
) -> None:
    created = create(client, example("Patient-example")).json()
    url = f"Patient/{created['id']}"
    headers = {"Content-Type": "application/json-patch+json"}
    bad = client.patch(
        url, json=[{"op": "replace", "path": "/gender", "value": "robot"}], headers=headers
    )
    assert bad.status_code == 400
    assert bad.json()["issue"][0]["expression"] == ["Patient.gender"]
    failed_test = client.patch(
        url, json=[{"op": "test", "path": "/active", "value": False}], headers=headers
    )
    assert failed_test.status_code == 422
    assert (
        client.patch(
            url, json=[{"op": "replace", "path": "/id", "value": "x"}], headers=headers
        ).status_code
        == 422
    )
    assert client.get(url).json()["meta"]["versionId"] == "1"


def test_prefer_return(client: httpx.Client) -> None:
    patient = example("Patient-example")
    minimal = client.post("Patient", json=patient, headers={**JSON, "Prefer": "return=minimal"})
    assert minimal.status_code == 201 and minimal.content == b"" and minimal.headers["Location"]
    outcome = client.post(
        "Patient", json=patient, headers={**JSON, "Prefer": "return=OperationOutcome"}
    )
    assert outcome.json()["resourceType"] == "OperationOutcome"


def test_conditional_create(client: httpx.Client) -> None:
    patient = {"resourceType": "Patient", "identifier": [{"system": "http://x", "value": "1"}]}
    first = create(client, patient, **{"If-None-Exist": "identifier=http://x|1"})
    second = create(client, patient, **{"If-None-Exist": "identifier=http://x|1"})
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    create(client, patient)
    third = client.post(
        "Patient", json=patient, headers={**JSON, "If-None-Exist": "identifier=http://x|1"}
    )
    assert third.status_code == 412


def test_conditional_update_and_delete(client: httpx.Client) -> None:
    patient = {"resourceType": "Patient", "identifier": [{"system": "http://x", "value": "2"}]}
    created = client.put("Patient", params={"identifier": "http://x|2"}, json=patient, headers=JSON)
    assert created.status_code == 201
    updated = client.put(
        "Patient",
        params={"identifier": "http://x|2"},
        json={**patient, "active": True},
        headers=JSON,
    )
    assert updated.status_code == 200 and updated.json()["id"] == created.json()["id"]
    deleted = client.delete("Patient", params={"identifier": "http://x|2"})
    assert deleted.status_code == 200
    assert client.get(f"Patient/{created.json()['id']}").status_code == 410
    assert client.delete("Patient", params={"identifier": "http://x|2"}).status_code == 204


def test_head_has_headers_and_no_body(client: httpx.Client) -> None:
    created = create(client, example("Patient-example")).json()
    response = client.head(f"Patient/{created['id']}")
    assert response.status_code == 200 and response.content == b""
    assert response.headers["ETag"] == 'W/"1"'


def test_references_to_other_servers_are_allowed(client: httpx.Client) -> None:
    observation = example("Observation-example")
    observation["subject"] = {"reference": "https://huisarts.example.nl/fhir/Patient/123"}
    assert create(client, observation).status_code == 201
