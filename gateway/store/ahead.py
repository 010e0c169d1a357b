"""Reads on the event loop on PostgreSQL: their statements awaited there, without a thread
(ADR 0039, ADR 0054).

On SQLite a read of one resource runs on the event loop (ADR 0020, 0022): a statement
there is a call into a library in this process. On PostgreSQL a statement is a round trip
over the network, and a synchronous driver would hold the loop for it; so a read ran on a
reader's thread, and the hop there and back, with the synchronous driver's own waiting,
cost the gateway more than the read itself (a consent-on read by id: some 600 µs of the
gateway's processor, against 165 on SQLite).

Here a read on the loop runs its interaction as it always does, synchronously, in a session
without a connection (an :class:`Unconnected` stands for it), inside a greenlet of its own
(:func:`run_ahead`). A statement it asks for through its :class:`Ahead` suspends that
greenlet; the loop awaits the statement on one of :class:`AsyncReads`' connections
(asyncpg's, ADR 0046), serving other requests meanwhile, and resumes the read with the
rows. The read runs once, through (ADR 0054; before, it stopped at its first statement and
ran again from the start with the rows). What asks more than :data:`MOST_AHEAD`
statements, anything the session cannot give from rows (a statement through SQLAlchemy),
or a statement the database refused (:class:`AheadFailed`), stops with :class:`NotOnLoop`
at that statement, before the read answered or recorded anything, and runs again on a
reader's thread, as a read past its budget does on SQLite. A read of one statement has no
snapshot to keep: on a thread it runs in autocommit too, each statement on its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import threading
from collections.abc import AsyncGenerator, Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar, cast

import greenlet

from gateway.store.engine import PLANS

if TYPE_CHECKING:
    from sqlalchemy import Dialect, Engine

__all__ = [
    "LOOP_CONNECTIONS",
    "MOST_AHEAD",
    "Ahead",
    "AheadFailed",
    "AsyncReads",
    "NotOnLoop",
    "Unconnected",
    "numbered",
    "run_ahead",
]

#: the statements a read on the loop may ask for before it goes to a reader's thread
MOST_AHEAD = 2
#: the asynchronous connections of a process's event loop, at most
LOOP_CONNECTIONS = 8

_T = TypeVar("_T")


class NotOnLoop(Exception):
    """A read on the event loop asked for what it can only get on a thread: nothing was
    answered nor recorded, and it runs again on a reader's thread."""


class AheadFailed(NotOnLoop):
    """The database (or the connection to it) refused a statement a read on the loop asked
    for: the read runs again on a reader's thread, which answers the failure as ever.
    ``failure`` names the error's type, never its message (which may hold values)."""

    def __init__(self, failure: str) -> None:
        super().__init__("a statement run ahead failed")
        self.failure = failure


class _Asked:
    """What a read's greenlet hands the loop: a statement to await, with its values."""

    __slots__ = ("params", "sql")

    def __init__(self, sql: str, params: Any) -> None:
        self.sql = sql
        self.params = params


#: what a read's greenlet hands the loop when the read has finished (returned or raised)
_FINISHED = object()
#: the idle greenlets a thread keeps for reads on its loop, at most
READERS_KEPT = 64


class _Reader(greenlet.greenlet):
    """A greenlet that runs reads on the loop, one after another (:func:`run_ahead`). Each
    is kept for the next: making one cost 8 µs and letting it go 15 more (its own stack of
    frames, which the interpreter maps and unmaps), a switch there and back under one."""

    def __init__(self) -> None:
        super().__init__(self._serve)
        #: the read to run next, and what the last one returned or raised
        self.call: Callable[[], Any] | None = None
        self.returned: Any = None
        self.raised: BaseException | None = None

    def _serve(self) -> None:
        while True:
            call, self.call = self.call, None
            assert call is not None
            try:
                self.returned = call()
            except greenlet.GreenletExit:  # the greenlet itself is let go
                raise
            except BaseException as error:  # handed to the loop, which raises it
                self.raised = error
            del call
            assert self.parent is not None
            self.parent.switch(_FINISHED)


class _Unwind(BaseException):
    """Thrown into a read whose request was cancelled while it waited for a statement: it
    unwinds (its sessions close) past any handler of errors."""


_readers = threading.local()


def _reader() -> _Reader:
    """An idle greenlet of this thread's, or a new one."""
    idle: list[_Reader] = _readers.__dict__.setdefault("idle", [])
    return idle.pop() if idle else _Reader()


def _finished(reader: _Reader) -> tuple[Any, BaseException | None]:
    """What the read ``reader`` ran returned and raised; the reader, holding neither any
    more, is kept for the next read."""
    outcome = reader.returned, reader.raised
    reader.returned = reader.raised = None
    idle: list[_Reader] = _readers.__dict__.setdefault("idle", [])
    if len(idle) < READERS_KEPT:
        idle.append(reader)
    return outcome


class Ahead:
    """The statements one read on the event loop asks for: each suspends the read's
    greenlet until the loop has its rows (:func:`run_ahead`)."""

    __slots__ = ("asked",)

    def __init__(self) -> None:
        #: the statements asked so far
        self.asked = 0

    def rows(self, sql: str, params: Any) -> list[Any]:
        """The rows of ``sql`` with ``params``, awaited on the loop while this read waits;
        :class:`NotOnLoop` when as many statements ran ahead as a read may ask, for a value
        bound as a whole list or mapping (psycopg adapts those by its own rules, which the
        loop's driver does not share), or outside :func:`run_ahead`; :class:`AheadFailed`
        when the database refused the statement."""
        if self.asked >= MOST_AHEAD:
            raise NotOnLoop
        values = params.values() if isinstance(params, dict) else params
        if any(isinstance(value, (list, dict)) for value in values):
            raise NotOnLoop
        current = greenlet.getcurrent()
        if not isinstance(current, _Reader) or current.parent is None:
            raise NotOnLoop
        self.asked += 1
        rows: list[Any] = current.parent.switch(_Asked(sql, params))
        return rows


async def run_ahead(reads: AsyncReads, call: Callable[[], _T]) -> _T:
    """``call()``, a read on the event loop, run in a greenlet (one this thread keeps for
    such reads): each statement it asks through an :class:`Ahead` is awaited on ``reads``
    while other requests are served, and the read resumed with its rows. A statement the
    database refused resumes it with :class:`AheadFailed`; a cancellation (the request
    gone, the loop stopping) unwinds it and is raised. What ``call`` raises is raised here.

    The greenlet runs in the context of the task that awaits it: the read sees its own
    request's context, as it would on a thread with ``asyncio.to_thread``."""
    here = greenlet.getcurrent()
    reader = _reader()
    reader.parent = here
    reader.gr_context = here.gr_context
    reader.call = call
    step = reader.switch()
    while step is not _FINISHED:
        assert isinstance(step, _Asked)
        try:
            rows = await reads.rows(step.sql, step.params)
        except Exception as error:
            step = reader.throw(AheadFailed(type(error).__name__))
        except BaseException:
            if reader.throw(_Unwind()) is _FINISHED:  # else it asks on: let it go
                _finished(reader)
            raise
        else:
            step = reader.switch(rows)
    returned, raised = _finished(reader)
    if raised is not None:
        raise raised
    return cast(_T, returned)


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
