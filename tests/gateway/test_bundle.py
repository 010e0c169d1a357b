"""batch and transaction: all-or-nothing, urn:uuid and conditional references, ordering."""

from __future__ import annotations

from typing import Any

import httpx

JSON = {"Content-Type": "application/fhir+json"}


def transaction(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post_entry(full_url: str, resource: dict[str, Any], **request: Any) -> dict[str, Any]:
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }


PATIENT_URN = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"


def test_transaction_resolves_urn_uuid_references(client: httpx.Client) -> None:
    bundle = transaction(
        post_entry(
            "urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "ZRM"},
                "subject": {"reference": PATIENT_URN},
            },
        ),
        post_entry(PATIENT_URN, {"resourceType": "Patient", "active": True}),
    )
    response = client.post("", json=bundle, headers=JSON)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == ["201 Created", "201 Created"]
    patient_location = result["entry"][1]["response"]["location"]
    patient_id = patient_location.split("/Patient/")[1].split("/")[0]
    observation = result["entry"][0]["resource"]
    assert observation["subject"]["reference"] == f"Patient/{patient_id}"
    found = client.get("Observation", params={"subject": f"Patient/{patient_id}"}).json()
    assert found["total"] == 1


def test_transaction_is_all_or_nothing(client: httpx.Client) -> None:
    bundle = transaction(
        post_entry(PATIENT_URN, {"resourceType": "Patient", "active": True}),
        post_entry(
            "urn:uuid:0000",
            {"resourceType": "Observation", "status": "bogus", "code": {"text": "x"}},
        ),
    )
    response = client.post("", json=bundle, headers=JSON)
    assert response.status_code == 400
    assert "Entry 1" in response.json()["issue"][0]["diagnostics"]
    assert client.get("Patient").json()["total"] == 0


def test_unresolvable_urn_reference_fails_the_transaction(client: httpx.Client) -> None:
    bundle = transaction(
        post_entry(
            "urn:uuid:1",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": "urn:uuid:not-in-bundle"},
            },
        )
    )
    assert client.post("", json=bundle, headers=JSON).status_code == 422
    assert client.get("Observation").json()["total"] == 0


def test_conditional_references_and_conditional_create(client: httpx.Client) -> None:
    identifier = {"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999911120"}
    client.put(
        "Patient/p1",
        json={"resourceType": "Patient", "id": "p1", "identifier": [identifier]},
        headers=JSON,
    )
    bundle = transaction(
        post_entry(
            "urn:uuid:a",
            {"resourceType": "Patient", "identifier": [identifier]},
            ifNoneExist=f"identifier={identifier['system']}|{identifier['value']}",
        ),
        post_entry(
            "urn:uuid:b",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": f"Patient?identifier={identifier['system']}|999911120"},
            },
        ),
    )
    response = client.post("", json=bundle, headers=JSON)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["entry"][0]["response"]["status"] == "200 OK"
    assert result["entry"][1]["resource"]["subject"]["reference"] == "Patient/p1"
    ambiguous = transaction(
        post_entry(
            "urn:uuid:c",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": "Patient?identifier=nomatch"},
            },
        )
    )
    assert client.post("", json=ambiguous, headers=JSON).status_code == 412


def test_transaction_put_delete_and_get(client: httpx.Client) -> None:
    client.put("Patient/old", json={"resourceType": "Patient", "id": "old"}, headers=JSON)
    bundle = transaction(
        {"request": {"method": "GET", "url": "Patient/new"}},
        {
            "resource": {"resourceType": "Patient", "id": "new", "active": True},
            "request": {"method": "PUT", "url": "Patient/new"},
        },
        {"request": {"method": "DELETE", "url": "Patient/old"}},
    )
    result = client.post("", json=bundle, headers=JSON).json()
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == ["200 OK", "201 Created", "200 OK"]  # GET runs after the PUT
    assert client.get("Patient/old").status_code == 410


def test_the_same_resource_twice_is_refused(client: httpx.Client) -> None:
    bundle = transaction(
        *[
            {
                "resource": {"resourceType": "Patient", "id": "twice"},
                "request": {"method": "PUT", "url": "Patient/twice"},
            }
            for _ in range(2)
        ]
    )
    assert client.post("", json=bundle, headers=JSON).status_code == 400


def test_batch_entries_succeed_or_fail_on_their_own(client: httpx.Client) -> None:
    bundle = transaction(
        post_entry("urn:uuid:x", {"resourceType": "Patient", "active": True}),
        post_entry("urn:uuid:y", {"resourceType": "Patient", "gender": "robot"}),
        {"request": {"method": "GET", "url": "Patient/nope"}},
        kind="batch",
    )
    result = client.post("", json=bundle, headers=JSON).json()
    assert result["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == ["201 Created", "400", "404"]
    assert result["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert client.get("Patient").json()["total"] == 1


def test_bad_bundles(client: httpx.Client) -> None:
    assert (
        client.post(
            "", json={"resourceType": "Bundle", "type": "collection"}, headers=JSON
        ).status_code
        == 400
    )
    assert client.post("", json={"resourceType": "Patient"}, headers=JSON).status_code == 400
    no_request = transaction({"resource": {"resourceType": "Patient"}})
    assert client.post("", json=no_request, headers=JSON).status_code == 400


def test_transaction_conditional_put_and_patch_entries(client: httpx.Client) -> None:
    import base64
    import json

    client.put(
        "Patient/pp", json={"resourceType": "Patient", "id": "pp", "active": True}, headers=JSON
    )
    patch = [{"op": "replace", "path": "/active", "value": False}]
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(json.dumps(patch).encode()).decode(),
    }
    bundle = transaction(
        {"resource": binary, "request": {"method": "PATCH", "url": "Patient/pp"}},
        {
            "resource": {
                "resourceType": "Patient",
                "identifier": [{"system": "http://x", "value": "9"}],
            },
            "request": {"method": "PUT", "url": "Patient?identifier=http://x|9"},
        },
    )
    response = client.post("", json=bundle, headers=JSON)
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["200 OK", "201 Created"]
    assert client.get("Patient/pp").json()["active"] is False
    assert client.get("Patient", params={"identifier": "http://x|9"}).json()["total"] == 1
    bad = transaction(
        {
            "resource": {"resourceType": "Patient"},
            "request": {"method": "PATCH", "url": "Patient/pp"},
        }
    )
    assert client.post("", json=bad, headers=JSON).status_code == 400


def test_a_batch_answers_200_with_each_entrys_own_status(client: httpx.Client) -> None:
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "id": "b1"},
                "request": {"method": "PUT", "url": "Patient/b1"},
            },
            {"resource": {"resourceType": "Patient"}},  # no request: this entry's fault
            "not an entry at all",
            {"request": {"method": "GET", "url": "Nonsense/x"}},
            {
                "resource": {"resourceType": "Patient", "id": "b2", "birthDate": "not a date"},
                "request": {"method": "PUT", "url": "Patient/b2"},
            },
            {
                "resource": {"resourceType": "Patient", "id": "b3"},
                "request": {"method": "PUT", "url": "Patient/b3"},
            },
        ],
    }
    response = client.post("", json=batch)
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"][:3] for e in response.json()["entry"]]
    assert statuses == ["201", "400", "400", "404", "400", "201"]
    for entry in response.json()["entry"][1:5]:
        assert entry["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert client.get("Patient/b1").status_code == 200
    assert client.get("Patient/b3").status_code == 200
    assert client.get("Patient/b2").status_code == 404


def test_an_entry_response_gives_the_versions_time_whole(client: httpx.Client) -> None:
    """response.lastModified is the stored version's instant (microseconds), the one in
    meta.lastUpdated, not the Last-Modified header's whole seconds."""
    bundle = transaction(
        {
            "resource": {"resourceType": "Patient", "id": "lastmod", "active": True},
            "request": {"method": "PUT", "url": "Patient/lastmod"},
        },
        post_entry(
            "urn:uuid:1b0c3f36-0f5e-4f4e-9a53-7d1f8c1f2a10",
            {"resourceType": "Group", "type": "person", "actual": True},
        ),
    )
    response = client.post("", json=bundle, headers=JSON)
    assert response.status_code == 200, response.text
    for entry in response.json()["entry"]:
        assert entry["response"]["lastModified"] == entry["resource"]["meta"]["lastUpdated"]


def test_a_large_transaction_updates_creates_and_deletes_by_rows_read_ahead(
    client: httpx.Client,
) -> None:
    """A transaction reads the rows it writes ahead, 500 ids a statement: each entry still
    sees its resource as it stood (created, updated from its version, deleted)."""
    first = [
        {
            "resource": {"resourceType": "Patient", "id": f"ahead{n}", "active": True},
            "request": {"method": "PUT", "url": f"Patient/ahead{n}"},
        }
        for n in range(600)
    ]
    assert client.post("", json=transaction(*first), headers=JSON).status_code == 200
    second = [
        {
            "resource": {"resourceType": "Patient", "id": f"ahead{n}", "active": False},
            "request": {"method": "PUT", "url": f"Patient/ahead{n}"},
        }
        for n in range(1, 600)
    ]
    second.append({"request": {"method": "DELETE", "url": "Patient/ahead0"}})
    second.append(
        {
            "resource": {"resourceType": "Patient", "id": "ahead600", "active": True},
            "request": {"method": "PUT", "url": "Patient/ahead600"},
        }
    )
    second.append(
        post_entry("urn:uuid:5d1c6a0e-3f5e-4d59-8a55-6c3b9d0e2f11", {"resourceType": "Patient"})
    )
    response = client.post("", json=transaction(*second), headers=JSON)
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses[:599] == ["200 OK"] * 599
    assert statuses[599][:3] in ("200", "204") and statuses[600:] == ["201 Created"] * 2
    for n in (1, 499, 500, 599):
        patient = client.get(f"Patient/ahead{n}").json()
        assert patient["meta"]["versionId"] == "2" and patient["active"] is False
    assert client.get("Patient/ahead0").status_code == 410
    assert client.get("Patient/ahead600").json()["meta"]["versionId"] == "1"
