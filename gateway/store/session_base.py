"""What every part of a store session holds: its connection, the index rows pending, the
write guard; and the current-row record the parts share."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Dialect,
    Select,
    String,
    Table,
    and_,
    bindparam,
    false,
    insert,
    or_,
    select,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from gateway.store.schema import (
    INDEX_TABLES,
    access_epoch,
    access_log,
    outbox,
    parcels,
    patient_compartment,
    resource_versions,
    resources,
    search_kind,
)

if TYPE_CHECKING:
    from gateway.store.access import AccessFilter
    from gateway.store.ahead import Ahead
    from gateway.store.repository import Store

__all__ = [
    "Current",
    "ParcelRow",
    "SessionBase",
    "driver_rows",
    "fetch_driver",
    "lookup_rows",
    "lookup_sql",
    "outbox_row",
    "pairs_in",
]

#: (key, content type, headers, data) of one parcel for a destination
ParcelRow = tuple[str, str, Mapping[str, str], bytes]

_privileged = logging.getLogger("eigendossier.privileged")
_PENDING_TABLES = {
    "access_log": access_log,
    "compartment": patient_compartment,
    "versions": resource_versions,
    "outbox": outbox,
}
#: the types whose changes nobody subscribes to (the access log is the client's own)
UNWATCHED = frozenset({"AuditEvent"})


@dataclass(frozen=True, slots=True)
class Current:
    """The current row of a resource (possibly a delete marker)."""

    pk: int
    res_type: str
    res_id: str
    version_id: int
    last_updated: int
    deleted: bool
    content: bytes | None
    #: the patients in whose compartment the resource lies, when the read asked for them
    #: (a read under a caller's filter, whose access-log entry names them: ADR 0033)
    patients: frozenset[str] | None = None


@lru_cache(maxsize=128)
def driver_insert(
    table: Table, columns: tuple[str, ...], dialect: Dialect, returning: str | None = None
) -> tuple[str, tuple[str, ...]]:
    """An INSERT of ``columns`` into ``table`` compiled once per database, with the order
    of its parameters for a positional driver (empty: the driver takes the rows' dicts);
    ``returning`` names a column the insert answers (a new row's key).

    The rows a write inserts (the index rows above all) are plain strings, numbers and
    bytes, which every driver binds as they are; building SQLAlchemy's parameters for each
    of them cost more than the database's insert."""
    statement = insert(table)
    if returning is not None:
        statement = statement.returning(table.c[returning])
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    return compiled.string, tuple(compiled.positiontup or ())


#: rows of one table from which PostgreSQL is given them by COPY instead of an INSERT each
_COPY_FROM = 16


def copy_rows(
    connection: Connection, table: Table, columns: tuple[str, ...], rows: list[dict[str, Any]]
) -> None:
    """Insert ``rows`` (dicts with the keys ``columns``) into ``table`` on PostgreSQL with
    ``COPY ... FROM STDIN``, in the connection's transaction (ADR 0026): psycopg pipelines
    an executemany, but works each row's statement out in Python, which cost an access-log
    batch more than the server's own work; COPY sends the rows as one stream."""
    driver: Any = connection.connection.dbapi_connection
    names = ", ".join(columns)
    take = itemgetter(*columns)
    with driver.cursor() as cursor, cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(take(row))


def driver_params(row: Mapping[str, Any], order: tuple[str, ...]) -> Any:
    """``row`` as the driver takes it: a tuple in ``order`` (positional), else the dict."""
    return tuple(row[name] for name in order) if order else row


class Joined(FunctionElement[str]):
    """Strings of a group joined by spaces, the separator written into the statement
    (SQLAlchemy's ``aggregate_strings`` binds it per execution, which a statement compiled
    once cannot hold)."""

    type = String()
    name = "joined"
    inherit_cache = True


@compiles(Joined)
def _joined(element: Joined, compiler: SQLCompiler, **kw: Any) -> str:
    return f"string_agg({compiler.process(element.clauses, **kw)}, ' ')"


@compiles(Joined, "sqlite")
def _joined_sqlite(element: Joined, compiler: SQLCompiler, **kw: Any) -> str:
    return f"group_concat({compiler.process(element.clauses, **kw)}, ' ')"


#: a row's compartment patients (one string, separated by spaces), as a column of a read
#: under a caller's filter (by id, ADR 0033; a search's page, ADR 0035): the access-log
#: entry names them, and asked in a statement of their own they cost a round trip more
OWNERS = (
    select(Joined(patient_compartment.c.patient_id))
    .where(patient_compartment.c.res_pk == resources.c.pk)
    .correlate(resources)
    .scalar_subquery()
)


def owners_of(joined: str | None) -> frozenset[str]:
    """The patients of an :data:`OWNERS` column (none: a row in no dossier)."""
    return frozenset((joined or "").split())


@lru_cache(maxsize=512)  # each lookup by number of values, up to 100
def _driver_select(
    name: str, size: int, dialect: Dialect
) -> tuple[str, tuple[str, ...], dict[str, Any], bool]:
    """One of the few lookups every consent-on request runs, compiled once per database
    and number of values (``name``: see :data:`_LOOKUPS`): its text, its parameters'
    order for a positional driver, the constants bound in it, and whether the values alone
    are its parameters, in turn (a positional statement binding nothing else: a page's
    fifty keys are then bound as they are, no dict built); the values are bound as
    ``v0``, ``v1``, ..."""
    values = [f"v{n}" for n in range(size)]
    compiled = _LOOKUPS[name]([bindparam(v) for v in values]).compile(dialect=dialect)
    fixed = compiled.construct_params(params=dict.fromkeys(values))
    order = tuple(compiled.positiontup or ())
    return compiled.string, order, dict(fixed), bool(order) and order == tuple(values)


#: the access epoch's one row (ADR 0008): read apart, or as a column of a read (ADR 0035)
EPOCH = select(access_epoch.c.n).where(access_epoch.c.id == 1)


_LOOKUPS: dict[str, Callable[[list[BindParameter[Any]]], Select[Any]]] = {
    "epoch": lambda _values: EPOCH,
    "patients_of": lambda values: select(
        patient_compartment.c.res_pk, patient_compartment.c.patient_id
    ).where(patient_compartment.c.res_pk.in_(values)),
    "by_keys": lambda values: select(
        resources.c.pk, resources.c.res_type, resources.c.res_id, resources.c.content
    ).where(resources.c.pk.in_(values)),
    # a row per compartment entry (one, but for a household's resources; a row of no
    # dossier once, with no patient): the join reads the entries by the same covering
    # index as OWNERS, without an aggregate per row (a page of fifty: 57 µs against
    # 77.5, ADR 0052)
    "by_keys_owned": lambda values: (
        select(
            resources.c.pk,
            resources.c.res_type,
            resources.c.res_id,
            resources.c.content,
            patient_compartment.c.patient_id,
        )
        .select_from(
            resources.outerjoin(patient_compartment, patient_compartment.c.res_pk == resources.c.pk)
        )
        .where(resources.c.pk.in_(values))
    ),
    # a kind's own row, which says its rows are stored (ADR 0041, ADR 0043)
    "kind_stored": lambda values: (
        select(search_kind.c.res_pk).where(search_kind.c.res_pk == values[0]).limit(1)
    ),
}


def lookup_sql(name: str, values: Sequence[Any], dialect: Dialect) -> tuple[str, Any]:
    """The compiled lookup ``name`` (see :data:`_LOOKUPS`) and its parameters for ``values``."""
    sql, order, fixed, direct = _driver_select(name, len(values), dialect)
    if direct:
        return sql, tuple(values)
    bound = {**fixed, **{f"v{n}": value for n, value in enumerate(values)}}
    return sql, tuple(bound[k] for k in order) if order else bound


def fetch_driver(dbapi_connection: Any, dialect: Dialect, sql: str, params: Any) -> list[Any]:
    """The rows of compiled SQL, run by the driver on ``dbapi_connection``: no SQLAlchemy
    result objects, which cost more than SQLite's answer to a key lookup. A driver's error
    raises as SQLAlchemy would raise it (without the SQL)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(sql, params)
        rows: list[Any] = cursor.fetchall()
        return rows
    except dialect.loaded_dbapi.Error as error:
        raise DBAPIError.instance(None, None, error, dialect.loaded_dbapi.Error) from error
    finally:
        cursor.close()


def lookup_rows(connection: Connection, name: str, values: Sequence[Any] = ()) -> list[Any]:
    """Run the compiled lookup ``name`` with ``values`` in ``connection``'s transaction."""
    return driver_rows(connection, *lookup_sql(name, values, connection.dialect))


def driver_rows(connection: Connection, sql: str, params: Any) -> list[Any]:
    """The rows of compiled SQL, run by the driver in ``connection``'s transaction."""
    raw = connection.connection.dbapi_connection
    return fetch_driver(raw, connection.dialect, sql, params)


def outbox_row(
    kind: str,
    key: str,
    res_type: str,
    res_id: str,
    version_id: int,
    now: int,
    subscription: str | None = None,
) -> dict[str, Any]:
    """A new outbox row, due now: a change, a delivery of it, a parcel."""
    return {
        "kind": kind,
        "key": key[:255],
        "subscription": subscription,
        "res_type": res_type,
        "res_id": res_id,
        "version_id": version_id,
        "state": "pending",
        "attempts": 0,
        "next_at": now,
        "lease_until": None,
        "last_error": None,
        "created": now,
        "finished": None,
    }


def pairs_in(
    kind: ColumnElement[str], ident: ColumnElement[str], pairs: list[tuple[str, str]]
) -> ColumnElement[bool]:
    """``(kind, ident) IN pairs`` written as one ``kind = ? AND ident IN (...)`` per kind.

    SQLite answers a row-value IN list by scanning the whole index; this form it looks up.
    """
    ids: dict[str, set[str]] = {}
    for k, i in pairs:
        ids.setdefault(k, set()).add(i)
    return or_(false(), *(and_(kind == k, ident.in_(sorted(v))) for k, v in sorted(ids.items())))


class SessionBase:
    """The state of one database transaction of the store."""

    def __init__(self, store: Store, connection: Connection) -> None:
        self.store = store
        self._connection = connection
        self._pending: dict[str, list[dict[str, Any]]] = {}
        #: the version rows in ``_pending``, by (type, id, version)
        self._pending_versions: dict[tuple[str, str, int], dict[str, Any]] = {}
        #: what the caller may write; None means the server itself writes (audit, open mode)
        self.guard: AccessFilter | None = None
        #: (type, id, patients) of every version written in this session, for the audit
        self.written: list[tuple[str, str, frozenset[str]]] = []
        #: a version of one of ACCESS_TYPES was written: the access epoch is raised at commit
        self.access_changed = False
        #: the access epoch the caller's decisions were made under without reading it (the
        #: last the process saw, ADR 0035), until a statement of this session confirms it
        self.expected_epoch: int | None = None
        #: whether any Subscription exists (asked once per transaction, at the first write)
        self._watched: bool | None = None
        #: whether this transaction left rows in the outbox
        self.enqueued = False
        #: the kinds of index rows this transaction found stored or stored (ADR 0041)
        self.kinds: set[int] = set()
        #: current rows read ahead for this transaction's writes, by (type, id); None for
        #: a resource that has none (see ``Session.read_ahead``)
        self._read_ahead: dict[tuple[str, str], Current | None] = {}
        #: a read on the event loop on PostgreSQL: asks its statements there (ADR 0039, 0054)
        self.ahead: Ahead | None = None
        #: the driver's connection of ``connection``, once a statement asked for it
        self._driver: Any = None

    @contextmanager
    def unguarded(self, reason: str) -> Iterator[Self]:
        """This session without its write guard while the block runs, for ``reason``: a
        write inside a caller's request that the caller's write filter must not refuse (the
        Consent a break-the-glass writes). One of the two
        privileged doors; see :mod:`gateway.interactions.privileged`."""
        _privileged.debug("unguarded write: %s", reason)
        guard, self.guard = self.guard, None
        try:
            yield self
        finally:
            self.guard = guard

    @property
    def dialect(self) -> Dialect:
        """The database's dialect (also of a session on the event loop, which has no
        connection)."""
        return self._connection.dialect

    @property
    def connection(self) -> Connection:
        """The transaction's connection, with every pending index row written first."""
        self.flush()
        return self._connection

    def enqueue_change(self, res_type: str, res_id: str, version_id: int, now: int) -> None:
        """An outbox row for this version, in this transaction, when anyone may be
        subscribed (the worker matches it against the Subscriptions when it delivers)."""
        if res_type in UNWATCHED:
            return
        if self._watched is None:
            exists = select(resources.c.pk).where(
                resources.c.res_type == "Subscription", resources.c.deleted.is_(False)
            )
            self._watched = self._connection.execute(exists.limit(1)).first() is not None
        if not self._watched and res_type != "Subscription":
            return
        self.enqueued = True
        key = f"change:{res_type}/{res_id}/_history/{version_id}"
        self._pending.setdefault("outbox", []).append(
            outbox_row("change", key, res_type, res_id, version_id, now)
        )

    def enqueue_parcels(self, destination: str, items: Sequence[ParcelRow], now: int) -> int:
        """Parcels for ``destination`` and their outbox rows, in this transaction; a key the
        outbox holds already is left as it is (a rerun sends nothing twice). How many were
        new."""
        connection = self.connection
        known: set[str] = set()
        keys = [key for key, _, _, _ in items]
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            known.update(
                row[0]
                for row in connection.execute(select(outbox.c.key).where(outbox.c.key.in_(chunk)))
            )
        fresh = [item for item in items if item[0] not in known]
        if not fresh:
            return 0
        connection.execute(
            insert(outbox),
            [outbox_row("parcel", key, "Parcel", destination, 0, now) for key, _, _, _ in fresh],
        )
        connection.execute(
            insert(parcels),
            [
                {
                    "key": key,
                    "destination": destination,
                    "content_type": content_type,
                    "headers": json.dumps(dict(headers), sort_keys=True),
                    "data": data,
                    "created": now,
                }
                for key, content_type, headers, data in fresh
            ],
        )
        self.enqueued = True
        return len(fresh)

    def lookup(self, name: str, values: Sequence[Any] = ()) -> list[Any]:
        """Run the compiled lookup ``name`` with ``values`` as the driver's own SQL."""
        if self.ahead is not None:
            return self.ahead.rows(*lookup_sql(name, values, self._connection.dialect))
        return lookup_rows(self._connection, name, values)

    def driver_rows(self, sql: str, params: Any) -> list[Any]:
        """The rows of compiled SQL run by the driver in this session's transaction (or,
        on the event loop on PostgreSQL, awaited there while the read waits: ADR 0039, ADR
        0054)."""
        if self.ahead is not None:
            return self.ahead.rows(sql, params)
        driver = self._driver
        if driver is None:  # once a session: SQLAlchemy's way to it is three properties
            driver = self._driver = self._connection.connection.dbapi_connection
        return fetch_driver(driver, self._connection.dialect, sql, params)

    def flush(self) -> None:
        """Write the rows collected by :meth:`put` (index, compartment, versions, outbox):
        one executemany per table and set of columns, as the driver's own SQL."""
        pending, self._pending = self._pending, {}
        self._pending_versions = {}
        connection = self._connection
        for name, rows in pending.items():
            if not rows:
                continue
            table = _PENDING_TABLES[name] if name in _PENDING_TABLES else INDEX_TABLES[name]
            by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for row in rows:
                by_columns.setdefault(tuple(row), []).append(row)
            for columns, same in by_columns.items():
                if len(same) >= _COPY_FROM and connection.dialect.name == "postgresql":
                    copy_rows(connection, table, columns, same)
                    continue
                sql, order = driver_insert(table, columns, connection.dialect)
                if order:  # every pending table has two columns at least: tuples come out
                    connection.exec_driver_sql(sql, list(map(itemgetter(*order), same)))
                else:
                    connection.exec_driver_sql(sql, same)
