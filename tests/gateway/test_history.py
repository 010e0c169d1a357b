"""history at instance, type and system level, with _since and paging."""

from __future__ import annotations

import httpx

JSON = {"Content-Type": "application/fhir+json"}


def test_instance_type_and_system_history(client: httpx.Client) -> None:
    for version in range(3):
        client.put(
            "Patient/h1",
            json={"resourceType": "Patient", "id": "h1", "active": version % 2 == 0},
            headers=JSON,
        )
    client.put("Organization/o1", json={"resourceType": "Organization", "id": "o1"}, headers=JSON)
    instance = client.get("Patient/h1/_history").json()
    assert instance["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in instance["entry"]] == ["3", "2", "1"]
    assert instance["entry"][0]["request"] == {"method": "PUT", "url": "Patient/h1"}
    assert len(client.get("Patient/_history").json()["entry"]) == 3
    system = client.get("_history").json()
    assert system["entry"][0]["resource"]["resourceType"] == "Organization"
    assert len(system["entry"]) == 4


def test_history_paging_and_since(client: httpx.Client) -> None:
    for version in range(5):
        client.put(
            "Patient/h2",
            json={"resourceType": "Patient", "id": "h2", "birthDate": f"200{version}"},
            headers=JSON,
        )
    page = client.get("Patient/h2/_history", params={"_count": 2}).json()
    versions = [e["resource"]["meta"]["versionId"] for e in page["entry"]]
    next_url = next(link["url"] for link in page["link"] if link["relation"] == "next")
    second = httpx.get(next_url).json()
    versions += [e["resource"]["meta"]["versionId"] for e in second["entry"]]
    assert versions == ["5", "4", "3", "2"]
    third_updated = client.get("Patient/h2/_history/3").json()["meta"]["lastUpdated"]
    since = client.get("Patient/h2/_history", params={"_since": third_updated}).json()
    assert [e["resource"]["meta"]["versionId"] for e in since["entry"]] == ["5", "4", "3"]
    assert client.get("Patient/h2/_history", params={"_since": "never"}).status_code == 400
    assert client.get("Patient/h2/_history", params={"_at": "2020"}).status_code == 400


def test_history_of_unknown_resource_is_404(client: httpx.Client) -> None:
    assert client.get("Patient/nobody/_history").status_code == 404
