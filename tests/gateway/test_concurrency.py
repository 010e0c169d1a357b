"""Concurrent writers never lose a write (both databases), and If-Match stays strict."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gateway.interactions.model import Services

JSON = {"Content-Type": "application/fhir+json"}
WRITERS = 8
UPDATES_EACH = 5


def test_concurrent_updates_of_one_resource_lose_nothing(client: httpx.Client, base: str) -> None:
    client.put("Patient/busy", json={"resourceType": "Patient", "id": "busy"}, headers=JSON)

    def writer(number: int) -> list[int]:
        statuses = []
        with httpx.Client(base_url=base + "/", timeout=60) as own:
            for update in range(UPDATES_EACH):
                patient = {
                    "resourceType": "Patient",
                    "id": "busy",
                    "name": [{"text": f"writer {number} update {update}"}],
                }
                statuses.append(own.put("Patient/busy", json=patient, headers=JSON).status_code)
        return statuses

    with ThreadPoolExecutor(WRITERS) as pool:
        statuses = [s for result in pool.map(writer, range(WRITERS)) for s in result]
    assert statuses == [200] * (WRITERS * UPDATES_EACH)
    total = 1 + WRITERS * UPDATES_EACH
    current = client.get("Patient/busy").json()
    assert current["meta"]["versionId"] == str(total)
    history = client.get("Patient/busy/_history", params={"_count": 1000}).json()
    versions = sorted(int(e["resource"]["meta"]["versionId"]) for e in history["entry"])
    assert versions == list(range(1, total + 1))
    texts = {e["resource"].get("name", [{}])[0].get("text") for e in history["entry"]}
    assert len(texts - {None}) == WRITERS * UPDATES_EACH  # every write is in the history


def test_concurrent_if_match_updates_let_exactly_one_win(client: httpx.Client, base: str) -> None:
    client.put("Patient/race", json={"resourceType": "Patient", "id": "race"}, headers=JSON)

    def writer(number: int) -> int:
        with httpx.Client(base_url=base + "/", timeout=60) as own:
            patient = {"resourceType": "Patient", "id": "race", "name": [{"text": str(number)}]}
            return own.put(
                "Patient/race", json=patient, headers={**JSON, "If-Match": 'W/"1"'}
            ).status_code

    with ThreadPoolExecutor(WRITERS) as pool:
        statuses = list(pool.map(writer, range(WRITERS)))
    assert sorted(statuses) == [200] + [412] * (WRITERS - 1)
    assert client.get("Patient/race").json()["meta"]["versionId"] == "2"


def test_concurrent_creates_with_the_same_client_id(client: httpx.Client, base: str) -> None:
    def writer(number: int) -> int:
        with httpx.Client(base_url=base + "/", timeout=60) as own:
            patient = {"resourceType": "Patient", "id": "same", "name": [{"text": str(number)}]}
            return own.put("Patient/same", json=patient, headers=JSON).status_code

    with ThreadPoolExecutor(WRITERS) as pool:
        statuses = list(pool.map(writer, range(WRITERS)))
    assert sorted(statuses) == [200] * (WRITERS - 1) + [201]
    assert client.get("Patient/same").json()["meta"]["versionId"] == str(WRITERS)


def test_a_read_of_several_statements_sees_one_snapshot(
    client: httpx.Client, services: Services
) -> None:
    """A search's statements (its page's keys, its count, its rows, its includes) read one
    snapshot: a write committed between two of them is seen by neither. On PostgreSQL a
    transaction at READ COMMITTED takes a snapshot per statement, so its total and its
    page could disagree; a read of several statements runs at REPEATABLE READ."""
    count = text("SELECT count(*) FROM resources WHERE res_type = 'Patient'")
    client.put("Patient/before", json={"resourceType": "Patient", "id": "before"}, headers=JSON)
    with services.store.read() as session:
        first = session.connection.execute(count).scalar_one()
        created = client.put(
            "Patient/between", json={"resourceType": "Patient", "id": "between"}, headers=JSON
        )
        assert created.status_code == 201
        assert session.connection.execute(count).scalar_one() == first
    with services.store.read(snapshot=False) as session:  # one statement: its own snapshot
        assert session.connection.execute(count).scalar_one() == first + 1


def test_a_read_of_several_statements_cannot_write(services: Services) -> None:
    """What reads a snapshot writes nothing: on PostgreSQL the database refuses it."""
    if services.store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's read transactions are not marked read-only")
    with pytest.raises(DBAPIError), services.store.read() as session:
        session.connection.execute(text("DELETE FROM resources WHERE res_type = 'Patient'"))
