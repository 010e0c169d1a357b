"""The access log as written, and its indexing as AuditEvent resources (ADR 0021).

Every entry is committed with the access it records, as a row of ``access_log``: a write's
in the database, in the write's transaction; a read's, on SQLite, in the log's own file
(ADR 0027). The gateway indexes the rows as AuditEvents in batches, and a read that can
show AuditEvents indexes what waits first. Tested on the store, through dispatch, over
HTTP, under a real kill -9, with concurrent indexers; each on a database of its own (the
session's servers index their own log every second, which would race a test that looks at
what waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import orjson
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError

from consent.audit import Access, audit_event
from gateway.app import build_services
from gateway.interactions.auditlog import REST_SHARE, Checkpointer, GroupCommit, LogIndexer
from gateway.interactions.authorize import commit_events, commit_events_now, write_events
from gateway.interactions.dispatch import Dispatcher, dispatch, shows_access_log
from gateway.interactions.model import FhirRequest, Services
from gateway.interactions.privileged import system_context
from gateway.interactions.routes import match_route
from gateway.loading import load
from gateway.security import build_security
from gateway.settings import Settings
from gateway.store.engine import make_engine, write_transaction
from gateway.store.logged import VERSION as LOG_VERSION
from gateway.store.logged import unpack, unpacked_size
from gateway.store.repository import LOG_FILE_SUFFIX, Store, access_log_engine, instant_of
from gateway.store.repository import _with_meta as content_with_meta
from gateway.store.schema import access_log, resources
from tests.conftest import _free_port
from tests.smart import account, bearer, login


@pytest.fixture()
def own(own_database: str) -> Iterator[Services]:
    """Services on a database of the test's own, with no server (and no indexer) on it."""
    services = build_services(Settings(database_url=own_database), migrate=True)
    yield services
    services.store.dispose()


def _events(patient: str, count: int) -> list[dict[str, Any]]:
    at = dt.datetime.now(dt.UTC)
    return [
        audit_event(
            None,
            Access("read", "0", at, patient=patient, objects=[f"Observation/o{n}"]),
            "http://example.org/fhir",
        )
        for n in range(count)
    ]


def _sqlite_only(services: Services) -> None:
    if services.store.engine.dialect.name != "sqlite":
        pytest.skip("entries are committed on the event loop on SQLite only (ADR 0026)")


def _log_engines(services: Services) -> list[Engine]:
    """Where entries wait: the database, and on SQLite the log's own file (ADR 0027)."""
    store = services.store
    return [store.engine] if store.log_engine is store.engine else [store.engine, store.log_engine]


def _waiting(services: Services) -> int:
    total = 0
    for engine in _log_engines(services):
        with engine.connect() as connection:
            count = connection.execute(select(func.count()).select_from(access_log))
            total += int(count.scalar_one())
    return total


def _indexed(services: Services) -> list[dict[str, Any]]:
    query = select(resources.c.content).where(resources.c.res_type == "AuditEvent")
    with services.store.engine.connect() as connection:
        return [orjson.loads(row[0]) for row in connection.execute(query)]


def _every_entry(services: Services) -> list[dict[str, Any]]:
    """The entries waiting and indexed, each once. In the database an entry moves from
    waiting to indexed in one transaction, read here in one statement (one snapshot); one
    of the log's own file is stored as an AuditEvent before it is deleted from the file, so
    the file is read first: an entry moved meanwhile is seen in both, never in neither."""
    store = services.store
    found: dict[str, dict[str, Any]] = {}
    if store.log_engine is not store.engine:
        with store.log_engine.connect() as connection:
            for row in connection.execute(select(access_log.c.content)):
                entry = orjson.loads(unpack(row[0]))
                found[entry["id"]] = entry
    waiting = select(access_log.c.content)
    indexed = select(resources.c.content).where(resources.c.res_type == "AuditEvent")
    with store.engine.connect() as connection:
        for row in connection.execute(waiting.union_all(indexed)):
            entry = orjson.loads(unpack(row[0]))
            found.setdefault(entry["id"], entry)
    return list(found.values())


def _search(services: Services, url: str) -> dict[str, Any]:
    context = system_context(services, "test: reading the access log", Dispatcher())
    parts = urlsplit(url)
    response = dispatch(context, FhirRequest("GET", parts.path, query=parse_qsl(parts.query)))
    assert response.status == 200, response.body
    body = response.body
    return orjson.loads(body if isinstance(body, bytes) else orjson.dumps(body))


def test_entries_wait_as_written_and_are_indexed_oldest_first_with_their_time(
    own: Services,
) -> None:
    commit_events(own, _events("p1", 3))
    commit_events(own, _events("p2", 2))
    assert _waiting(own) == 5 and _indexed(own) == []
    with own.store.log_engine.connect() as connection:
        first = connection.execute(
            select(access_log.c.recorded, access_log.c.content).order_by(access_log.c.seq)
        ).all()
    assert own.store.index_access_log(3) == (3, True)  # it stopped at its size
    indexed = {e["id"]: e for e in _indexed(own)}
    oldest = [orjson.loads(unpack(row[1])) for row in first[:3]]
    assert sorted(indexed) == sorted(e["id"] for e in oldest)
    for (recorded, _), event in zip(first[:3], oldest, strict=True):
        meta = indexed[event["id"]]["meta"]
        assert meta == {"versionId": "1", "lastUpdated": instant_of(recorded)}
        assert {k: v for k, v in indexed[event["id"]].items() if k != "meta"} == event
    assert _waiting(own) == 2
    assert own.store.catch_up_access_log() == 2
    assert _waiting(own) == 0 and len(_indexed(own)) == 5
    assert own.store.catch_up_access_log() == 0  # nothing waits: no write at all


def test_entries_committed_at_once_wait_as_written_like_any_other(own: Services) -> None:
    """``commit_events_now`` (a request on the event loop, ADR 0026): on SQLite the
    entries are committed at once, with their ids, and indexed as the others are; on
    PostgreSQL nothing runs on the loop and nothing is written."""
    events = _events("p1", 2)
    committed = commit_events_now(own, events)
    if own.store.engine.dialect.name == "postgresql":
        assert committed is False and _waiting(own) == 0
        return
    assert committed is True and _waiting(own) == 2
    assert all(event["id"] for event in events)
    assert own.store.catch_up_access_log() == 2
    assert sorted(e["id"] for e in _indexed(own)) == sorted(e["id"] for e in events)


def test_every_way_an_entry_is_committed_packs_it(own: Services) -> None:
    """A read's entries on a pool thread, on SQLite's event loop, and a write's in its own
    transaction: the log holds each packed (ADR 0053), and each is indexed as the JSON it
    was."""
    postgresql = own.store.engine.dialect.name == "postgresql"
    events = [_events("p1", 1), _events("p2", 1), _events("p3", 1)]
    commit_events(own, events[0])
    assert commit_events_now(own, events[1]) is not postgresql  # PostgreSQL: not on the loop
    own.store.write(lambda session: write_events(own, session, events[2]))
    contents = [bytes(row[2]) for engine in _log_engines(own) for row in _logged(engine)]
    assert len(contents) == (2 if postgresql else 3)
    assert all(content[0] == LOG_VERSION for content in contents)
    assert own.store.catch_up_access_log() == len(contents)
    stored = {entry["id"]: entry for entry in _indexed(own)}
    for kept in events if not postgresql else [events[0], events[2]]:
        entry = stored[kept[0]["id"]]
        assert {k: v for k, v in entry.items() if k != "meta"} == kept[0]


def test_an_entrys_id_is_ordered_by_the_time_it_was_logged(own: Services) -> None:
    """Time-ordered AuditEvent ids (ADR 0036): an entry logged later has a larger id, so
    its index rows go at the end of the id's B-trees."""
    first = _events("p1", 1)
    commit_events(own, first)
    time.sleep(0.002)
    second = _events("p1", 1)
    commit_events(own, second)
    ids = [first[0]["id"], second[0]["id"]]
    assert [uuid.UUID(made).version for made in ids] == [7, 7]
    assert ids[0] < ids[1]
    assert sorted(entry["id"] for entry in _every_entry(own)) == ids


def test_an_entry_is_not_committed_at_once_while_another_writer_holds_the_lock(
    own: Services,
) -> None:
    """The loop never waits: with the log's write lock held elsewhere it is told so at once
    and writes nothing; once the lock is free it commits."""
    _sqlite_only(own)
    started = time.monotonic()
    with write_transaction(own.store.log_engine) as other:
        other.execute(access_log.insert(), {"recorded": 1, "content": b"{}"})
        assert own.store.log_access_now(_events("p1", 1)) is False
        assert time.monotonic() - started < 5  # no wait for the 30 s busy timeout
    assert _waiting(own) == 1  # the other writer's row only
    assert own.store.log_access_now(_events("p1", 1)) is True
    assert _waiting(own) == 2


def test_a_batch_the_lock_held_back_is_committed_by_the_loop_once_it_is_free(
    own: Services,
) -> None:
    """Another connection holds the log's write lock (as the indexer does while it deletes
    a batch it stored): the loop's batch is tried again on the loop, which serves on
    meanwhile, and committed there once the lock is free; no thread waits for it (ADR
    0047)."""
    _sqlite_only(own)
    on_threads: list[list[dict[str, Any]]] = []
    group = GroupCommit(on_threads.append, write_now=lambda e: commit_events_now(own, e))
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with write_transaction(own.store.log_engine) as other:
            other.execute(access_log.insert(), {"recorded": 1, "content": b"{}"})
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)

    async def main() -> None:
        batch = asyncio.gather(*(group.submit_async(_events("p1", 1)) for _ in range(3)))
        await asyncio.sleep(0.05)  # the loop is free: this sleep ends while it is held
        assert not batch.done()
        release.set()
        await asyncio.wait_for(batch, 10)

    try:
        asyncio.run(main())
    finally:
        release.set()
        holder.join(10)
    assert on_threads == []
    assert _waiting(own) == 4


def test_the_log_file_zeroes_what_it_deletes_only_where_that_costs_no_write(
    own: Services,
) -> None:
    """An entry deleted from the log's own file is stored as an AuditEvent already (ADR
    0047): the file's connections zero deleted bytes only on pages they write anyway."""
    _sqlite_only(own)
    if own.store.log_engine is own.store.engine:
        pytest.skip("no log file of its own: an in-memory database")
    with own.store.log_engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA secure_delete").scalar() == 2  # FAST


def test_a_failed_commit_at_once_is_raised_and_the_next_one_starts_afresh(own: Services) -> None:
    """A database failure is raised, not taken for a held lock (the request fails, as a
    failed log write on a thread makes it fail); its connection is given up."""
    _sqlite_only(own)
    assert own.store.log_access_now(_events("p1", 1)) is True
    with own.store.log_engine.begin() as connection:
        connection.execute(text("ALTER TABLE access_log RENAME TO access_log_away"))
    with pytest.raises(DBAPIError, match="no such table") as raised:
        own.store.log_access_now(_events("p1", 1))
    assert isinstance(raised.value.orig, sqlite3.OperationalError)
    assert "INSERT" not in str(raised.value)  # no SQL in what may reach a log
    with own.store.log_engine.begin() as connection:
        connection.execute(text("ALTER TABLE access_log_away RENAME TO access_log"))
    assert own.store.log_access_now(_events("p1", 1)) is True
    assert _waiting(own) == 2


def test_a_failed_log_commit_is_raised_without_sql_and_the_log_goes_on(own: Services) -> None:
    """On a thread (PostgreSQL: one INSERT in autocommit, ADR 0026): a database failure is
    raised as SQLAlchemy's error, nothing is written, and no connection goes back to the
    pool unfit for the next transaction (in autocommit, a rollback would undo nothing)."""
    log = own.store.log_engine
    with log.begin() as connection:
        connection.execute(text("ALTER TABLE access_log RENAME TO access_log_away"))
    with pytest.raises(DBAPIError):
        commit_events(own, _events("p1", 2))
    with log.begin() as connection:
        connection.execute(text("ALTER TABLE access_log_away RENAME TO access_log"))
    assert _waiting(own) == 0
    for _ in range(3):  # every pooled connection is fit again (no autocommit left on)
        commit_events(own, _events("p1", 1))
    with log.connect() as connection:  # a transaction that rolls back, does
        connection.execute(access_log.insert(), {"recorded": 1, "content": b"{}"})
        connection.rollback()
    assert _waiting(own) == 3


def test_a_batch_stops_at_its_size_in_entries_or_in_bytes(own: Services) -> None:
    large = _events("p1", 1)[0]
    large["entity"] = large["entity"] * 50  # a search's entry names fifty records
    commit_events(own, [dict(large) for _ in range(3)])
    size = len(orjson.dumps(large))
    assert own.store.index_access_log(100, max_bytes=size + size // 2) == (1, True)
    assert own.store.index_access_log(100, max_bytes=size // 2) == (1, True)  # one at least
    commit_events(own, _events("p1", 2))
    assert own.store.index_access_log(100) == (3, False)  # all that waited
    assert own.store.index_access_log(100) == (0, False)


def test_forgetting_no_entries_takes_no_lock_and_deletes_nothing(own: Services) -> None:
    _sqlite_log_file(own)
    commit_events(own, _events("p1", 2))
    own.store.forget_logged([])
    assert _waiting(own) == 2


def test_a_batch_of_hundreds_is_stored_each_under_its_own_key(own: Services) -> None:
    """The indexer inserts a batch's AuditEvents a hundred to a statement and takes each
    one's new key by its id (ADR 0048): every entry of 250, indexed in one round, is found
    by the record it names, and read back whole."""
    commit_events(own, _events("p1", 250))  # each names Observation/o0 ... o249
    assert own.store.index_access_log(1000, max_bytes=10 * 1024 * 1024) == (250, False)
    logged = {e["id"]: e for e in _indexed(own)}
    assert len(logged) == 250
    for n in (0, 99, 100, 101, 199, 200, 249):
        found = _search(own, f"AuditEvent?entity=Observation/o{n}")
        assert found["total"] == 1
        event = found["entry"][0]["resource"]
        assert {"reference": f"Observation/o{n}"} in [e.get("what") for e in event["entity"]]
        assert event == {**logged[event["id"]], "meta": event["meta"]}


def test_an_entry_is_stored_as_logged_with_its_meta_added(own: Services) -> None:
    """An indexed entry's stored bytes are those it was logged in with its meta added at
    the end (ADR 0049): byte for byte what writing it whole again gives, its non-ASCII
    text included. An entry with a meta of its own keeps it, the version's added. The log
    holds each packed, in a quarter of its JSON's bytes at most (ADR 0053)."""
    at = dt.datetime.now(dt.UTC)
    refused = "geweigerd: één toestemming ontbreekt"
    plain = audit_event(
        None,
        Access("read", "4", at, "p1", ["Observation/o1"], description=refused),
        "http://example.org/fhir",
    )
    tagged = audit_event(
        None, Access("read", "0", at, "p1", ["Observation/o2"]), "http://example.org/fhir"
    )
    label = {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
    tagged["meta"] = {"security": [label]}
    commit_events(own, [plain, tagged])
    logged: dict[str, tuple[int, bytes]] = {}
    for engine in _log_engines(own):
        with engine.connect() as connection:
            for recorded, content in connection.execute(
                select(access_log.c.recorded, access_log.c.content)
            ):
                assert content[0] == LOG_VERSION  # packed (ADR 0053): a fraction of its JSON
                assert len(content) * 4 < len(unpack(content))
                logged[orjson.loads(unpack(content))["id"]] = (recorded, unpack(content))
    assert own.store.index_access_log(10) == (2, False)
    query = select(resources.c.res_id, resources.c.content).where(
        resources.c.res_type == "AuditEvent"
    )
    with own.store.engine.connect() as connection:
        stored = {res_id: bytes(content) for res_id, content in connection.execute(query)}
    assert stored.keys() == logged.keys()
    for res_id, content in stored.items():
        recorded, written = logged[res_id]
        entry = orjson.loads(content)
        assert orjson.dumps(entry) == content
        own_meta = orjson.loads(written).get("meta", {})
        assert own_meta or list(entry)[-1] == "meta"  # added at the end where there was none
        version = {"versionId": "1", "lastUpdated": instant_of(recorded)}
        assert entry["meta"] == {**own_meta, **version}
        assert {k: v for k, v in entry.items() if k != "meta"} == {
            k: v for k, v in orjson.loads(written).items() if k != "meta"
        }
    assert orjson.loads(stored[plain["id"]])["outcomeDesc"] == refused
    assert orjson.loads(stored[tagged["id"]])["meta"]["security"] == [label]
    with_meta = content_with_meta(b'{"a":1}', {"versionId": "1"})
    assert with_meta == b'{"a":1,"meta":{"versionId":"1"}}'
    assert content_with_meta(b"{}", {"versionId": "1"}) is None  # no member to follow
    assert content_with_meta(b"[1]", {"versionId": "1"}) is None


def test_a_search_of_the_log_indexes_what_waits_first(own: Services) -> None:
    load(own, [{"resourceType": "Patient", "id": "p1"}], "test: a client")
    commit_events(own, _events("p1", 3))
    commit_events(own, _events("p2", 1))
    assert _search(own, "AuditEvent?patient=Patient/p1")["total"] == 3
    assert _waiting(own) == 0
    commit_events(own, _events("p1", 2))  # a revinclude from another type names the log
    found = _search(own, "Patient?_id=p1&_revinclude=AuditEvent:patient")
    assert sum(e["resource"]["resourceType"] == "AuditEvent" for e in found["entry"]) == 5
    commit_events(own, _events("p2", 1))  # so does the history of everything
    history = _search(own, "_history?_count=100")["entry"]
    assert sum(e["resource"]["resourceType"] == "AuditEvent" for e in history) == 7


def test_a_read_of_one_entry_finds_it_while_it_still_waits(own: Services) -> None:
    commit_events(own, _events("p1", 1))
    with own.store.log_engine.connect() as connection:
        waiting = orjson.loads(
            unpack(connection.execute(select(access_log.c.content)).scalar_one())
        )
    found = _search(own, f"AuditEvent/{waiting['id']}")
    assert found["id"] == waiting["id"] and found["meta"]["versionId"] == "1"


@pytest.mark.parametrize(
    ("method", "path", "query", "shows"),
    [
        ("GET", "Observation/o1", [], False),
        ("GET", "Observation", [("subject", "Patient/p1")], False),
        ("POST", "Observation", [], False),
        ("GET", "metadata", [], False),
        ("GET", "AuditEvent/a1", [], True),
        ("GET", "AuditEvent", [("patient", "p1")], True),
        ("GET", "AuditEvent/a1/_history", [], True),
        ("GET", "Observation", [("_revinclude", "AuditEvent:entity")], True),
        ("GET", "Patient", [("_has:AuditEvent:patient:action", "R")], True),
        ("GET", "", [("_type", "Patient,AuditEvent")], True),
        ("GET", "_history", [], True),
        ("POST", "", [], True),  # a Bundle may hold searches of the log
    ],
)
def test_which_requests_can_show_the_log(
    method: str, path: str, query: list[tuple[str, str]], shows: bool
) -> None:
    route, groups = match_route(method, path)
    assert shows_access_log(route, groups, FhirRequest(method, path, query=query)) is shows


def _read_batch(own: Services) -> Callable[[], int]:
    """An indexer's round cut in two, as ``Store.index_access_log`` runs it on SQLite: the
    batch read and worked out now, and the rest (its write, and from the log's own file
    its delete) when the returned function is called; it says how many it stored."""
    rows = _logged(own.store.log_engine)
    news = own.store.prepare_new(
        [orjson.loads(unpack(row[2])) for row in rows], times=[row[1] for row in rows]
    )
    read = [(row[0], row[1]) for row in rows]

    def finish() -> int:
        if own.store.log_engine is own.store.engine:
            return own.store.write(lambda s: s.index_prepared(read, news))
        stored = own.store.write(lambda s: s.index_copies(news))
        own.store.forget_logged(read)
        return stored

    return finish


def test_a_batch_worked_out_before_its_write_moves_only_what_still_waits(
    own: Services,
) -> None:
    """On SQLite a batch is read and its index rows worked out before the write lock is
    taken; entries another indexer moved meanwhile are left out of its write (in the
    database: it still deletes them; from the log's own file: stored already)."""
    commit_events(own, _events("p1", 4))
    batch = _read_batch(own)
    assert own.store.index_access_log(2) == (2, True)  # another indexer, meanwhile
    assert batch() == 2
    ids = [e["id"] for e in _indexed(own)]
    assert len(ids) == len(set(ids)) == 4 and _waiting(own) == 0
    found = _search(own, "AuditEvent?patient=Patient/p1&_count=10")
    assert found["total"] == 4  # the index rows worked out early carry their keys


def test_a_late_indexer_never_deletes_an_entry_logged_after_its_batch(own: Services) -> None:
    """Two indexers read one batch (the indexer process, and a read that catches the log
    up first); one stores and deletes it, the log is empty, and a new entry is logged: on
    SQLite it may take a key of the deleted batch again. The other indexer, finishing the
    same batch, deletes only the entries it read, never that new one."""
    commit_events(own, _events("p1", 2))
    batch = _read_batch(own)
    while own.store.index_access_log(10).more:  # the other indexer, meanwhile
        pass
    assert _waiting(own) == 0
    commit_events(own, _events("p2", 1))  # logged after the batch was read and indexed
    assert batch() == 0
    assert _waiting(own) == 1  # the new entry still waits, then is indexed
    own.store.catch_up_access_log()
    assert sorted(e["entity"][0]["what"]["reference"] for e in _indexed(own)) == [
        "Patient/p1",
        "Patient/p1",
        "Patient/p2",
    ]


def test_a_seq_is_never_given_twice_once_the_log_is_empty(own: Services) -> None:
    """Once every waiting entry is indexed the log is empty; the next entry still takes a
    seq no entry had before (on SQLite AUTOINCREMENT, migration 0015; a rowid table gave
    the first seq again), in the database and in the log's own file alike."""
    entry = {"recorded": 1, "content": b"{}"}
    for engine in _log_engines(own):
        with write_transaction(engine) as connection:
            connection.execute(access_log.insert(), [entry, entry])
        before = max(row[0] for row in _logged(engine))
        with write_transaction(engine) as connection:  # emptied, as an indexer's round does
            connection.execute(access_log.delete())
        with write_transaction(engine) as connection:
            connection.execute(access_log.insert(), entry)
        (after,) = [row[0] for row in _logged(engine)]
        assert after > before


def test_a_log_file_made_before_seqs_were_never_reused_is_rebuilt_with_its_entries(
    tmp_path: Path,
) -> None:
    """A log file beside the database made before migration 0015 is rebuilt when it is first
    opened: its waiting entries kept with their seqs, its seqs from then on never given
    twice (then opened again, it is left as it is)."""
    path = tmp_path / ("dossier.db" + LOG_FILE_SUFFIX)
    with contextlib.closing(sqlite3.connect(path)) as old:
        old.execute(
            "CREATE TABLE access_log (seq INTEGER NOT NULL, recorded BIGINT NOT NULL,"
            " content BLOB NOT NULL, PRIMARY KEY (seq))"
        )
        old.executemany("INSERT INTO access_log VALUES (?, ?, ?)", [(1, 10, b"a"), (2, 20, b"b")])
        old.commit()
    for _ in range(2):
        log = access_log_engine(make_engine(f"sqlite:///{tmp_path}/dossier.db"))
        try:
            assert [tuple(row) for row in _logged(log)] == [(1, 10, b"a"), (2, 20, b"b")]
            with log.connect() as connection:
                made = connection.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = 'access_log'"
                ).scalar_one()
            assert "AUTOINCREMENT" in made
        finally:
            log.dispose()
    with write_transaction(log) as connection:
        connection.execute(access_log.delete())
        connection.execute(access_log.insert(), {"recorded": 30, "content": b"c"})
    assert [row[0] for row in _logged(log)] == [3]
    log.dispose()


def _open_at_once(folder: Path, processes: int = 4) -> list[list[int]]:
    """Open the access log of ``folder/dossier.db`` from ``processes`` gateway processes at
    the same moment (here threads, each with an engine of its own) and read its seqs in
    each; every opener must succeed."""
    start = threading.Barrier(processes)
    found: list[list[int]] = []
    failures: list[BaseException] = []

    def opener() -> None:
        log = access_log_engine(make_engine(f"sqlite:///{folder}/dossier.db"))
        try:
            start.wait()
            found.append([row[0] for row in _logged(log)])
        except BaseException as error:
            failures.append(error)
        finally:
            log.dispose()

    threads = [threading.Thread(target=opener) for _ in range(processes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures
    return found


def test_processes_opening_an_old_log_file_at_once_rebuild_it_once(tmp_path: Path) -> None:
    """Several gateway processes open a log file made before migration 0015 at the same
    moment: one rebuilds it, the others wait for it and find it rebuilt; every entry is
    there once."""
    path = tmp_path / ("dossier.db" + LOG_FILE_SUFFIX)
    with contextlib.closing(sqlite3.connect(path)) as old:
        old.execute(
            "CREATE TABLE access_log (seq INTEGER NOT NULL, recorded BIGINT NOT NULL,"
            " content BLOB NOT NULL, PRIMARY KEY (seq))"
        )
        old.executemany("INSERT INTO access_log VALUES (?, 1, x'00')", [(n,) for n in range(50)])
        old.commit()
    assert _open_at_once(tmp_path) == [list(range(50))] * 4
    with contextlib.closing(sqlite3.connect(path)) as rebuilt:
        tables = rebuilt.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
        made = dict(tables.fetchall())
    assert "AUTOINCREMENT" in made["access_log"] and "access_log_0015" not in made


def test_processes_starting_at_once_all_open_a_new_log_file(tmp_path: Path) -> None:
    """Gateway processes started together create the log's file together. SQLite refuses
    the switch of a new file into WAL mode to all but one of them, without waiting: each
    opener retries it (``engine._retry_while_locked``). One round lost the race about one
    time in nine before that, so this runs many."""
    for round_ in range(40):
        folder = tmp_path / str(round_)
        folder.mkdir()
        assert _open_at_once(folder) == [[]] * 4
        with contextlib.closing(sqlite3.connect(folder / ("dossier.db" + LOG_FILE_SUFFIX))) as made:
            assert made.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_concurrent_indexers_index_each_entry_exactly_once(own: Services) -> None:
    for patient in ("p1", "p2", "p3"):
        for _ in range(4):
            commit_events(own, _events(patient, 25))
    failures: list[BaseException] = []

    def indexer(wait: bool) -> None:
        try:
            while own.store.index_access_log(40, wait=wait).moved:
                pass
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=indexer, args=(w,)) for w in (False, False, True)]
    threads.append(threading.Thread(target=own.store.catch_up_access_log))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures
    ids = [e["id"] for e in _indexed(own)]
    assert len(ids) == len(set(ids)) == 300
    assert _waiting(own) == 0


def test_the_indexer_moves_what_waits_without_a_read_and_the_rest_at_its_stop(
    own: Services,
) -> None:
    commit_events(own, _events("p1", 250))
    stop = threading.Event()
    indexer = LogIndexer(own.store, interval=0.05, batch=100)
    thread = threading.Thread(target=indexer.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 60
    while _waiting(own) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _waiting(own) == 0 and len(_indexed(own)) == 250
    commit_events(own, _events("p1", 30))
    stop.set()
    thread.join(60)
    assert not thread.is_alive()
    assert _waiting(own) == 0 and len(_indexed(own)) == 280  # the round at its stop


class _Rests(threading.Event):
    """The indexer's stop: each wait is recorded and passes at once, the test's clock
    moved on by it, and the entries ``arriving`` in a rest committed meanwhile; set once
    every rest of ``arriving`` is over."""

    def __init__(self, own: Services, arriving: list[int]) -> None:
        super().__init__()
        self.own, self.arriving, self.now = own, arriving, 0.0
        self.waits: list[tuple[float, bool]] = []  # (seconds, a rest: the round took all)

    def clock(self) -> float:
        return self.now

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        rest = timeout != LogIndexer(self.own.store).pause
        self.waits.append((timeout, rest))
        self.now += timeout
        if rest:
            if not self.arriving:
                self.set()
                return True
            count = self.arriving.pop(0)
            if count:
                commit_events(self.own, _events("p1", count))
        return self.is_set()


def test_the_indexer_rests_as_long_as_a_quarter_of_the_backlog_takes_to_arrive(
    own: Services,
) -> None:
    """ADR 0050: after a round that took all that waited, the indexer rests for the time
    in which ``REST_SHARE`` of the backlog's bound arrives at the rate of the entries it
    moved since its last rest began (that rest and its rounds), between ``pause`` and
    ``interval``; ``interval`` when it knows no rate yet."""
    assert own.store.log_backlog == 1000 and REST_SHARE == 0.25
    commit_events(own, _events("p1", 30))
    stop = _Rests(own, arriving=[300, 600, 0])
    indexer = LogIndexer(own.store, interval=1.0, batch=100, pause=0.01, clock=stop.clock)
    indexer.run(stop)
    rests = [seconds for seconds, rest in stop.waits if rest]
    assert rests[0] == 1.0  # nothing moved since it began: no rate to go by
    # 300 arrived in the first rest, moved in rounds of 100, 200 and 0 after pauses
    since = 1.0 + sum(seconds for seconds, rest in stop.waits[1:3] if not rest)
    assert rests[1] == pytest.approx(250 * since / 300)  # a second's rest at 300/s
    assert 0.8 < rests[1] < 0.9
    since = rests[1] + sum(seconds for seconds, rest in stop.waits[4:] if not rest)
    assert rests[2] == pytest.approx(250 * since / 600)  # twice the rate, half the rest
    assert rests[3] == 1.0  # nothing arrived: the longest rest
    assert _waiting(own) == 0 and len(_indexed(own)) == 930
    bounds = LogIndexer(own.store, interval=0.25, pause=0.01)
    assert bounds.rest(10, 1.0) == 0.25  # slow: at most ``interval``
    assert bounds.rest(10**6, 1.0) == 0.01  # however fast: at least ``pause``
    assert bounds.rest(4000, 1.0) == pytest.approx(0.0625)
    assert bounds.rest(0, 1.0) == bounds.rest(5, 0.0) == 0.25


def test_the_indexer_grows_its_batches_while_behind_and_starts_small_again(
    own: Services,
) -> None:
    """ADR 0026: a round that stopped at its size makes the next twice as large (in
    entries and in bytes), up to ``grow`` times the first; one that took all that waited
    brings it back to the first size."""
    commit_events(own, _events("p1", 40))
    indexer = LogIndexer(own.store, batch=2, grow=8)
    moved = []
    while True:
        batch = indexer.round()
        moved.append(batch.moved)
        if not batch.more:
            break
    assert moved == [2, 4, 8, 16, 10]  # 2 + 4 + 8 + 16 = 30: the last ten in one round
    assert indexer.scale == 1 and _waiting(own) == 0 and len(_indexed(own)) == 40
    commit_events(own, _events("p1", 40))
    assert [indexer.round().moved for _ in range(7)] == [2, 4, 8, 16, 10, 0, 0]
    commit_events(own, [_events("p1", 1)[0] for _ in range(12)])  # entries of one size
    with own.store.log_engine.connect() as connection:
        size = unpacked_size(connection.execute(select(access_log.c.content)).first()[0])
    by_bytes = LogIndexer(own.store, batch=100, max_bytes=size * 2, grow=4)
    assert [by_bytes.round().moved for _ in range(5)] == [2, 4, 6, 0, 0]  # 8 at most: 4 x 2


def _logged(engine: Engine) -> list[Any]:
    """The rows (seq, recorded, content) waiting in ``engine``'s ``access_log``, oldest first."""
    logged = select(access_log.c.seq, access_log.c.recorded, access_log.c.content)
    with engine.connect() as connection:
        return list(connection.execute(logged.order_by(access_log.c.seq)).all())


def _sqlite_log_file(services: Services) -> None:
    if services.store.log_engine is services.store.engine:
        pytest.skip("the access log of reads has a file of its own on SQLite only (ADR 0027)")


def test_a_reads_entry_is_committed_while_the_database_is_being_written(
    own: Services, own_database: str
) -> None:
    """ADR 0027: the log of reads is a file of its own, so a read's entry is committed at
    once, on the loop as on a thread, while a write (or the indexer's batch) holds the
    database's write lock; a write's own entry is in the database, in its transaction."""
    _sqlite_log_file(own)
    assert own.store.log_engine.url.database == own.store.engine.url.database + "-access-log"
    started = time.monotonic()
    with write_transaction(own.store.engine) as other:
        other.execute(text("UPDATE access_epoch SET n = n"))
        assert commit_events_now(own, _events("p1", 1)) is True
        commit_events(own, _events("p1", 2))
        assert time.monotonic() - started < 5  # no wait for the database's write lock
    assert len(_logged(own.store.log_engine)) == 3 and _logged(own.store.engine) == []
    own.store.write(lambda session: write_events(own, session, _events("p1", 2)))  # a write's
    assert len(_logged(own.store.engine)) == 2  # in the database, with the write
    assert own.store.index_access_log(100) == (2, True)  # the database's first
    assert own.store.index_access_log(100) == (3, False)
    assert _waiting(own) == 0 and len(_indexed(own)) == 5


def test_entries_stored_but_not_yet_deleted_from_the_file_are_stored_once(
    own: Services,
) -> None:
    """A round that stored a batch of the log's file as AuditEvents and stopped before it
    deleted the batch there (a kill -9 between the two commits): the next round stores
    none of them twice and deletes them."""
    _sqlite_log_file(own)
    commit_events(own, _events("p1", 5))
    rows = _logged(own.store.log_engine)
    news = own.store.prepare_new(
        [orjson.loads(unpack(row[2])) for row in rows[:3]], times=[row[1] for row in rows[:3]]
    )
    assert own.store.write(lambda s: s.index_copies(news)) == 3  # and no deletion after it
    assert _waiting(own) == 5 and len(_indexed(own)) == 3
    assert own.store.catch_up_access_log() == 2
    ids = [e["id"] for e in _indexed(own)]
    assert len(ids) == len(set(ids)) == 5 and _waiting(own) == 0
    assert sorted(ids) == sorted(orjson.loads(unpack(row[2]))["id"] for row in rows)


def test_a_failed_round_starts_small_again(own: Services, tmp_path: Any) -> None:
    gone = make_engine(f"sqlite:///{tmp_path}/no-such-directory/gone.db")
    indexer = LogIndexer(Store(gone, own.store.extractor, own.store.clock), batch=2)
    indexer.scale = 4
    assert indexer.round() == (0, False)
    assert indexer.scale == 1


def test_a_failed_round_is_logged_without_data_and_loses_nothing(
    own: Services, caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    commit_events(own, _events("p1", 3))
    gone = make_engine(f"sqlite:///{tmp_path}/no-such-directory/gone.db")
    unreachable = Store(gone, own.store.extractor, own.store.clock)
    assert LogIndexer(unreachable).index_waiting() == 0
    (record,) = [r for r in caplog.records if r.name == "eigendossier.auditlog"]
    assert record.getMessage() == "indexing the access log failed: OperationalError"
    assert _waiting(own) == 3
    assert LogIndexer(own.store).index_waiting() == 3


def test_a_kill_9_after_the_responses_loses_no_entry(own: Services, own_database: str) -> None:
    """A real gateway with consent on, killed the moment its last read was answered:
    every read it answered has its entry, and indexing them later loses none."""
    load(own, [{"resourceType": "Patient", "id": "anna"}], "test: a client")
    security = build_security(own)
    account(security, "anna", "patient", "Patient/anna")
    port = _free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port),
         "--database-url", own_database, "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/metadata", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        headers = bearer(login(base, security, "anna")["access_token"])
        before = _reads_of_anna(own)
        with httpx.Client(headers=headers) as client:
            for _ in range(12):
                assert client.get(f"{base}/Patient/anna").status_code == 200
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(30)
    assert _reads_of_anna(own) == before + 12
    own.store.catch_up_access_log()
    assert _waiting(own) == 0
    ids = [e["id"] for e in _indexed(own)]
    assert len(ids) == len(set(ids))
    assert sum(_is_read_of_anna(e) for e in _indexed(own)) == before + 12


def _is_read_of_anna(event: dict[str, Any]) -> bool:
    return event.get("subtype", [{}])[0].get("code") == "read" and any(
        e["what"].get("reference") == "Patient/anna" for e in event.get("entity", [])
    )


def _reads_of_anna(services: Services) -> int:
    return sum(_is_read_of_anna(e) for e in _every_entry(services))


def _in_file_alone(path: str, table: str) -> int:
    """Rows of ``table`` in a copy of the database file ``path`` without its WAL: what
    checkpoints have copied into the file."""
    copy = f"{path}.copy"
    shutil.copyfile(path, copy)
    try:
        with contextlib.closing(sqlite3.connect(copy)) as connection:
            return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        os.remove(copy)


def _sqlite_files(services: Services, own_database: str) -> tuple[str, str]:
    """The database file and the log's own file (SQLite, ADR 0027), the schema
    checkpointed into both: what a test checkpoints after this is its own rows."""
    _sqlite_log_file(services)
    services.store.checkpoint()
    path = own_database.removeprefix("sqlite:///")
    return path, path + LOG_FILE_SUFFIX


def test_a_checkpoint_copies_both_wals_into_their_files(own: Services, own_database: str) -> None:
    """ADR 0036: a commit leaves its pages in the WAL (far below ``WAL_AUTOCHECKPOINT``);
    ``Store.checkpoint`` copies them into the database file and the log's own file."""
    database, log_file = _sqlite_files(own, own_database)
    commit_events(own, _events("p1", 5))  # in the log's own file
    own.store.catch_up_access_log()  # then as AuditEvents in the database, gone from the file
    commit_events(own, _events("p1", 3))
    assert _in_file_alone(database, "resources") == 0
    assert _in_file_alone(log_file, "access_log") == 0
    own.store.checkpoint()
    assert _in_file_alone(database, "resources") == 5
    assert _in_file_alone(log_file, "access_log") == 3


def test_the_indexer_checkpoints_beside_its_rounds_and_once_more_at_its_stop(
    own: Services, own_database: str
) -> None:
    database, _ = _sqlite_files(own, own_database)
    stop = threading.Event()
    indexer = LogIndexer(own.store, interval=0.05, checkpoint_every=0.05)
    thread = threading.Thread(target=indexer.run, args=(stop,))
    thread.start()
    try:
        commit_events(own, _events("p1", 20))
        deadline = time.monotonic() + 60
        while _in_file_alone(database, "resources") < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _in_file_alone(database, "resources") == 20  # while it runs
        assert "eigendossier-checkpoint" in {t.name for t in threading.enumerate()}
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive()
    assert "eigendossier-checkpoint" not in {t.name for t in threading.enumerate()}


def test_the_checkpoint_at_the_stop_copies_what_the_last_round_indexed(
    own: Services, own_database: str
) -> None:
    database, _ = _sqlite_files(own, own_database)
    stop = threading.Event()
    stop.set()  # no round before the stop: only what is left, then the last checkpoint
    commit_events(own, _events("p1", 7))
    LogIndexer(own.store, checkpoint_every=3600.0).run(stop)
    assert _waiting(own) == 0
    assert _in_file_alone(database, "resources") == 7


def test_a_failed_checkpoint_is_logged_by_its_type_and_the_next_tries_again(
    own: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    failures = [sqlite3.OperationalError("disk I/O error at Patient/p1")]

    def checkpoint() -> None:
        if failures:
            raise failures.pop()

    monkeypatch.setattr(own.store, "checkpoint", checkpoint)
    checkpointer = Checkpointer(own.store)
    with caplog.at_level(logging.ERROR, logger="eigendossier.auditlog"):
        assert checkpointer.once() is False
        assert checkpointer.once() is True
    assert [r.getMessage() for r in caplog.records] == [
        "checkpointing the database failed: OperationalError"
    ]


def test_postgresql_checkpoints_itself(own: Services) -> None:
    """No checkpointer beside the indexer on PostgreSQL, and nothing to do for one."""
    if own.store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's WAL is checkpointed by the gateway (ADR 0036)")
    assert own.store.checkpoints is False
    own.store.checkpoint()  # nothing: no statement, no error
    stop = threading.Event()
    seen: list[set[str]] = []
    original = own.store.index_access_log

    def index(*args: Any, **kwargs: Any) -> Any:
        seen.append({t.name for t in threading.enumerate()})
        stop.set()
        return original(*args, **kwargs)

    own.store.index_access_log = index  # type: ignore[method-assign]
    LogIndexer(own.store).run(stop)
    assert seen and all("eigendossier-checkpoint" not in names for names in seen)
