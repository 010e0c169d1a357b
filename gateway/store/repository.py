"""Versioned storage of resources, with their search index, in one database transaction.

:class:`Store` hands out :class:`Session` objects, one per interaction: a read session or a
write session (serialised on SQLite by ``BEGIN IMMEDIATE``). A write that loses a race
(another process updated the same resource first, or created the same id) raises
:class:`RetryWrite` inside the session; :meth:`Store.write` rolls back and runs the whole
unit again, so no write is ever lost and no partial write is ever kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar, cast

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    Engine,
    MetaData,
    Row,
    and_,
    bindparam,
    case,
    delete,
    func,
    null,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.event import listens_for
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.schema import CreateTable

from consent.policy import Target
from gateway.search.dates import to_micros
from gateway.search.extract import Extractor, IndexRows
from gateway.store.access import ACCESS_TYPES, AccessFilter
from gateway.store.ahead import Ahead, AsyncReads, NotOnLoop, Unconnected
from gateway.store.engine import SNAPSHOT, begin_immediate, make_engine, write_transaction
from gateway.store.indexing import Indexing
from gateway.store.logged import pack, unpack, unpacked_size
from gateway.store.lookups import Lookups
from gateway.store.schema import (
    access_epoch,
    access_log,
    metadata,
    patient_compartment,
    resource_versions,
    resources,
)
from gateway.store.session_base import (
    EPOCH,
    OWNERS,
    Current,
    driver_insert,
    driver_params,
    fetch_driver,
    lookup_sql,
    owners_of,
)
from gateway.store.upkeep import autovacuum_on, keep_up
from mappings.core.clock import Clock
from mappings.core.errors import Conflict, Forbidden, PreconditionFailed

_privileged = logging.getLogger("eigendossier.privileged")
log = logging.getLogger("eigendossier.store")
#: how often a commit waiting for the indexer reads the backlog again (seconds)
_BACKLOG_POLL = 0.005

__all__ = [
    "BATCH_BYTES",
    "Batch",
    "Budget",
    "Current",
    "OverBudget",
    "RetryWrite",
    "Session",
    "Store",
    "Stored",
]

T = TypeVar("T")
_MAX_ATTEMPTS = 20


_CURRENT = select(resources).where(
    resources.c.res_type == bindparam("t"), resources.c.res_id == bindparam("i")
)
_CURRENT_FOR_UPDATE = _CURRENT.with_for_update()


_CURRENT_OWNED = select(resources, OWNERS).where(
    resources.c.res_type == bindparam("t"), resources.c.res_id == bindparam("i")
)
#: the access epoch, as a column of the read it is confirmed by (ADR 0035)
_EPOCH_NOW = EPOCH.scalar_subquery()
#: the current rows of many ids of one type, locked in one order (PostgreSQL)
_CURRENT_MANY_FOR_UPDATE = (
    select(resources)
    .where(
        resources.c.res_type == bindparam("t"),
        resources.c.res_id.in_(bindparam("ids", expanding=True)),
    )
    .order_by(resources.c.res_id)
    .with_for_update()
)
#: ids read ahead in one statement
_READ_AHEAD_CHUNK = 500
#: new resources inserted in one statement at most (six values each)
_INSERTED_AT_ONCE = 100


@lru_cache(maxsize=256)
def _insert_resources(dialect: str, rows: int) -> str:
    """The driver's INSERT of ``rows`` first versions into ``resources``, answering each
    new row's key with its type and id (the order of a RETURNING's rows is not promised)."""
    mark = "?" if dialect == "sqlite" else "%s"
    row = "(" + ", ".join([mark] * 6) + ")"
    values = ", ".join([row] * rows)  # placeholders only: no value in the text
    head = "INSERT INTO resources (res_type, res_id, version_id, last_updated, deleted, content)"
    return f"{head} VALUES {values} RETURNING pk, res_type, res_id"


_ADVANCE = (
    update(resources)
    .where(resources.c.pk == bindparam("pk_"), resources.c.version_id == bindparam("expected"))
    .values(
        version_id=bindparam("version_id"),
        last_updated=bindparam("last_updated"),
        deleted=bindparam("deleted"),
        content=bindparam("content"),
    )
)
#: a version's bytes: its own when superseded, the resource's while it is the current one
_VERSION_CONTENT = case(
    (resource_versions.c.deleted, null()),
    else_=func.coalesce(resource_versions.c.content, resources.c.content),
)
_RAISE_EPOCH = update(access_epoch).where(access_epoch.c.id == 1).values(n=access_epoch.c.n + 1)
_PENDING_TABLES = {"compartment": patient_compartment, "versions": resource_versions}
_LOGGED = (
    select(access_log.c.seq, access_log.c.recorded, access_log.c.content)
    .order_by(access_log.c.seq)
    .limit(bindparam("n"))
)
#: the oldest waiting entries, locked: waiting for, or skipping, those another holds
_LOGGED_LOCKED = {
    True: _LOGGED.with_for_update(),
    False: _LOGGED.with_for_update(skip_locked=True),
}
_ANY_LOGGED = select(access_log.c.seq).limit(1)
#: the first and the last waiting entry's seq (SQLite finds each at an end of the table's
#: B-tree; both in one aggregate would read every row)
_LOG_SPAN = "SELECT (SELECT min(seq) FROM access_log), (SELECT max(seq) FROM access_log)"
#: an access-log entry appended on the event loop's own connection (ADR 0026)
_LOG_INSERT = "INSERT INTO access_log (recorded, content) VALUES (?, ?)"
#: an indexed entry deleted from the log's own file, by its seq and the moment it was
#: committed (SQLite: ``Store.forget_logged``)
_LOG_FORGET = "DELETE FROM access_log WHERE seq = ? AND recorded = ?"


@lru_cache(maxsize=64)
def _log_rows_insert(rows: int) -> str:
    """PostgreSQL: ``rows`` access-log entries in one INSERT (the driver's placeholders),
    answering with the first and the last waiting ``seq`` after it (ADR 0034): the oldest
    the statement found waiting (its snapshot is from before the insert, so none when the
    table was empty: then the first it added), and the last it added."""
    values = ", ".join(["(%s, %s)"] * rows)  # placeholders only: no value in the text
    return (
        "WITH added AS (INSERT INTO access_log (recorded, content) VALUES "  # noqa: S608
        + values
        + " RETURNING seq) SELECT coalesce((SELECT min(seq) FROM access_log),"
        " (SELECT min(seq) FROM added)), (SELECT max(seq) FROM added)"
    )


#: the access-log entries indexed in one transaction, by their JSON's size: a batch holds
#: SQLite's write lock, which the writes and their own log commits wait for (the indexer
#: grows its batches to four times this while it is behind: ``LogIndexer``). At 2 MiB a
#: batch of searches' entries (fifty records each) holds it for about 76 ms; at a quarter
#: of that each of its entries cost half as much again, and the searches waited for it
#: (ADR 0036)
BATCH_BYTES = 512 * 1024

#: on SQLite the access log of reads is a file of its own beside the database (ADR 0027):
#: ``dossier.db`` logs to ``dossier.db-access-log``
LOG_FILE_SUFFIX = "-access-log"
#: the kinds of index rows a process remembers as stored (ADR 0041)
KINDS_KNOWN = 65536
#: entries that may wait in the log's own file before a commit of more waits for the
#: indexer (ADR 0028): a read of the log indexes what waits first, so this bounds its wait
LOG_BACKLOG = 1000
#: how long one commit waits for the indexer at most (seconds): then it commits all the
#: same, an entry is never dropped nor a read failed for it
LOG_BACKLOG_WAIT = 1.0
_BEHIND = "the access log's indexer is behind: an entry was committed after %s s"


def access_log_engine(engine: Engine) -> Engine:
    """The engine the access log of reads is committed through: on SQLite with a database
    file, a file of its own beside it, whose write lock no write, and no indexing of the
    log, ever holds (ADR 0027); otherwise ``engine`` itself (PostgreSQL, whose writers do
    not wait for one another's rows; an in-memory or URI-named SQLite database). The file's
    table, the same narrow table as ``access_log`` in the database, is created by the first
    connection that finds it missing (several processes may start at once)."""
    url = engine.url
    name = url.database or ""
    if engine.dialect.name != "sqlite" or name in ("", ":memory:") or name.startswith("file:"):
        return engine
    log = make_engine(url.set(database=name + LOG_FILE_SUFFIX).render_as_string(False))
    create = str(CreateTable(access_log, if_not_exists=True).compile(dialect=log.dialect))

    @listens_for(log, "connect")
    def _table(dbapi_connection: Any, _record: Any) -> None:  # no write when it is there
        # an entry leaves this file only once it is an AuditEvent of the database, whose
        # bytes it holds: zeroing it here too (Debian's SQLite zeroes every deleted byte)
        # made deleting a batch take three times as long, while every read's commit waited
        # for this file's lock (ADR 0047); what a page's own write zeroes, it still does
        dbapi_connection.execute("PRAGMA secure_delete=FAST")
        dbapi_connection.execute(create)
        if not _never_reuses_seqs(dbapi_connection):
            _rebuild_log_file(dbapi_connection)

    return log


#: the log's own file's table, made anew with its seqs never given twice (migration 0015)
_REBUILT = access_log.to_metadata(MetaData(), name="access_log_0015")
_LOG_REBUILD = (
    str(CreateTable(_REBUILT).compile(dialect=sqlite_dialect())),
    "INSERT INTO access_log_0015 (seq, recorded, content)"
    " SELECT seq, recorded, content FROM access_log",
    "DROP TABLE access_log",
    "ALTER TABLE access_log_0015 RENAME TO access_log",
)


def _never_reuses_seqs(dbapi_connection: sqlite3.Connection) -> bool:
    """Whether the log file's table gives a seq at most once (AUTOINCREMENT)."""
    found = dbapi_connection.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'access_log'"
    ).fetchone()
    return found is not None and "AUTOINCREMENT" in found[0].upper()


def _rebuild_log_file(dbapi_connection: sqlite3.Connection) -> None:
    """Rebuild a log file made before migration 0015 so that it never gives a seq twice,
    its waiting entries kept with their seqs, in one transaction; a process that opens it
    at the same time waits for it and then finds it rebuilt."""
    begin_immediate(dbapi_connection)
    try:
        if not _never_reuses_seqs(dbapi_connection):
            for statement in _LOG_REBUILD:
                dbapi_connection.execute(statement)
        dbapi_connection.execute("COMMIT")
    except BaseException:
        dbapi_connection.execute("ROLLBACK")
        raise


class New(NamedTuple):
    """A resource to be stored as the first version of a new id, worked out before its
    transaction (:meth:`Store.prepare_new`): its stored bytes and its index rows (their key
    set when it is inserted)."""

    res_type: str
    res_id: str
    last_updated: int
    content: bytes
    resource: dict[str, Any]
    extracted: tuple[IndexRows, set[str]]


class Batch(NamedTuple):
    """What one round of indexing the access log did: how many entries it moved, and
    whether it stopped at its size (so that more may wait) rather than at the last."""

    moved: int
    more: bool


class RetryWrite(Exception):
    """Another writer got there first; the unit of work runs again from the start."""


class EpochMoved(Exception):
    """The access epoch a request's decisions were made under (the last its process saw,
    taken without reading it: ADR 0035) is not the database's. Nothing was answered nor
    recorded; the edge runs the request again under the epoch read (``epoch``)."""

    def __init__(self, epoch: int | None) -> None:
        super().__init__("the access epoch moved")
        self.epoch = epoch


class OverBudget(Exception):
    """A read went past its :class:`Budget`: SQLite interrupted it and its transaction was
    rolled back. Nothing was answered and nothing recorded; the caller runs it again
    where time does not matter as much (the edge: on a reader's thread, ADR 0022)."""


#: SQLite virtual-machine instructions between two looks at a budget
_BUDGET_STEP = 1000


class Budget:
    """At most ``instructions`` SQLite virtual-machine instructions for one read session
    (counted in steps of a thousand, so a read may run up to a step past it). A read on the
    event loop holds every other request back while it runs; with a budget, one that turns
    out large is stopped early instead (ADR 0022). On PostgreSQL the instructions are not
    counted; ``ahead`` asks the read's statements on the loop (ADR 0039, ADR 0054)."""

    __slots__ = ("ahead", "instructions", "spent")

    def __init__(self, instructions: int, ahead: Ahead | None = None) -> None:
        self.instructions = instructions
        self.spent = 0
        #: on PostgreSQL, the statements the read asks on the loop (ADR 0039, ADR 0054)
        self.ahead = ahead

    @property
    def exceeded(self) -> bool:
        return self.spent > self.instructions

    def step(self) -> int:
        """SQLite's progress handler: non-zero interrupts the statement running."""
        self.spent += _BUDGET_STEP
        return int(self.exceeded)


@dataclass(frozen=True, slots=True)
class Stored:
    """What a write produced: the new version and its exact stored bytes."""

    res_type: str
    res_id: str
    version_id: int
    last_updated: int
    content: bytes | None
    created: bool


def _current_of(row: Sequence[Any]) -> Current:
    """A row of ``resources`` (and, from :data:`_CURRENT_OWNED`, its compartment's patients)."""
    pk, kind, ident, version, updated, deleted, content = row[:7]
    patients = None if len(row) == 7 else owners_of(row[7])
    return Current(pk, kind, ident, version, updated, bool(deleted), content, patients)


@lru_cache(maxsize=1024)
def _current_statement(
    access: AccessFilter | None,
    dialect: Dialect,
    for_update: bool = False,
    of_type: str = "",
    epoch: bool = False,
) -> tuple[str, Callable[[str, str], Any]] | None:
    """A read under ``access`` (None: unrestricted; ``for_update``: unrestricted, locking
    the row on PostgreSQL) compiled once per filter, database and type (``of_type``, the
    type every execution binds as ``t``: what the filter says of types is decided for it,
    ADR 0033): its text and how a type and an id are bound to it (:func:`_binding`); None
    when the filter holds lists that are expanded per execution (a few excluded
    resources), which then take the ordinary way. A filter comes back request after
    request (grants are kept per access epoch); compiling and keying its large expression
    at every read cost more than the read. ``epoch``: with the access epoch as the last
    column (ADR 0035)."""
    if for_update:
        statement = _CURRENT_FOR_UPDATE
    else:
        statement = (
            _CURRENT
            if access is None
            else _CURRENT_OWNED.where(access.predicate(of_type=of_type or None))
        )
        if epoch:
            statement = statement.add_columns(_EPOCH_NOW)
    compiled = statement.compile(dialect=dialect)
    if compiled.post_compile_params:
        return None
    order = tuple(compiled.positiontup or ())
    fixed = dict(compiled.construct_params(params={"t": "", "i": ""}))
    return compiled.string, _binding(order, fixed)


def _binding(order: tuple[str, ...], fixed: dict[str, Any]) -> Callable[[str, str], Any]:
    """The parameters of a compiled read for a type and an id: in ``order`` for a
    positional driver (SQLite's), else by name; the filter's own values (``fixed``) beside
    them. Worked out once per statement: a read by id binds it at every request."""
    if not order:
        return lambda t, i: {**fixed, "t": t, "i": i}
    if order == ("t", "i"):  # no filter, or one of no values of its own
        return lambda t, i: (t, i)
    template = [fixed.get(name) for name in order]
    at_type = [n for n, name in enumerate(order) if name == "t"]
    at_id = [n for n, name in enumerate(order) if name == "i"]

    def bind(t: str, i: str) -> tuple[Any, ...]:
        values = template.copy()
        for n in at_type:
            values[n] = t
        for n in at_id:
            values[n] = i
        return tuple(values)

    return bind


class Store:
    """The database behind the dossier; one per app, passed in from ``create_app``."""

    def __init__(self, engine: Engine, extractor: Extractor, clock: Clock) -> None:
        self.engine = engine
        self.extractor = extractor
        self.clock = clock
        #: set after a commit that left rows in the outbox (the worker of this process waits
        #: on it; workers of other processes find them by polling)
        self.outbox_written = threading.Event()
        self._postgresql = engine.dialect.name == "postgresql"
        #: whether the gateway checkpoints this database's WAL itself (SQLite, ADR 0036;
        #: PostgreSQL checkpoints on its own)
        self.checkpoints = not self._postgresql
        #: whether the gateway vacuums its access log's queue itself and, while the server's
        #: autovacuum is off, gathers its tables' statistics (PostgreSQL, ADR 0045)
        self.keeps_up = self._postgresql
        #: whether the upkeep said already that autovacuum is off (once a process)
        self._told_autovacuum_off = False
        #: where the access log of reads is committed (ADR 0027): ``engine`` itself, or on
        #: SQLite a file of its own; a write's entries are always in the write's transaction
        self.log_engine = access_log_engine(engine)
        #: on PostgreSQL, the connections of the event loop's reads (ADR 0039)
        self.loop_reads = AsyncReads(engine) if self._postgresql else None
        #: the entries that may wait in the log's own file (ADR 0028)
        self.log_backlog = LOG_BACKLOG
        #: entries waiting in the log's own file, as the last commit there saw them
        self._waiting = 0
        #: since when the event loop has found the indexer past ``log_backlog`` (ADR 0047)
        self._behind_since: float | None = None
        #: the connections of reads on the event loop (ADR 0022), one pair per thread
        self._loop = threading.local()
        self._kept: list[Connection] = []
        #: the driver connections of access-log commits on the event loop, one per thread
        self._kept_log: list[Any] = []
        self._kept_lock = threading.Lock()
        #: the kinds of index rows known to be stored (ADR 0041): a write of a resource of
        #: one of them asks the database nothing about it
        self.known_kinds: set[int] = set()

    def read(
        self, *, snapshot: bool = True, budget: Budget | None = None
    ) -> contextlib.AbstractContextManager[Session]:
        """A read session; ``snapshot=False`` for an interaction of a single statement,
        which runs without BEGIN and COMMIT (on PostgreSQL in autocommit: two round trips
        fewer; SQLite's engine issues no BEGIN for it). A snapshot's statements all see one
        moment: on PostgreSQL at REPEATABLE READ, read only (ADR 0042).

        A read with a ``budget`` is one on the event loop. On SQLite every statement of the
        session counts against it, and the first to go past it is interrupted, the session
        rolls back and raises :class:`OverBudget`. It runs on a connection this thread keeps
        from one such read to the next (the loop serves one at a time): taking one from the
        pool and giving it back cost more than a read of one resource (ADR 0022). On
        PostgreSQL the session has no connection: its statements are awaited on the loop
        while the read waits in its greenlet (``budget.ahead``, ADR 0039, ADR 0054); a read
        of one snapshot raises :class:`~gateway.store.ahead.NotOnLoop`.

        The budgeted read on SQLite is an object of its own, not a generator's context
        (ADR 0051): it serves most requests, and the generator's machinery cost as much as
        the rest of the session around the statement."""
        if budget is not None and not self._postgresql:
            return _BudgetedRead(self, self._kept_reader(snapshot), budget)
        return self._read(snapshot, budget)

    @contextmanager
    def _read(self, snapshot: bool, budget: Budget | None) -> Iterator[Session]:
        """:meth:`read` on a pooled connection, or on PostgreSQL's event loop."""
        if budget is not None:  # PostgreSQL
            if snapshot or budget.ahead is None:  # statements of one snapshot: a thread's
                raise NotOnLoop
            session = Session(self, cast(Connection, Unconnected(self.engine.dialect)))
            session.ahead = budget.ahead
            yield session
            return
        with self.engine.connect() as raw:
            options: dict[str, Any] = {SNAPSHOT: snapshot}
            if self._postgresql:  # one statement is a snapshot of its own; several share
                # one only at REPEATABLE READ (at READ COMMITTED each statement takes its
                # own, and a search's total and page could disagree), and read only, where
                # PostgreSQL never fails a transaction for what others do meanwhile
                options.update(
                    {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
                    if snapshot
                    else {"isolation_level": "AUTOCOMMIT"}
                )
            connection = raw.execution_options(**options)
            with connection.begin():
                yield Session(self, connection)

    def _kept_reader(self, snapshot: bool) -> _KeptReader:
        """This thread's kept connection for reads with (or without) a snapshot; a new one
        when the last was lost. One the database refused is given back, never reused
        (:meth:`_drop_kept`, by the read that saw the failure: the connection outlives
        every read on it)."""
        kept: dict[bool, _KeptReader] = self._loop.__dict__.setdefault("connections", {})
        reader = kept.get(snapshot)
        if reader is None or reader.connection.closed or reader.connection.invalidated:
            connection = self.engine.connect().execution_options(**{SNAPSHOT: snapshot})
            reader = kept[snapshot] = _KeptReader(connection, snapshot)
            with self._kept_lock:
                self._kept.append(connection)
        return reader

    def _drop_kept(self, reader: _KeptReader) -> None:
        """Give back the kept connection of ``reader``, which the database said no on: the
        next read on this thread starts on a new one. Its progress handler goes with it:
        the pool's next user has no budget."""
        kept: dict[bool, _KeptReader] = self._loop.__dict__.setdefault("connections", {})
        if kept.get(reader.snapshot) is reader:
            del kept[reader.snapshot]
        with self._kept_lock:
            if reader.connection in self._kept:
                self._kept.remove(reader.connection)
        try:
            reader.driver.set_progress_handler(None, 0)
        except sqlite3.Error:  # the connection is gone: the pool will not hand it out
            reader.connection.invalidate()
        reader.connection.close()

    def access_epoch(self, *, on_loop: bool = False) -> int | None:
        """The access epoch now, in a statement of its own (None: no such counter).

        Read at the start of every authorized request, on a pooled connection of the
        driver's own: the one-row read costs microseconds, SQLAlchemy's connection and
        result objects around it five times as much. ``on_loop`` (SQLite): on the
        connection this thread keeps for reads on the event loop (see :meth:`read`), which
        holds no transaction between them."""
        if on_loop and not self._postgresql:
            reader = self._kept_reader(snapshot=False)
            sql, params = lookup_sql("epoch", (), self.engine.dialect)
            try:
                found = fetch_driver(reader.driver, self.engine.dialect, sql, params)
            except DBAPIError:
                self._drop_kept(reader)
                raise
            return found[0][0] if found else None
        raw = self.engine.raw_connection()
        driver: Any = raw.driver_connection
        try:
            if self._postgresql:  # one round trip, not BEGIN, SELECT and COMMIT
                driver.autocommit = True
            dialect = self.engine.dialect
            sql, params = lookup_sql("epoch", (), dialect)
            found = fetch_driver(raw.dbapi_connection, dialect, sql, params)
            raw.commit()  # nothing open on either database; kept for any other driver
        finally:
            if self._postgresql:
                driver.autocommit = False
            raw.close()
        return found[0][0] if found else None

    def log_access(self, events: list[dict[str, Any]]) -> None:
        """Commit access-log entries (AuditEvents with their ids) to the log, packed (ADR
        0053), in a transaction of their own, waiting for the write lock if need be (a pool
        thread).

        On PostgreSQL one multi-row INSERT in autocommit: a statement is a transaction of its
        own, so the entries are committed when it returns, in one round trip instead of
        BEGIN, an INSERT and COMMIT (ADR 0026). On SQLite a write transaction of the log's
        own file (ADR 0027)."""
        if not self._postgresql:
            self._wait_for_indexer()
            now = to_micros(self.clock.now())
            rows = [{"recorded": now, "content": pack(event)} for event in events]
            with write_transaction(self.log_engine) as connection:
                connection.execute(access_log.insert(), rows)
                self._waiting = _span(connection.exec_driver_sql(_LOG_SPAN).one())
            return
        self._wait_for_indexer()
        params = self._log_params(events)
        driver_error = self.engine.dialect.loaded_dbapi.Error
        raw = self.engine.raw_connection()
        try:
            driver: Any = raw.driver_connection
            driver.autocommit = True
            with driver.cursor() as cursor:
                cursor.execute(_log_rows_insert(len(events)), params)
                self._waiting = _span(cursor.fetchone())
            driver.autocommit = False
        except BaseException as error:
            raw.invalidate()  # in autocommit, or broken: it never goes back into the pool
            if isinstance(error, driver_error):  # as SQLAlchemy would raise it, without SQL
                raise DBAPIError.instance(None, None, error, driver_error) from error
            raise
        finally:
            raw.close()

    async def log_access_async(self, events: list[dict[str, Any]]) -> None:
        """:meth:`log_access` on the event loop (PostgreSQL, ADR 0039): one INSERT in
        autocommit on one of the loop's asynchronous connections."""
        assert self.loop_reads is not None
        if self._waiting > self.log_backlog:  # wait for the indexer as a thread would
            await asyncio.get_running_loop().run_in_executor(None, self.log_access, events)
            return
        rows = await self.loop_reads.rows(_log_rows_insert(len(events)), self._log_params(events))
        self._waiting = _span(rows[0])

    def _log_params(self, events: list[dict[str, Any]]) -> list[Any]:
        """The values of :func:`_log_rows_insert` for ``events``, committed now."""
        now = to_micros(self.clock.now())
        params: list[Any] = []
        for event in events:
            params += (now, pack(event))
        return params

    def log_access_now(self, events: list[dict[str, Any]]) -> bool:
        """Commit access-log entries (AuditEvents with their ids) to the log, packed (ADR
        0053), at once or not at all (SQLite, a request on the event loop: ADR 0026): True when
        committed; False, having written nothing, when another writer holds the write lock
        or the indexer is ``log_backlog`` entries behind (the caller tries again a moment
        later, ADR 0047). A database failure is raised, the connection given up, nothing
        committed.

        Its connection, kept by this thread, never waits for a lock and never checkpoints
        the WAL (its commit is a write of a few pages into the WAL, with no flush to disk):
        the loop is never held by another writer, nor by a checkpoint's flush, which the
        gateway's other writers do when the WAL has grown."""
        if self._postgresql:
            return False  # a pool thread commits them
        kept: dict[str, Any] = self._loop.__dict__
        driver: Any = kept.get("log")
        if driver is None:
            driver = self.log_engine.raw_connection()
            for pragma in ("busy_timeout=0", "wal_autocheckpoint=0"):
                driver.driver_connection.execute(f"PRAGMA {pragma}")
            kept["log"] = driver
            with self._kept_lock:
                self._kept_log.append(driver)
        connection: sqlite3.Connection = driver.driver_connection
        try:
            if self._waiting > self.log_backlog and not self._caught_up_now(connection):
                return False
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                if "locked" in str(error) or "busy" in str(error):
                    return False
                raise
            now = to_micros(self.clock.now())
            connection.executemany(_LOG_INSERT, [(now, pack(event)) for event in events])
            waiting = _span(connection.execute(_LOG_SPAN).fetchone())
            connection.execute("COMMIT")
            self._waiting = waiting
            self._behind_since = None
        except sqlite3.Error as error:  # as SQLAlchemy would raise it, without the SQL
            self._give_up_log(driver)
            raise DBAPIError.instance(None, None, error, sqlite3.Error) from error
        except BaseException:
            self._give_up_log(driver)
            raise
        return True

    def _caught_up_now(self, connection: sqlite3.Connection) -> bool:
        """Past ``log_backlog`` on the event loop: whether a commit there may go ahead now.
        The backlog is read again; True once it is within the bound, or once the loop has
        found it past the bound for ``LOG_BACKLOG_WAIT`` (then the entries are committed
        all the same, as a thread's are, and that is logged: an entry is never dropped nor
        a read failed for it); False: try again later, nothing written."""
        if self.log_engine is self.engine:
            return True  # its log is in its own tables (in memory, or URI-named): no bound
        self._waiting = _span(connection.execute(_LOG_SPAN).fetchone())
        if self._waiting <= self.log_backlog:
            self._behind_since = None
            return True
        now = time.monotonic()
        if self._behind_since is None:
            self._behind_since = now
        if now - self._behind_since < LOG_BACKLOG_WAIT:
            return False
        self._behind_since = None
        log.warning(_BEHIND, LOG_BACKLOG_WAIT)
        return True

    def _wait_for_indexer(self) -> None:
        """Wait while more than ``log_backlog`` entries wait in the log's own file (on
        PostgreSQL in its table: ADR 0034), at most ``LOG_BACKLOG_WAIT`` seconds (ADR
        0028): the requests then wait for the indexer instead of running ahead of it
        without bound, which made a read of the log wait as long for its catching up. The
        backlog is read again every few milliseconds."""
        if self._waiting <= self.log_backlog:
            return
        if self.log_engine is self.engine and not self._postgresql:
            return  # an in-memory SQLite database: its log and its indexer are the writes'
        deadline = time.monotonic() + LOG_BACKLOG_WAIT
        while time.monotonic() < deadline:
            time.sleep(_BACKLOG_POLL)
            with self.log_engine.connect() as connection:
                self._waiting = _span(connection.exec_driver_sql(_LOG_SPAN).one())
            if self._waiting <= self.log_backlog:
                return
        log.warning(_BEHIND, LOG_BACKLOG_WAIT)

    def _give_up_log(self, driver: Any) -> None:
        """Roll back what ``driver`` holds and close it; this thread opens another."""
        self._loop.__dict__.pop("log", None)
        with self._kept_lock:
            if driver in self._kept_log:
                self._kept_log.remove(driver)
        with contextlib.suppress(sqlite3.Error):  # nothing open, or the connection is gone
            driver.driver_connection.execute("ROLLBACK")
        driver.invalidate()

    def checkpoint(self) -> None:
        """Copy the WAL's pages into the database file, and those of the log's own file's
        WAL into that file (SQLite; nothing on PostgreSQL): a PASSIVE checkpoint, which
        waits for no reader and no writer, on a connection of its own (ADR 0036). It
        flushes the WAL to disk first: from then on what was committed survives a power
        loss, not only a kill of the process (``synchronous=NORMAL``)."""
        if not self.checkpoints:
            return
        for engine in self._log_engines():  # the database, and the log's own file
            raw = engine.raw_connection()
            try:  # outside any transaction: the connection is in autocommit (engine.py)
                driver: Any = raw.driver_connection
                driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                raw.close()

    def upkeep(self) -> tuple[str, ...]:
        """One round of PostgreSQL's upkeep of the gateway's tables (ADR 0045): the access
        log's queue vacuumed; while the server's autovacuum is off (asked each round: it
        may be turned on meanwhile), the statistics of the tables that changed enough since
        their last gathered. The first round that finds autovacuum off says so. The tables
        it analyzed."""
        with self.engine.connect() as connection:
            autovacuum = autovacuum_on(connection)
        if not autovacuum and not self._told_autovacuum_off:
            self._told_autovacuum_off = True
            log.warning(
                "PostgreSQL's autovacuum is off: the gateway gathers its tables' statistics "
                "and vacuums its access log's queue itself; other dead rows stay until a "
                "VACUUM of your own"
            )
        return keep_up(self.engine, metadata.tables, analyze=not autovacuum)

    def access_log_waiting(self) -> bool:
        """Whether access-log entries wait to be indexed as AuditEvents (any process's), in
        the database or in the log's own file."""
        return any(_waits_in(engine) for engine in self._log_engines())

    def _log_engines(self) -> tuple[Engine, ...]:
        """Where entries wait: the database (a write's entries, and all on PostgreSQL), and
        on SQLite the log's own file (ADR 0027)."""
        if self.log_engine is self.engine:
            return (self.engine,)
        return (self.engine, self.log_engine)

    def index_access_log(
        self, limit: int = 200, *, wait: bool = True, max_bytes: int = BATCH_BYTES
    ) -> Batch:
        """Index up to ``limit`` waiting access-log entries (up to ``max_bytes`` of them,
        one at least) as AuditEvent resources, the oldest first, in one transaction.
        ``wait=False`` skips entries another process is indexing right now (PostgreSQL;
        SQLite's writers take turns anyway). On SQLite the batch is read and worked out
        before the write lock is taken (ADR 0023)."""
        if self._postgresql:  # rows locked (or skipped) as they are read, in the write
            return self.write(
                lambda session: session.index_logged(limit, wait=wait, max_bytes=max_bytes)
            )
        # SQLite: a write's entries first (few), in the database; then those of the log's
        # own file. Either way the batch is read and worked out before the write lock is
        # taken, and a batch of the file is deleted there only once it is committed here
        if self.log_engine is self.engine or _waits_in(self.engine):
            batch = self._index_from(self.engine, limit, max_bytes)
            more = self.log_engine is not self.engine and _waits_in(self.log_engine)
            return Batch(batch.moved, batch.more or more)
        return self._index_from(self.log_engine, limit, max_bytes)

    def _index_from(self, engine: Engine, limit: int, max_bytes: int) -> Batch:
        """Index a batch of the entries waiting in ``engine``'s ``access_log`` (SQLite)."""
        with engine.connect() as connection:
            rows = connection.execute(_LOGGED, {"n": limit}).all()
        found = _within(rows, max_bytes)
        if not found:
            return Batch(0, more=False)
        news = self.prepare_logged(found)
        read = [(row[0], row[1]) for row in found]
        more = len(found) < len(rows) or len(rows) == limit
        if engine is self.engine:  # moved in one transaction: the write keeps what still waits
            return Batch(self.write(lambda session: session.index_prepared(read, news)), more)
        moved = self.write(lambda session: session.index_copies(news))
        self.forget_logged(read)
        return Batch(moved, more)

    def forget_logged(self, read: list[tuple[int, int]]) -> None:
        """Delete the entries ``read`` (seq, recorded) from the log's own file, once they are
        committed as AuditEvents (ADR 0027). A crash before this leaves them there: the next
        round finds their AuditEvents stored already, stores none twice, and deletes them
        then. An entry is named by its seq and the moment it was committed: once the log is
        empty SQLite gives a new entry a seq of one deleted before, and an indexer that read
        the deleted one (another process moved it meanwhile) must not delete the new one."""
        if not read:  # an executemany of no rows would run the statement unbound
            return
        with write_transaction(self.log_engine) as connection:
            # one compiled statement, a primary-key lookup per entry: the write lock of the
            # file every read's entry is committed to is held for the deletes alone (built
            # as one statement of the batch's pairs, SQLAlchemy held it for 7 ms a batch of
            # 300, while the gateway's commits waited: ADR 0047)
            connection.exec_driver_sql(_LOG_FORGET, list(read))

    def prepare_logged(self, rows: Sequence[Any]) -> list[New]:
        """The access-log entries ``rows`` (seq, recorded, content) as AuditEvents to store,
        each with its recorded time as lastUpdated and stored as the JSON the gateway wrote
        (unpacked: ADR 0053; :meth:`prepare_new`)."""
        written = [unpack(row[2]) for row in rows]
        return self.prepare_new(
            [orjson.loads(blob) for blob in written],
            times=[row[1] for row in rows],
            written=written,
        )

    def prepare_new(
        self,
        batch: list[dict[str, Any]],
        *,
        times: Sequence[int] | None = None,
        written: Sequence[bytes] | None = None,
    ) -> list[New]:
        """Each resource of ``batch`` as the first version of its id: meta set (``times``:
        each one's lastUpdated, microseconds; default now), its bytes and index rows worked
        out. No database work: a write lock need not be held for it. ``written``: each
        one's JSON as ``orjson`` wrote it (the access log's entries, ADR 0049); a resource
        without meta is stored as those bytes with its meta added at the end, which is what
        writing it whole again gives."""
        now = to_micros(self.clock.now())
        news = []
        for n, resource in enumerate(batch):
            at = now if times is None else times[n]
            had_meta = "meta" in resource
            meta = dict(resource.get("meta") or {})
            meta["versionId"] = "1"
            meta["lastUpdated"] = instant_of(at)
            resource["meta"] = meta
            if written is None or had_meta:
                content = orjson.dumps(resource)
            else:
                content = _with_meta(written[n], meta) or orjson.dumps(resource)
            news.append(
                New(
                    resource["resourceType"],
                    resource["id"],
                    at,
                    content,
                    resource,
                    self.extractor.rows(0, resource),
                )
            )
        return news

    def catch_up_access_log(self) -> int:
        """Index every access-log entry committed so far, waiting for any batch another
        process is indexing: after it, a read sees every entry committed before it began.
        How many it indexed."""
        moved = 0
        while self.access_log_waiting():
            moved += self.index_access_log(500).moved
        return moved

    def write(self, unit: Callable[[Session], T]) -> T:
        """Run ``unit`` in one write transaction; run it again when it lost a race."""
        for attempt in range(_MAX_ATTEMPTS):
            try:
                with write_transaction(self.engine) as connection:
                    session = Session(self, connection)
                    result = unit(session)
                    session.flush()
                    if session.access_changed:  # last: the row lock is held briefly
                        connection.execute(_RAISE_EPOCH)
                if session.enqueued:  # committed: wake this process's delivery worker
                    self.outbox_written.set()
                if session.kinds:  # committed: stored, no need to ask again
                    self.remember_kinds(session.kinds)
                return result
            except (RetryWrite, IntegrityError):
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311 (jitter)
                continue
            except OperationalError as error:
                if "deadlock" in str(error.orig).lower() or "serializ" in str(error.orig).lower():
                    continue
                raise
        raise Conflict("The resource is being changed by others; try again")

    def remember_kinds(self, kinds: set[int]) -> None:
        """Add ``kinds`` (committed) to :attr:`known_kinds`; past ``KINDS_KNOWN`` kinds, start
        again from these. A set's update and a test of membership each run whole under the
        interpreter lock: threads may do both at once."""
        if len(self.known_kinds) >= KINDS_KNOWN:
            self.known_kinds = set()
        self.known_kinds.update(kinds)

    def dispose(self) -> None:
        if self.loop_reads is not None:
            self.loop_reads.close()
        with self._kept_lock:
            kept, self._kept = self._kept, []
            kept_log, self._kept_log = self._kept_log, []
        for driver in kept_log:  # its pragmas are its own: never back into the pool
            driver.invalidate()
        for connection in kept:
            connection.close()
        if self.log_engine is not self.engine:
            self.log_engine.dispose()
        self.engine.dispose()


class _KeptReader:
    """A connection a thread keeps for its reads on the event loop (SQLite, see
    :meth:`Store.read`): its driver's connection, whether its reads are snapshots, and the
    budget of the read running on it now. SQLite's progress handler is set once, when the
    connection is taken, and counts against that budget; between reads there is none, and
    the handler lets every statement run to its end (ADR 0051)."""

    __slots__ = ("budget", "connection", "driver", "snapshot")

    def __init__(self, connection: Connection, snapshot: bool) -> None:
        driver: Any = connection.connection.dbapi_connection
        driver.set_progress_handler(self._step, _BUDGET_STEP)
        self.connection = connection
        self.driver = driver
        self.snapshot = snapshot
        self.budget: Budget | None = None

    def _step(self) -> int:
        budget = self.budget
        return 0 if budget is None else budget.step()


class _BudgetedRead:
    """A read session on a thread's kept connection that spends at most ``budget`` (see
    :meth:`Store.read`).

    No transaction object: SQLAlchemy's begin and commit cost a twelfth of an open read
    (ADR 0032) and a fiftieth of an open search (ADR 0040). A read of one statement
    (``snapshot`` off) runs without BEGIN; a snapshot begins and commits on the driver. A
    statement that goes through SQLAlchemy all the same begins its transaction itself (in
    a snapshot the engine's ``begin`` listener sees the driver's and begins no other); it
    is ended here, committed after the session, rolled back after a failure. A failure of
    the database's gives the connection back (``Store._drop_kept``)."""

    __slots__ = ("budget", "reader", "store")

    def __init__(self, store: Store, reader: _KeptReader, budget: Budget) -> None:
        self.store = store
        self.reader = reader
        self.budget = budget

    def __enter__(self) -> Session:
        reader = self.reader
        reader.budget = self.budget
        if reader.snapshot:
            try:
                reader.driver.execute("BEGIN")  # SQLAlchemy's begin and commit: 4.5 µs, 1 here
            except sqlite3.Error:
                reader.budget = None
                self.store._drop_kept(reader)
                raise
        return Session(self.store, reader.connection)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: Any
    ) -> None:
        reader, budget = self.reader, self.budget
        connection, driver = reader.connection, reader.driver
        try:
            try:
                if error is None:
                    if budget.exceeded:
                        raise OverBudget  # a statement was stopped, whatever became of it
                    if connection.in_transaction():  # begun by a statement through
                        connection.commit()  # SQLAlchemy (in a snapshot on the driver's)
                    elif driver.in_transaction:
                        driver.commit()
                elif budget.exceeded and not isinstance(error, OverBudget):
                    raise OverBudget from None  # the driver's "interrupted", however wrapped
            finally:
                reader.budget = None
                self._end(connection, driver)
        except DBAPIError:
            self.store._drop_kept(reader)
            raise
        if isinstance(error, DBAPIError):
            self.store._drop_kept(reader)

    @staticmethod
    def _end(connection: Connection, driver: Any) -> None:
        """A failure left a transaction open: the kept connection is left clean."""
        if connection.in_transaction():
            connection.rollback()
        if driver.in_transaction:
            driver.rollback()


def _first_version(res_type: str, res_id: str, at: int, content: bytes) -> dict[str, Any]:
    """The ``resources`` row of a resource's first version (its key comes from the insert)."""
    return {
        "res_type": res_type,
        "res_id": res_id,
        "version_id": 1,
        "last_updated": at,
        "deleted": False,
        "content": content,
    }


def _with_meta(written: bytes, meta: dict[str, Any]) -> bytes | None:
    """``written``, a JSON object of one member or more as ``orjson`` writes it (compact),
    with ``"meta"`` added as its last member: the bytes of the object it was read from with
    ``meta`` set on it, without writing the rest again (an access-log entry of a search is
    some 15 KiB, and writing it again took a tenth of its indexing: ADR 0049); None when
    the bytes are not such an object."""
    if len(written) < 3 or written[:1] != b"{" or written[-1:] != b"}":
        return None
    return b"".join((written[:-1], b',"meta":', orjson.dumps(meta), b"}"))


def _span(row: Any) -> int:
    """How many entries wait, by the first and last waiting seq (the indexer takes the
    oldest first: the waiting seqs are all but contiguous)."""
    first, last = row
    return 0 if first is None else int(last) - int(first) + 1


def _waits_in(engine: Engine) -> bool:
    """Whether an access-log entry waits in ``engine``'s ``access_log``."""
    with engine.connect() as connection:
        return connection.execute(_ANY_LOGGED).first() is not None


def _entries_in(read: Sequence[tuple[int, int]]) -> ColumnElement[bool]:
    """The access-log entries ``read``, each by its seq and the moment it was committed
    (the seqs alone too: SQLite finds the rows by them, and scans the table for the pairs)."""
    seqs = [seq for seq, _ in read]
    pairs = tuple_(access_log.c.seq, access_log.c.recorded).in_(list(read))
    return and_(access_log.c.seq.in_(seqs), pairs)


def _within(rows: Sequence[Any], max_bytes: int) -> list[Any]:
    """The first logged rows (seq, recorded, content) up to ``max_bytes`` of their JSON (as
    it was before it was packed: ADR 0053), one at least: an entry naming fifty records
    costs as much to index as thirty of one."""
    found: list[Any] = []
    size = 0
    for row in rows:
        size += unpacked_size(row[2])
        if found and size > max_bytes:
            break
        found.append(row)
    return found


def instant_of(micros: int) -> str:
    """The R4 instant text for a stored time, as ``format_instant`` writes it (milliseconds,
    cut, not rounded): the second's text is kept, since the writes of a transaction, and
    the entries of a page, share their seconds."""
    seconds, rest = divmod(micros, 1_000_000)
    return f"{_second_of(seconds)}.{rest // 1000:03d}Z"


@lru_cache(maxsize=256)
def _second_of(seconds: int) -> str:
    return (_EPOCH + dt.timedelta(seconds=seconds)).isoformat()


_EPOCH = dt.datetime(1970, 1, 1)  # naive: isoformat() then ends with the seconds


class Session(Indexing, Lookups):
    """One database transaction of the store: reading and writing versions; the index
    (:class:`~gateway.store.indexing.Indexing`) and the lookups behind access decisions
    (:class:`~gateway.store.lookups.Lookups`) are its other halves."""

    # -- reading ---------------------------------------------------------------------

    def access_epoch(self) -> int | None:
        """The access epoch as this session sees it: while it stands still, no Consent nor
        anything a Consent's actors resolve through has changed (None: no such counter)."""
        found = self.lookup("epoch")
        return found[0][0] if found else None

    def expect_epoch(self, epoch: int) -> None:
        """Decisions of this session were made under ``epoch`` without reading it (the last
        the process saw, ADR 0035): the first read by id under a filter confirms it in its
        own statement, or :meth:`confirm_epoch` does in one of its own."""
        self.expected_epoch = epoch

    def confirm_epoch(self) -> None:
        """Raise :class:`EpochMoved` unless the access epoch is still the one expected (a
        statement of its own; nothing when no epoch is expected or it was confirmed). The
        epoch only grows: found equal now, it stood still since it was seen, and every
        decision made under it holds."""
        if self.expected_epoch is not None:
            self._confirmed(self.access_epoch())

    def confirm_epoch_as(self, epoch: int | None) -> None:
        """Confirm the epoch expected, if any, with ``epoch`` as a statement of this session
        read it beside what it answers (a search's page: ADR 0044); :class:`EpochMoved`
        when it moved."""
        if self.expected_epoch is not None:
            self._confirmed(epoch)

    def _confirmed(self, epoch: int | None) -> None:
        expected, self.expected_epoch = self.expected_epoch, None
        if epoch != expected:
            raise EpochMoved(epoch)

    def current(
        self,
        res_type: str,
        res_id: str,
        access: AccessFilter | None = None,
        *,
        for_update: bool = False,
    ) -> Current | None:
        """The current row; ``for_update`` locks it until the transaction ends (PostgreSQL;
        SQLite's write transactions are serialised already)."""
        restricted = access is not None and not access.is_unrestricted
        if for_update and not restricted and (res_type, res_id) in self._read_ahead:
            return self._read_ahead.pop((res_type, res_id))  # once: the write changes it
        confirming = restricted and self.expected_epoch is not None
        prepared = (
            _current_statement(access, self._connection.dialect, of_type=res_type, epoch=confirming)
            if restricted and not for_update and access is not None and not access.conditions
            else None
        )
        if prepared is None and not restricted:
            prepared = _current_statement(None, self._connection.dialect, for_update)
        if prepared is not None:
            sql, bind = prepared
            found = self.driver_rows(sql, bind(res_type, res_id))
            if confirming:
                if not found:  # no row to carry the epoch: a statement of its own
                    self.confirm_epoch()
                    return None
                *row, epoch = found[0]
                self._confirmed(epoch)
                return _current_of(row)
            return _current_of(found[0]) if found else None
        if confirming:  # the ordinary way (a filter with conditions): confirmed before it
            self.confirm_epoch()
        if restricted:
            assert access is not None
            chosen = _CURRENT if for_update else _CURRENT_OWNED
            query = chosen.where(access.predicate(of_type=res_type))
        else:
            query = _CURRENT_FOR_UPDATE if for_update else _CURRENT
        if for_update and restricted:
            query = query.with_for_update()
        row = self._connection.execute(query, {"t": res_type, "i": res_id}).first()
        return None if row is None else _current_of(tuple(row))

    def read_ahead(self, keys: Sequence[tuple[str, str]]) -> None:
        """Read the current rows of ``keys`` (type, id) that this transaction is about to
        write, locked for update, in a statement per type and 500 ids: each write's own
        read (:meth:`current` with ``for_update``) then takes its row from here, once,
        instead of a round trip of its own. A transaction of a thousand writes made a
        thousand of them (on PostgreSQL each one a wait on the network)."""
        by_type: dict[str, set[str]] = {}
        for res_type, res_id in keys:
            by_type.setdefault(res_type, set()).add(res_id)
        for res_type, ids in sorted(by_type.items()):
            ordered = sorted(ids)
            for start in range(0, len(ordered), _READ_AHEAD_CHUNK):
                chunk = ordered[start : start + _READ_AHEAD_CHUNK]
                self._read_ahead.update(dict.fromkeys(((res_type, i) for i in chunk), None))
                found = self._connection.execute(
                    _CURRENT_MANY_FOR_UPDATE, {"t": res_type, "ids": chunk}
                )
                for row in found:
                    self._read_ahead[(row[1], row[2])] = Current(*row)

    def version(
        self, res_type: str, res_id: str, version_id: int
    ) -> tuple[bool, bytes | None] | None:
        v = resource_versions
        row = self.connection.execute(
            select(v.c.deleted, _VERSION_CONTENT)
            .join(
                resources,
                and_(resources.c.res_type == v.c.res_type, resources.c.res_id == v.c.res_id),
            )
            .where(v.c.res_type == res_type, v.c.res_id == res_id, v.c.version_id == version_id)
        ).first()
        return None if row is None else (bool(row[0]), row[1])

    def history(
        self,
        res_type: str | None,
        res_id: str | None,
        *,
        since: int | None,
        limit: int,
        offset: int,
        access: AccessFilter,
    ) -> list[Row[Any]]:
        """Versions, newest first, of one resource, one type or everything the caller sees."""
        v = resource_versions
        query = select(
            v.c.res_type,
            v.c.res_id,
            v.c.version_id,
            v.c.last_updated,
            v.c.deleted,
            v.c.method,
            _VERSION_CONTENT.label("content"),
        ).join(
            resources, and_(resources.c.res_type == v.c.res_type, resources.c.res_id == v.c.res_id)
        )
        if res_type is not None:
            query = query.where(v.c.res_type == res_type)
        if res_id is not None:
            query = query.where(v.c.res_id == res_id)
        if since is not None:
            query = query.where(v.c.last_updated >= since)
        if not access.is_unrestricted:
            query = query.where(access.predicate())
        query = query.order_by(v.c.last_updated.desc(), v.c.version_id.desc())
        return list(self.connection.execute(query.limit(limit).offset(offset)))

    # -- writing ---------------------------------------------------------------------

    def put(
        self,
        resource: dict[str, Any],
        *,
        method: str,
        if_match: int | None = None,
        base_version: int | None = None,
        must_create: bool = False,
    ) -> Stored:
        """Store ``resource`` (with its id) as a new version; set meta.versionId/lastUpdated.

        ``if_match`` is the client's precondition (a mismatch is a 412); ``base_version`` is
        the version this write was computed from (a mismatch means another writer won the
        race, and the unit of work runs again).
        """
        res_type, res_id = resource["resourceType"], resource["id"]
        current = self.current(res_type, res_id, for_update=True)
        if must_create and current is not None:
            raise RetryWrite  # the server-assigned id collided; the unit picks a new one
        if self.guard is not None and current is not None and not current.deleted:
            self._check_guard(current)
        if if_match is not None and (current is None or current.version_id != if_match):
            raise PreconditionFailed(
                "If-Match does not match the current version", f"{res_type}.meta.versionId"
            )
        if base_version is not None and (current is None or current.version_id != base_version):
            raise RetryWrite
        version_id = 1 if current is None else current.version_id + 1
        now = to_micros(self.store.clock.now())
        if current is not None and now <= current.last_updated:
            now = current.last_updated + 1
        meta = dict(resource.get("meta") or {})
        meta["versionId"] = str(version_id)
        meta["lastUpdated"] = instant_of(now)
        resource["meta"] = meta
        content = orjson.dumps(resource)
        if current is None:
            row = _first_version(res_type, res_id, now, content)
            sql, order = driver_insert(
                resources, tuple(row), self._connection.dialect, returning="pk"
            )
            pk = self.driver_rows(sql, driver_params(row, order))[0][0]
        else:
            self._advance(current, version_id, now, deleted=False, content=content)
            pk = current.pk
        self._version_row(res_type, res_id, version_id, now, False, method)
        patients = self._reindex(pk, resource, fresh=current is None)
        if self.guard is not None and not self.guard.admits(Target.of(resource, patients)):
            raise Forbidden(f"No grant of the client allows writing this {res_type}")
        self.written.append((res_type, res_id, frozenset(patients)))
        created = current is None or current.deleted
        return Stored(res_type, res_id, version_id, now, content, created)

    def add_new(
        self,
        batch: list[dict[str, Any]],
        *,
        method: str = "POST",
        times: Sequence[int] | None = None,
    ) -> None:
        """Store each resource of ``batch`` as the first version of a new id, in one insert.

        For resources nobody has written before (fresh ids): no lookup per resource; an id
        that exists after all fails the insert, and the unit of work runs again with new
        ids, as a collision in :meth:`put` does. ``times``: each one's lastUpdated
        (microseconds; default now).
        """
        if batch:
            self._insert_new(self.store.prepare_new(batch, times=times), method)

    def _insert_new(self, news: Sequence[New], method: str) -> None:
        """Insert the prepared ``news`` in one statement, then their versions and index."""
        for new in news:  # rows read ahead are no longer what these ids hold
            self._read_ahead.pop((new.res_type, new.res_id), None)
        pks = self._inserted(news)
        for pk, new in zip(pks, news, strict=True):
            res_type, res_id, resource = new.res_type, new.res_id, new.resource
            self._version_row(res_type, res_id, 1, new.last_updated, False, method)
            patients = self._reindex(pk, resource, fresh=True, extracted=new.extracted)
            if self.guard is not None and not self.guard.admits(Target.of(resource, patients)):
                raise Forbidden(f"No grant of the client allows writing this {res_type}")
            self.written.append((res_type, res_id, frozenset(patients)))

    def _inserted(self, news: Sequence[New]) -> list[int]:
        """Insert the first versions of ``news`` into ``resources``, a statement per
        hundred, run by the driver; their new keys, in the order of ``news``. A batch of
        the access log's indexer is hundreds of rows: SQLAlchemy's parameters per row and
        its multi-row RETURNING cost more than the database's inserts (ADR 0048)."""
        dialect = self._connection.dialect.name
        pks: list[int] = []
        for start in range(0, len(news), _INSERTED_AT_ONCE):
            chunk = news[start : start + _INSERTED_AT_ONCE]
            params: list[Any] = []
            for new in chunk:
                params += (new.res_type, new.res_id, 1, new.last_updated, False, new.content)
            sql = _insert_resources(dialect, len(chunk))
            key_of = {(t, i): pk for pk, t, i in self.driver_rows(sql, params)}
            pks += [key_of[(new.res_type, new.res_id)] for new in chunk]
        return pks

    # -- the access log --------------------------------------------------------------

    def log_access(self, events: list[dict[str, Any]]) -> None:
        """Append access-log entries (AuditEvents with their ids) to the log, packed (ADR
        0053), committed with this transaction; indexed as resources later
        (:meth:`index_logged`)."""
        now = to_micros(self.store.clock.now())
        self._pending.setdefault("access_log", []).extend(
            {"recorded": now, "content": pack(event)} for event in events
        )

    def index_logged(self, limit: int, *, wait: bool = True, max_bytes: int = BATCH_BYTES) -> Batch:
        """Move up to ``limit`` of the oldest logged entries, as many as fit in
        ``max_bytes`` (one at least: an entry naming fifty records costs as much to index
        as thirty of one), into ``resources`` as AuditEvents (each with its recorded time
        as lastUpdated); how many. The rows are locked (PostgreSQL; ``wait=False``:
        skipping those another transaction holds) and deleted here, so an entry is
        indexed exactly once, and never lost."""
        rows = self._connection.execute(_LOGGED_LOCKED[wait], {"n": limit}).all()
        found = _within(rows, max_bytes)
        if not found:
            return Batch(0, more=False)
        self._connection.execute(
            delete(access_log).where(access_log.c.seq.in_([row[0] for row in found]))
        )
        # the gateway's own transaction: no caller's guard (Store.write opens it without)
        self._insert_new(self.store.prepare_logged(found), "POST")
        self.written = []
        return Batch(len(found), more=len(found) < len(rows) or len(rows) == limit)

    def index_prepared(self, read: list[tuple[int, int]], news: list[New]) -> int:
        """Move the logged entries ``read`` (seq, recorded), read and worked out (``news``,
        in the same order) before this transaction, into ``resources``: those this
        transaction still deletes from the log (another process may have moved some
        meanwhile, and a new entry may have taken one's seq since: ``Store.forget_logged``);
        how many."""
        deleted = {
            row[0]
            for row in self._connection.execute(
                delete(access_log).where(_entries_in(read)).returning(access_log.c.seq)
            )
        }
        moved = [new for (seq, _), new in zip(read, news, strict=True) if seq in deleted]
        if moved:  # the gateway's own transaction: no caller's guard
            self._insert_new(moved, "POST")
        self.written = []
        return len(moved)

    def index_copies(self, news: list[New]) -> int:
        """Store the entries of the log's own file, read and worked out (``news``) before
        this transaction, as AuditEvents: those not stored already (another process, or a
        round that stopped before it deleted them from the file, stored some: ADR 0027),
        so that each is stored once; how many."""
        stored = self.locate([(new.res_type, new.res_id) for new in news])
        fresh = [new for new in news if (new.res_type, new.res_id) not in stored]
        if fresh:  # the gateway's own transaction: no caller's guard
            self._insert_new(fresh, "POST")
        self.written = []
        return len(fresh)

    def delete(self, res_type: str, res_id: str) -> Stored | None:
        """Mark the resource deleted as a new version; None when there was nothing to delete."""
        current = self.current(res_type, res_id, for_update=True)
        if current is None or current.deleted:
            return None
        patients = self._check_guard(current)
        self.written.append((res_type, res_id, patients))
        version_id = current.version_id + 1
        now = max(to_micros(self.store.clock.now()), current.last_updated + 1)
        self._advance(current, version_id, now, deleted=True, content=None)
        self._version_row(res_type, res_id, version_id, now, True, "DELETE")
        self._unindex(current.pk, keep_compartment=True)
        if res_type == "Group":
            self._rehouse(res_id)
        return Stored(res_type, res_id, version_id, now, None, False)

    def _advance(
        self, current: Current, version_id: int, now: int, *, deleted: bool, content: bytes | None
    ) -> None:
        self._keep_superseded(current)
        result = self._connection.execute(
            _ADVANCE,
            {
                "pk_": current.pk,
                "expected": current.version_id,
                "version_id": version_id,
                "last_updated": now,
                "deleted": deleted,
                "content": content,
            },
        )
        if result.rowcount != 1:
            raise RetryWrite

    def _keep_superseded(self, current: Current) -> None:
        """The content of the version about to be superseded, into its version row (the
        current version's lives only in ``resources``: a write stores its bytes once)."""
        if current.deleted or current.content is None:
            return
        pending = self._pending_versions.get((current.res_type, current.res_id, current.version_id))
        if pending is not None:  # written earlier in this transaction, not flushed yet
            pending["content"] = current.content
            return
        self._connection.execute(
            update(resource_versions)
            .where(
                resource_versions.c.res_type == current.res_type,
                resource_versions.c.res_id == current.res_id,
                resource_versions.c.version_id == current.version_id,
                resource_versions.c.content.is_(None),
            )
            .values(content=current.content)
        )

    def _version_row(
        self,
        res_type: str,
        res_id: str,
        version_id: int,
        now: int,
        deleted: bool,
        method: str,
    ) -> None:
        if res_type in ACCESS_TYPES:
            self.access_changed = True
        self.enqueue_change(res_type, res_id, version_id, now)
        row = {
            "res_type": res_type,
            "res_id": res_id,
            "version_id": version_id,
            "last_updated": now,
            "deleted": deleted,
            "method": method,
            "content": None,  # the current version's bytes live in resources only
        }
        self._pending.setdefault("versions", []).append(row)
        self._pending_versions[(res_type, res_id, version_id)] = row

    def _check_guard(self, current: Current) -> frozenset[str]:
        """The patients of the current version; Forbidden if the caller may not change it."""
        patients = self.patients_of([current.pk]).get(current.pk, frozenset())
        if self.guard is None:
            return patients
        resource = orjson.loads(current.content) if current.content else {}
        resource.setdefault("resourceType", current.res_type)
        resource.setdefault("id", current.res_id)
        if not self.guard.admits(Target.of(resource, patients)):
            raise Forbidden(f"No grant of the client allows changing this {current.res_type}")
        return patients
