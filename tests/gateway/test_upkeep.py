"""PostgreSQL's upkeep of the gateway's tables (ADR 0045): statements planned once for any
values, the access log's queue vacuumed beside its indexer, and the tables' statistics
gathered while the server's autovacuum is off. On a database of each test's own, with no
server of the session on it. Skipped on SQLite, where none of this applies."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from gateway.app import build_services
from gateway.interactions.auditlog import LogIndexer, Upkeeper
from gateway.interactions.model import Services
from gateway.settings import Settings
from gateway.store import repository
from gateway.store.schema import metadata
from gateway.store.upkeep import QUEUE, keep_up, stale


@pytest.fixture()
def pg(own_database: str) -> Iterator[Services]:
    if not own_database.startswith("postgresql"):
        pytest.skip("PostgreSQL's upkeep (ADR 0045); SQLite checkpoints its own WAL (ADR 0036)")
    services = build_services(Settings(database_url=own_database), migrate=True)
    try:
        yield services
    finally:
        services.store.dispose()


def _patients(services: Services, count: int, start: int = 0) -> None:
    def put(session: Any) -> None:
        for n in range(start, start + count):
            session.put({"resourceType": "Patient", "id": f"p{n}"}, method="PUT")

    services.store.write(put)


def _changed(engine: Engine, table: str, at_least: int) -> None:
    """Wait until PostgreSQL's cumulative statistics show ``at_least`` rows of ``table``
    changed since its last statistics (each backend reports them within a second or so)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = :t"),
                {"t": table},
            ).scalar()
        if found is not None and found >= at_least:
            return
        time.sleep(0.1)
    raise AssertionError(f"{table}: the statistics never showed {at_least} changed rows")


def test_every_connection_of_the_gateway_plans_a_statement_once_for_any_values(
    pg: Services,
) -> None:
    """The pool's connections and the event loop's take generic plans; a prepared read by
    id, run again and again with other values, is never planned for its values."""
    store = pg.store
    _patients(pg, 20)
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW plan_cache_mode").scalar() == ("force_generic_plan")
        driver: Any = connection.connection.dbapi_connection
        sql = "SELECT pk FROM resources WHERE res_type = %s AND res_id = %s"
        for n in range(12):  # psycopg prepares a statement from its fifth run on
            assert driver.execute(sql, ("Patient", f"p{n}")).fetchall()
        plans = connection.execute(
            text(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement = :sql"
            ),
            {"sql": "SELECT pk FROM resources WHERE res_type = $1 AND res_id = $2"},
        ).one()
    assert plans[0] >= 1 and plans[1] == 0
    reads = store.loop_reads
    assert reads is not None

    async def on_loop() -> list[Any]:
        try:
            return await reads.rows("SELECT current_setting('plan_cache_mode')", ())
        finally:
            reads.close()

    assert asyncio.run(on_loop()) == [("force_generic_plan",)]


def test_the_upkeep_gathers_the_statistics_of_the_tables_that_changed_enough(pg: Services) -> None:
    engine = pg.store.engine
    tables = list(metadata.tables)
    _patients(pg, 300)
    _changed(engine, "resources", 300)
    with engine.connect() as connection:
        assert "resources" in stale(connection, tables)
    assert keep_up(engine, tables, analyze=False) == ()  # autovacuum's work
    first = keep_up(engine, tables, analyze=True)
    assert {"resources", "resource_versions"} <= set(first)
    with engine.connect() as connection:
        gathered = connection.execute(
            text("SELECT reltuples FROM pg_class WHERE relname = 'resources'")
        ).scalar()
        assert gathered == 300  # what ANALYZE counted
        assert "resources" not in stale(connection, tables)
    _patients(pg, 20, start=300)  # fewer than 50 and a tenth of 300: not yet
    _changed(engine, "resources", 20)
    assert "resources" not in keep_up(engine, tables, analyze=True)
    _patients(pg, 100, start=320)
    _changed(engine, "resources", 120)
    assert "resources" in keep_up(engine, tables, analyze=True)


def test_the_store_analyzes_only_while_autovacuum_is_off_and_says_so_once(
    pg: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = pg.store
    _patients(pg, 200)
    _changed(store.engine, "resources", 200)
    monkeypatch.setattr(repository, "autovacuum_on", lambda _connection: True)
    with caplog.at_level(logging.WARNING, logger="eigendossier.store"):
        assert store.upkeep() == ()
    assert "autovacuum" not in caplog.text
    monkeypatch.setattr(repository, "autovacuum_on", lambda _connection: False)
    with caplog.at_level(logging.WARNING, logger="eigendossier.store"):
        assert "resources" in store.upkeep()
        assert store.upkeep() == ()
    assert caplog.text.count("autovacuum is off") == 1


def _queue_size(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(f"SELECT pg_relation_size('{QUEUE}')")).scalar_one())


def _log_and_index(services: Services, entries: int) -> None:
    """``entries`` access-log entries committed in batches, as requests commit them, then
    all indexed (each moved out of the queue)."""
    store = services.store
    for start in range(0, entries, 100):
        store.log_access(
            [
                {"resourceType": "AuditEvent", "id": f"e{start + n}-{time.monotonic_ns()}"}
                for n in range(100)
            ]
        )
    store.catch_up_access_log()


def test_the_queue_of_the_access_log_stays_its_size_when_its_upkeep_vacuums_it(
    pg: Services,
) -> None:
    """Without a vacuum every deleted entry keeps its place, and the queue grows with each
    round of entries (autovacuum kept off it here, as on a server where it is off); with
    the upkeep between rounds it reuses its pages and never grows past its first round."""
    engine = pg.store.engine
    tables = list(metadata.tables)
    with engine.begin() as connection:
        connection.execute(text(f"ALTER TABLE {QUEUE} SET (autovacuum_enabled = false)"))
    try:
        _log_and_index(pg, 1000)
        alone = [_queue_size(engine)]
        for _ in range(3):
            _log_and_index(pg, 1000)
            alone.append(_queue_size(engine))
        assert alone[-1] > 2 * alone[0]  # the dead rows of every round still there
        keep_up(engine, tables, analyze=False)
        kept = []
        for _ in range(4):
            _log_and_index(pg, 1000)
            kept.append(_queue_size(engine))
            keep_up(engine, tables, analyze=False)
        assert max(kept) <= alone[0]
        assert _queue_size(engine) <= alone[0]
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"ALTER TABLE {QUEUE} RESET (autovacuum_enabled)"))


def test_the_indexer_keeps_the_database_up_beside_its_rounds_and_logs_a_failure_by_its_type(
    pg: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = pg.store
    rounds: list[str] = []
    keep = store.upkeep

    def counted() -> Any:
        rounds.append(threading.current_thread().name)
        return keep()

    monkeypatch.setattr(store, "upkeep", counted)
    stop = threading.Event()
    indexer = threading.Thread(target=LogIndexer(store, upkeep_every=0.05).run, args=(stop,))
    indexer.start()
    deadline = time.monotonic() + 10
    while len(rounds) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    indexer.join(timeout=10)
    assert not indexer.is_alive()
    assert len(rounds) >= 3 and set(rounds) == {"eigendossier-upkeep"}

    def refused() -> Any:
        raise OperationalError("VACUUM access_log", {}, Exception("for patient p1"))

    monkeypatch.setattr(store, "upkeep", refused)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="eigendossier.auditlog"):
        assert Upkeeper(store).once() is False
    told = [record.getMessage() for record in caplog.records]
    assert told == ["the database's upkeep failed: OperationalError"]  # no SQL, no data
