"""Reads on the event loop on PostgreSQL: the statements run ahead, without a thread (ADR 0039).

On SQLite a read of one resource runs on the event loop (ADR 0020, 0022): a statement
there is a call into a library in this process. On PostgreSQL a statement is a round trip
over the network, and a synchronous driver would hold the loop for it; so a read ran on a
reader's thread, and the hop there and back, with the synchronous driver's own waiting,
cost the gateway more than the read itself (a consent-on read by id: some 600 µs of the
gateway's processor, against 165 on SQLite).

Here a read on the loop runs its interaction as it always does, synchronously, in a session
without a connection (an :class:`Unconnected` stands for it, and an :class:`Ahead` holds
the rows it was given): the first statement it asks for that it has not been given stops it
(:class:`Prefetch`, before it answered or recorded anything). The edge runs that statement
on one of :class:`AsyncReads`' connections, asyncpg's on the loop (ADR 0046), and runs the
interaction again with the rows given. A read of one resource by id asks one statement, so
it runs twice: once up to its statement, once through. What asks more than
:data:`MOST_AHEAD` statements, or anything the session cannot give from rows (a statement
through SQLAlchemy), stops with :class:`NotOnLoop` and runs again on a reader's thread, as
a read past its budget does on SQLite. A read of one statement has no snapshot to keep: on
a thread it runs in autocommit too, each statement on its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
from collections.abc import AsyncGenerator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from gateway.store.engine import PLANS

if TYPE_CHECKING:
    from sqlalchemy import Dialect, Engine

__all__ = [
    "LOOP_CONNECTIONS",
    "MOST_AHEAD",
    "Ahead",
    "AsyncReads",
    "NotOnLoop",
    "Prefetch",
    "Unconnected",
    "numbered",
]

#: the statements a read on the loop may ask for before it goes to a reader's thread
MOST_AHEAD = 2
#: the asynchronous connections of a process's event loop, at most
LOOP_CONNECTIONS = 8


class NotOnLoop(Exception):
    """A read on the event loop asked for what it can only get on a thread: nothing was
    answered nor recorded, and it runs again on a reader's thread."""


class Prefetch(Exception):
    """A read on the event loop asked for the rows of a statement it has not been given:
    nothing was answered nor recorded; the edge runs ``sql`` with ``params`` and the read
    again with its rows."""

    def __init__(self, sql: str, params: Any) -> None:
        super().__init__("a statement to run ahead")
        self.sql = sql
        self.params = params


def _key(sql: str, params: Any) -> tuple[str, Any]:
    """The statement and its values as a key; a value that cannot be one (a list bound as
    a whole) is :class:`NotOnLoop`: such a statement is run on a thread."""
    key = (sql, tuple(sorted(params.items())) if isinstance(params, dict) else tuple(params))
    try:
        hash(key)
    except TypeError:
        raise NotOnLoop from None
    return key


class Ahead:
    """The rows of the statements run ahead for one read on the event loop, by statement
    and parameters."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: dict[tuple[str, Any], list[Any]] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self, sql: str, params: Any) -> list[Any]:
        """The rows given for ``sql`` with ``params``; :class:`Prefetch` when there are none
        yet, :class:`NotOnLoop` when as many statements ran ahead as a read may ask."""
        found = self._rows.get(_key(sql, params))
        if found is not None:
            return found
        if len(self._rows) >= MOST_AHEAD:
            raise NotOnLoop
        raise Prefetch(sql, params)

    def give(self, sql: str, params: Any, rows: list[Any]) -> None:
        self._rows[_key(sql, params)] = rows


class Unconnected:
    """What stands for the connection of a session on the event loop on PostgreSQL: its
    dialect compiles the statements, and anything else a session would do with a
    connection (a statement through SQLAlchemy, a transaction) is :class:`NotOnLoop`."""

    __slots__ = ("dialect",)

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def __getattr__(self, name: str) -> Any:
        raise NotOnLoop


#: psycopg's placeholders in the statements the dialect compiles: named, positional, and
#: a per cent sign written twice
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")
#: the prepared statements each of the loop's connections keeps (asyncpg's default is 100):
#: the lookups come in a shape per number of values, the log's INSERT per number of entries
STATEMENTS_KEPT = 512


@lru_cache(maxsize=1024)
def numbered(sql: str) -> tuple[str, tuple[str, ...] | None]:
    """``sql`` with psycopg's placeholders (``%(name)s``, ``%s``) numbered as PostgreSQL's own
    (``$1``), and the names in the order of their numbers (None: the statement's values are
    positional already). A name used twice has one number."""
    names: dict[str, int] = {}
    positional = 0

    def number(found: re.Match[str]) -> str:
        nonlocal positional
        if found.group(0) == "%%":
            return "%"
        name = found.group(1)
        if name is None:
            positional += 1
            return f"${positional}"
        return f"${names.setdefault(name, len(names) + 1)}"

    text = _PLACEHOLDER.sub(number, sql)
    if names and positional:
        raise ValueError("a statement with named and positional placeholders")
    return text, tuple(names) if names else None


def _values(names: tuple[str, ...] | None, params: Any) -> Any:
    """The values of a statement :func:`numbered` as asyncpg takes them, in order."""
    if names is None:
        return params
    return [params[name] for name in names]


class AsyncReads:
    """At most ``size`` asyncpg connections of the running event loop, for statements run
    ahead (PostgreSQL's own placeholders; its autocommit). Made on first use; one that
    failed is closed and never reused. They belong to the loop they were made on: on
    another loop (tests run several, one after the other) the first loop's connections are
    closed, those idle at once and those in use when they come back, and the new loop makes
    its own. :meth:`close` closes them all alike.

    asyncpg rather than psycopg's asynchronous connection (ADR 0046): a statement costs the
    loop about half the processor time, or less. The statements are the dialect's, compiled
    for psycopg; their placeholders are numbered once per statement (:func:`numbered`)."""

    def __init__(self, engine: Engine, size: int = LOOP_CONNECTIONS) -> None:
        self._engine = engine
        self._size = size
        self._loop: asyncio.AbstractEventLoop | None = None
        #: the connections' generation: a new one at each :meth:`close` (and for a new loop)
        self._generation = 0
        self._idle: list[tuple[int, Any]] = []
        self._made = 0
        #: the statements waiting for a connection, first come first woken
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        #: closes the connections when their loop shuts down (:meth:`_closed_with`)
        self._closer: AsyncGenerator[None, None] | None = None

    async def rows(self, sql: str, params: Any) -> list[Any]:
        """The rows of ``sql`` (the dialect's text) with ``params`` (a dict for named
        placeholders, a sequence for positional ones), as tuples; a driver's error is
        raised as it is."""
        text, names = numbered(sql)
        values = _values(names, params)
        generation, connection = await self._take()
        try:
            records = await connection.fetch(text, *values)
        except BaseException:
            self._forget(generation)
            _finish(connection)
            self._wake()
            raise
        if generation == self._generation:
            self._idle.append((generation, connection))
        else:  # made on a loop gone by, or before a close: not for this one
            _finish(connection)
        self._wake()
        return list(map(tuple, records))

    async def _take(self) -> tuple[int, Any]:
        """An idle connection, or a new one while fewer than ``size`` are made, or the first
        of either once one comes back. Only the loop touches these: taking and giving back
        need no lock (a lock's acquiring and releasing cost a fifth of a statement)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._renew()
            self._loop = loop
            self._closer = closer = self._closed_with(loop)
            await anext(closer)
        while not self._idle and self._made >= self._size:
            waiter = loop.create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            except BaseException:  # cancelled: a wake it was given goes to the next
                if waiter.done() and not waiter.cancelled():
                    self._wake()
                raise
        if self._idle:
            return self._idle.pop()
        generation = self._generation
        self._made += 1
        try:
            return generation, await self._connect()
        except BaseException:
            self._forget(generation)
            self._wake()
            raise

    async def _closed_with(self, loop: asyncio.AbstractEventLoop) -> AsyncGenerator[None, None]:
        """Held open while ``loop`` runs: the loop's own shutdown (``asyncio.run``, a
        ``Runner``, uvicorn's: ``shutdown_asyncgens``) closes it, and with it this loop's
        connections, while the loop can still close their sockets. A loop that ends without
        the app's shutdown (a server run without its lifespan) leaves none open: an asyncpg
        connection closes only on its own loop, unlike libpq's."""
        try:
            yield
        finally:
            if self._loop is loop:
                self.close()

    def _wake(self) -> None:
        """Wake the first statement waiting for a connection: one came back, or there is
        room for another."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _renew(self) -> None:
        """Start a new generation, for another loop: the idle connections are closed, those
        in use will be when they come back; what waited on the loop gone by waits no more."""
        self.close()
        self._waiting.clear()

    def _forget(self, generation: int) -> None:
        """A connection of ``generation`` is gone: room for another, if it was of this one."""
        if generation == self._generation:
            self._made -= 1

    async def _connect(self) -> Any:
        # an extra of the package; a missing one is told when the engine is made (make_engine)
        import asyncpg  # noqa: PLC0415

        dsn = self._engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(dsn, statement_cache_size=STATEMENTS_KEPT)
        try:
            await connection.execute(PLANS)  # as the engine's connections (ADR 0045)
        except BaseException:
            _finish(connection)
            raise
        return connection

    def close(self) -> None:
        """Close the idle connections (their sockets, on the loop's next turn); those in use
        are closed when they come back. The app's shutdown calls it, the loop's own shutdown
        (:meth:`_closed_with`), and ``Store.dispose``."""
        idle, self._idle = self._idle, []
        self._generation += 1
        self._made = 0
        for _, connection in idle:
            _finish(connection)


def _finish(connection: Any) -> None:
    """Close ``connection`` without waiting: its socket closes on its loop's next turn."""
    with contextlib.suppress(Exception):
        connection.terminate()
