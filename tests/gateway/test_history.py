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


def test_every_version_keeps_its_own_content_through_updates_and_a_delete(
    client: httpx.Client,
) -> None:
    """The current version's bytes live once, in the resource; a superseded version keeps
    its own (ADR 0016): each version, read alone or in the history, is what was written."""
    for family in ("Een", "Twee", "Drie"):
        resource = {"resourceType": "Patient", "id": "versions", "name": [{"family": family}]}
        assert client.put("Patient/versions", json=resource).status_code in (200, 201)
    assert client.delete("Patient/versions").status_code in (200, 204)
    families = [
        client.get(f"Patient/versions/_history/{n}").json()["name"][0]["family"] for n in (1, 2, 3)
    ]
    assert families == ["Een", "Twee", "Drie"]
    assert client.get("Patient/versions/_history/4").status_code == 410
    history = client.get("Patient/versions/_history").json()
    seen = [e.get("resource", {}).get("name", [{}])[0].get("family") for e in history["entry"]]
    assert seen == [None, "Drie", "Twee", "Een"]  # newest first; the delete has no resource
    again = {"resourceType": "Patient", "id": "versions", "name": [{"family": "Vier"}]}
    assert client.put("Patient/versions", json=again).status_code in (200, 201)
    assert client.get("Patient/versions/_history/3").json()["name"][0]["family"] == "Drie"
    assert client.get("Patient/versions/_history/5").json()["name"][0]["family"] == "Vier"
