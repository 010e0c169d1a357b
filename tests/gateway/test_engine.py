"""The engines: PostgreSQL's pool replaces a connection the server dropped, pinged only when
idle; SQLite's connections checkpoint their WAL at the size chosen."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from gateway.store.engine import WAL_AUTOCHECKPOINT, make_engine


def _dropped(engine: Engine, url: str) -> int:
    """Use the pool's one connection, then have the server end its backend; its pid."""
    with engine.connect() as connection:
        pid = int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
    admin = make_engine(url, pool_size=1)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    finally:
        admin.dispose()
    time.sleep(0.2)  # the backend is gone, and the connection has sat idle since
    return pid


@pytest.fixture()
def postgres(own_database: str) -> str:
    if not own_database.startswith("postgresql"):
        pytest.skip("the ping when idle is PostgreSQL's pool (SQLite has no server to lose)")
    return own_database


def test_a_connection_dropped_while_idle_is_replaced_before_use(postgres: str) -> None:
    engine = make_engine(postgres, pool_size=1, ping_after=0.1)
    try:
        pid = _dropped(engine, postgres)
        with engine.connect() as connection:
            now = int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        assert now != pid
    finally:
        engine.dispose()


def test_a_connection_used_just_now_is_not_pinged_and_fails_once(postgres: str) -> None:
    """Within ``ping_after`` of its last use a connection goes out unpinged (no round trip
    per request): if the server dropped it meanwhile, its next use fails, once."""
    engine = make_engine(postgres, pool_size=1, ping_after=60)
    try:
        _dropped(engine, postgres)
        with pytest.raises(OperationalError), engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar_one() == 1
    finally:
        engine.dispose()


def test_a_sqlite_connection_checkpoints_its_wal_at_the_size_chosen(tmp_path: Path) -> None:
    """Every connection of the engine, the log's own file's included, checkpoints the WAL
    past ``WAL_AUTOCHECKPOINT`` pages (ADR 0036), not at SQLite's 1,000."""
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    try:
        with engine.connect() as connection:
            pages = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar_one()
    finally:
        engine.dispose()
    assert (pages, mode) == (WAL_AUTOCHECKPOINT, "wal")
    assert WAL_AUTOCHECKPOINT > 1_000
