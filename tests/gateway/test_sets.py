"""The records an access-log entry names, indexed once per set of records (ADR 0043), over
real HTTP: every statement that reads an entry's ``entity`` rows (a value, a second
filter, ``:missing``, a chain, ``_has``, ``_include``, ``_revinclude``, a Subscription's
keys) finds an entry through its set as through rows of its own; a set's rows are stored
once, whoever writes its entries; a deleted entry leaves its set to the others. Entries are
stored as the log's indexer stores them (``Session.add_new``)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from gateway.delivery import _index_keys
from gateway.interactions.model import Services
from gateway.search.extract import SET_FEWEST
from gateway.store.schema import search_kind, search_reference
from tests.gateway.test_kinds import entry, ids, put, store

#: a search's records: as many as make a set
RECORDS = [f"Observation/o{n}" for n in range(1, SET_FEWEST + 1)]


@pytest.fixture()
def sets(client: httpx.Client, base: str, services: Services) -> None:
    """The Observations of p1, and four entries: two searches that disclosed all of them
    (one set), one that disclosed all but the last (another set), one read of the first
    (rows of its own)."""
    for reference in RECORDS:
        observation = {
            "resourceType": "Observation",
            "id": reference.partition("/")[2],
            "status": "final",
            "code": {"text": "weight"},
            "subject": {"reference": "Patient/p1"},
        }
        put(client, observation)
    store(
        services,
        entry(base, "s1", "search-type", RECORDS, minute=1),
        entry(base, "s2", "search-type", RECORDS, minute=2),
        entry(base, "s3", "search-type", RECORDS[:-1], minute=3),
        entry(base, "r1", "read", RECORDS[:1], minute=4),
    )


LAST, FIRST = RECORDS[-1], RECORDS[0]


def _set_rows(services: Services) -> tuple[int, int]:
    """(rows of records under sets' keys, sets and kinds named by entries)."""
    with services.store.engine.connect() as connection:
        rows = connection.execute(
            select(func.count()).where(search_reference.c.res_pk < 0)
        ).scalar_one()
        named = connection.execute(
            select(func.count(func.distinct(search_kind.c.kind))).where(search_kind.c.res_pk > 0)
        ).scalar_one()
    return rows, named


def test_a_record_finds_the_entries_whose_set_names_it(client: httpx.Client, sets: None) -> None:
    assert sorted(ids(client, f"AuditEvent?entity={LAST}")) == ["s1", "s2"]
    assert sorted(ids(client, f"AuditEvent?entity={FIRST}")) == ["r1", "s1", "s2", "s3"]
    assert sorted(ids(client, "AuditEvent?entity=Patient/p1")) == ["r1", "s1", "s2", "s3"]
    assert ids(client, "AuditEvent?entity=Observation/o99") == []
    assert sorted(ids(client, "AuditEvent?entity:missing=false")) == ["r1", "s1", "s2", "s3"]
    assert ids(client, "AuditEvent?entity:missing=true") == []


def test_a_record_as_a_second_filter_and_counted(client: httpx.Client, sets: None) -> None:
    """Probed for each candidate of another filter; counted and paged exactly."""
    assert sorted(ids(client, f"AuditEvent?patient=Patient/p1&entity={LAST}")) == ["s1", "s2"]
    assert ids(client, f"AuditEvent?subtype=read&entity={FIRST}") == ["r1"]
    counted = client.get("AuditEvent", params={"entity": FIRST, "_summary": "count"})
    assert counted.json()["total"] == 4
    page = client.get(f"AuditEvent?entity={FIRST}&_count=3&_total=accurate").json()
    assert page["total"] == 4 and len(page["entry"]) == 3


def test_chains_and_has_through_a_set(client: httpx.Client, sets: None) -> None:
    last = LAST.partition("/")[2]
    assert sorted(ids(client, f"AuditEvent?entity:Observation._id={last}")) == ["s1", "s2"]
    searched = sorted(ids(client, "Observation?_has:AuditEvent:entity:subtype=search-type"))
    assert searched == sorted(r.partition("/")[2] for r in RECORDS)
    read = ids(client, "Observation?_has:AuditEvent:entity:subtype=read")
    assert read == [FIRST.partition("/")[2]]


def test_includes_through_a_set(client: httpx.Client, sets: None) -> None:
    """``_include`` follows a set's records; ``_revinclude`` finds the entries whose set
    names a record (who looked at this record)."""
    bundle = client.get("AuditEvent?_id=s3&_include=AuditEvent:entity").json()
    included = sorted(
        e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"
    )
    assert included == sorted(r.partition("/")[2] for r in RECORDS[:-1])
    last = LAST.partition("/")[2]
    bundle = client.get(f"Observation?_id={last}&_revinclude=AuditEvent:entity").json()
    who = sorted(e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include")
    assert who == ["s1", "s2"]


def test_a_sets_rows_are_stored_once_whoever_writes_its_entries(
    base: str, services: Services, sets: None
) -> None:
    """Two sets for three searches (the read's one record stays its own); a process that
    forgot which kinds are stored (another process, a restart) stores none again."""
    rows, named = _set_rows(services)
    assert rows == (len(RECORDS) + 1) + len(RECORDS)  # each with its patient
    services.store.known_kinds = set()
    store(services, entry(base, "s4", "search-type", RECORDS, minute=5))
    assert _set_rows(services) == (rows, named)


def test_a_deleted_entry_leaves_its_set_to_the_others(
    client: httpx.Client, services: Services, sets: None
) -> None:
    services.store.write(lambda session: session.delete("AuditEvent", "s1"))
    assert ids(client, f"AuditEvent?entity={LAST}") == ["s2"]


def test_a_set_stored_twice_answers_as_once(
    client: httpx.Client, services: Services, sets: None
) -> None:
    """Two PostgreSQL transactions that store one new set at once both store its rows."""
    with services.store.engine.begin() as connection:
        for table in (search_reference, search_kind):
            twice = select(*table.c).where(table.c.res_pk < 0)
            connection.execute(table.insert().from_select(list(table.c.keys()), twice))
    assert sorted(ids(client, f"AuditEvent?entity={LAST}")) == ["s1", "s2"]
    counted = client.get("AuditEvent", params={"entity": FIRST, "_summary": "count"})
    assert counted.json()["total"] == 4
    last = LAST.partition("/")[2]
    bundle = client.get(f"Observation?_id={last}&_revinclude=AuditEvent:entity").json()
    assert len(bundle["entry"]) == 3


def test_a_subscriptions_keys_of_an_entry_hold_its_sets_records(
    services: Services, sets: None
) -> None:
    with services.store.read() as session:
        keys = _index_keys(session, "AuditEvent", "s1")
    assert ("entity", LAST) in keys and ("patient", "Patient/p1") in keys
