"""Database engines: the embedded SQLite file and PostgreSQL, each set up for this store.

SQLite runs in WAL mode with a busy timeout, and checkpoints its WAL every
``WAL_AUTOCHECKPOINT`` pages (ADR 0036). A write transaction starts with
``BEGIN IMMEDIATE`` so that two writers queue instead of failing on a lock upgrade. A read
of one statement runs without BEGIN/COMMIT (SQLite's autocommit is already atomic for one
statement; the two round trips cost a fifth of a read's time); a read of several statements
(a search: count and page) asks for a snapshot, a deferred BEGIN.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

__all__ = [
    "PING_AFTER_IDLE",
    "PLANS",
    "SNAPSHOT",
    "WAL_AUTOCHECKPOINT",
    "WRITE",
    "begin_immediate",
    "make_engine",
    "write_transaction",
]

WRITE = "eigendossier_write"
SNAPSHOT = "eigendossier_snapshot"


#: a pooled PostgreSQL connection idle longer than this (seconds) is pinged before use
PING_AFTER_IDLE = 5.0

#: how every PostgreSQL connection of the gateway plans its statements (ADR 0045): once per
#: statement, for any values. The statements are compiled once per shape (ADR 0024) and
#: bind keys, ids, codes and dates, which the indexes find alike; a plan made for each
#: execution cost more than the execution (a consent-on search: 790 µs of planning, 640
#: of executing), and PostgreSQL makes one whenever its statistics say it may pay. Set by
#: a statement when a connection is made, not in its startup packet (libpq's ``options``),
#: which a pooler such as PgBouncer refuses unless told to ignore it.
PLANS = "SET plan_cache_mode = force_generic_plan"


#: the WAL's size, in pages (4 KiB each: about 40 MB), past which a commit checkpoints it
#: (SQLite's default is 1,000). The access log's indexer writes some five pages an entry
#: (ADR 0036): at 1,000 nearly every batch checkpointed, copying pages that the next batch
#: wrote again; at this size each checkpoint copies a hot page once for many batches
WAL_AUTOCHECKPOINT = 10_000


def make_engine(url: str, *, pool_size: int = 8, ping_after: float = PING_AFTER_IDLE) -> Engine:
    """An engine for ``url`` (any SQLAlchemy URL; ``sqlite:///path`` or ``postgresql+psycopg://``).

    ``ping_after``: a PostgreSQL connection idle in the pool for longer is pinged before
    it is handed out, and replaced when the server dropped it (see :func:`_ping_when_idle`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=8,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        _sqlite_setup(engine)
        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=8)  # imports psycopg
    # the event loop's driver (ADR 0046), an extra as psycopg is: missing, it says so here,
    # before the database is opened, as psycopg would
    import asyncpg  # noqa: F401, PLC0415

    _postgresql_setup(engine)
    _ping_when_idle(engine, ping_after)
    return engine


def _postgresql_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(PLANS)  # the session's, kept past this transaction
        dbapi_connection.commit()


def _ping_when_idle(engine: Engine, after: float) -> None:
    """Ping a pooled connection before use when it sat idle for ``after`` seconds or more;
    one the server dropped (a restart, an idle timeout) is replaced before anyone uses it.

    A ping before every use (SQLAlchemy's ``pool_pre_ping``) is a round trip per request:
    15 % of a consent-on read on PostgreSQL went to it. A connection the server drops
    while it is busy fails its request either way; one dropped within ``after`` seconds of
    its last use fails its next request once, and the pool then replaces it (SQLAlchemy
    recognises the disconnect)."""

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < after:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError("the pooled connection was dropped") from error


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction on ``engine``: on SQLite it starts with ``BEGIN IMMEDIATE``,
    holding the write lock before it reads anything. A deferred one that read first and
    then wrote failed at once with "database is locked" whenever another writer had
    committed in between: SQLite does not wait for such an upgrade."""
    with engine.connect() as raw:
        connection = raw.execution_options(**{WRITE: True})
        with connection.begin():
            yield connection


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        _retry_while_locked(lambda: cursor.execute("PRAGMA journal_mode=WAL"))
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        options = connection.get_execution_options()
        if options.get(WRITE, False):
            begin_immediate(connection.connection.dbapi_connection)
        elif options.get(SNAPSHOT, True):  # on the driver: SQLAlchemy's statement costs 10
            driver = connection.connection.dbapi_connection  # times it; none inside a read
            if not driver.in_transaction:  # on the loop's, which began on the driver
                driver.execute("BEGIN")


def begin_immediate(dbapi_connection: Any, timeout: float = 30.0) -> None:
    """``BEGIN IMMEDIATE``, waiting for another process's writer in sub-millisecond steps.

    SQLite's own busy handler backs off to 100 ms sleeps, which shows as a long write tail
    when several gateway processes write; polling briefly keeps the wait near the holder's
    transaction time.
    """
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    try:
        _retry_while_locked(lambda: cursor.execute("BEGIN IMMEDIATE"), timeout)
    finally:
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def _retry_while_locked(statement: Callable[[], object], timeout: float = 30.0) -> None:
    """Run ``statement`` again, after a short random sleep, for as long as SQLite answers
    "database is locked", up to ``timeout`` seconds.

    Besides ``BEGIN IMMEDIATE`` this serves the switch into WAL mode: when several
    processes open a file still in rollback mode at once (a new file, the first time),
    SQLite refuses the switch to all but one without calling its busy handler."""
    deadline = time.monotonic() + timeout
    delay = 0.0002
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(random.uniform(0, delay))  # noqa: S311 (jitter, not security)
        delay = min(delay * 1.5, 0.005)
