"""The access log's two writers: the group commit of its entries, and their indexer.

**Group commit.** The read entries of concurrent requests are committed in one transaction.

Every read writes its NEN 7513 entry before the response leaves, so a request never answers
without its log line. Written one transaction per request, those entries queue for the
database's write lock (on SQLite, one lock for every process). Here the first request to
arrive writes what every other request queued meanwhile, in one transaction, and each
request still waits until its own entries are committed; a failure reaches every request
of that batch. No thread of its own: the requests' threads take turns. A request served on
the event loop (:meth:`GroupCommit.submit_async`) waits without a thread; on SQLite the loop
commits the batch itself, and tries again a moment later when another writer holds the lock
or the indexer is too far behind (ADR 0026, ADR 0047). On PostgreSQL the loop writes its
batches on its asynchronous connections (ADR 0039), one at a time as on SQLite: what
arrives while one is written makes the next, in fewer round trips and commits (ADR 0055).

**Indexer.** An entry is committed as a narrow row of the log as written (on SQLite a
read's in a file of its own, ADR 0027); :class:`LogIndexer` stores the waiting entries as
AuditEvent resources, a batch per transaction: in a thread of every gateway process on
PostgreSQL, in a process of its own beside ``serve`` on SQLite (``eigendossier index-log``,
ADR 0028), where past a bound the requests' log commits wait for it. On SQLite it works a
batch out (bytes, index rows) before it takes the write lock (ADR 0023), and a thread beside
it checkpoints the WAL (:class:`Checkpointer`, ADR 0036). A read that can show AuditEvents
does not wait for it: it indexes what waits itself first (ADR 0021).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway.store.repository import BATCH_BYTES, Batch, Store
from gateway.store.upkeep import UPKEEP_EVERY

__all__ = [
    "CHECKPOINT_EVERY",
    "LOOP_PATIENCE",
    "REST_SHARE",
    "Checkpointer",
    "GroupCommit",
    "LogIndexer",
    "Upkeeper",
]

log = logging.getLogger("eigendossier.auditlog")

#: how often the indexer's checkpointer copies SQLite's WAL into the database (seconds)
CHECKPOINT_EVERY = 0.25
#: how long the event loop tries a batch it could not commit again before a pool thread
#: takes it (seconds): longer than the store lets the indexer's backlog hold a commit back
#: (``LOG_BACKLOG_WAIT``), so that only a write lock held this long ends on a thread
LOOP_PATIENCE = 5.0
#: the share of the backlog's bound (``Store.log_backlog``) the indexer lets arrive while it
#: rests after catching up (ADR 0050): at a quarter, the requests find the bound reached only
#: when the log's rate grows fourfold within one rest
REST_SHARE = 0.25
#: the least and the most time between two tries of a held-back batch (seconds)
_RETRY_LEAST = 0.00025
_RETRY_MOST = 0.004


@dataclass(slots=True)
class _Ticket:
    events: list[dict[str, Any]]
    #: a request on a thread waits on this event; one on the event loop on ``future``
    #: (and has no event: making one, with its lock and condition, was 1.5 % of a
    #: consent-on read)
    done: threading.Event | None = None
    error: BaseException | None = None
    future: asyncio.Future[None] | None = None
    loop: asyncio.AbstractEventLoop | None = None

    def finish(self, error: BaseException | None) -> None:
        self.error = error
        if self.future is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(_settle, self.future, error)
        elif self.done is not None:
            self.done.set()


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the request went away (its task cancelled): nothing to tell
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(None)


class GroupCommit:
    """Batches of ``write(events)`` calls, at most ``max_events`` entries a transaction."""

    def __init__(
        self,
        write: Callable[[list[dict[str, Any]]], None],
        max_events: int = 500,
        writers: int = 1,
        write_now: Callable[[list[dict[str, Any]]], bool] | None = None,
        write_async: Callable[[list[dict[str, Any]]], Awaitable[None]] | None = None,
        patience: float = LOOP_PATIENCE,
    ) -> None:
        """``writers``: batches written at once (the gateway writes one at a time: on
        SQLite its writers queue for one lock anyway, and on PostgreSQL more at once were
        more round trips and commits for the same entries, ADR 0055). ``write_now``:
        commits a batch of requests on the event loop without waiting for a lock, or says it
        could not (False, nothing written); requests on the loop then lead through it first
        (SQLite).
        ``write_async``: commits a batch on the event loop without a thread, awaiting the
        database; requests on the loop lead through it (PostgreSQL, ADR 0039).
        ``patience``: how long the loop tries again a batch ``write_now`` could not commit
        before a pool thread takes it."""
        self._write = write
        self.patience = patience
        self._write_now = write_now
        self._write_async = write_async
        #: the leads on the event loop in progress (``write_async``)
        self._leads: set[asyncio.Task[None]] = set()
        self._max = max_events
        self._lock = threading.Lock()
        self._queue: list[_Ticket] = []
        self._writers = writers
        self._writing = 0  # batches being written now

    @property
    def waiting(self) -> int:
        """How many requests wait for the write in progress to finish."""
        with self._lock:
            return len(self._queue)

    @property
    def writing(self) -> int:
        """How many leads are writing batches now (on a thread or on the loop)."""
        with self._lock:
            return self._writing

    def submit(self, events: list[dict[str, Any]]) -> None:
        """Return once ``events`` are committed (raise what the write raised)."""
        done = threading.Event()
        ticket = _Ticket(events, done)
        if self._enqueue(ticket):
            self._lead()
        done.wait()
        if ticket.error is not None:
            raise ticket.error

    async def submit_async(self, events: list[dict[str, Any]]) -> None:
        """:meth:`submit` for a request on the event loop: the loop is never blocked."""
        loop = asyncio.get_running_loop()
        committed: asyncio.Future[None] = loop.create_future()
        if self._enqueue(_Ticket(events, future=committed, loop=loop)):
            if self._write_now is not None:
                loop.call_soon(self._lead_on_loop, loop)
            elif self._write_async is not None:
                leading = loop.create_task(self._lead_async(loop))
                self._leads.add(leading)  # held until done: the loop keeps weak references
                leading.add_done_callback(self._leads.discard)
            else:
                leader = loop.run_in_executor(None, self._lead)
                leader.add_done_callback(_retrieve)
        await committed

    def _enqueue(self, ticket: _Ticket) -> bool:
        """Queue ``ticket``; True when its submitter is to lead the writing."""
        with self._lock:
            self._queue.append(ticket)
            lead = self._writing < self._writers
            if lead:
                self._writing += 1
        return lead

    def _take(self) -> list[_Ticket] | None:
        """The next batch from the queue; None, and the lead given up, when none waits."""
        with self._lock:
            batch: list[_Ticket] = []
            size = 0
            while self._queue and (not batch or size + len(self._queue[0].events) <= self._max):
                ticket = self._queue.pop(0)
                batch.append(ticket)
                size += len(ticket.events)
            if not batch:
                self._writing -= 1
                return None
        return batch

    def _lead(self) -> None:
        while (batch := self._take()) is not None:
            failure: BaseException | None = None
            try:
                self._write([event for ticket in batch for event in ticket.events])
            except BaseException as error:
                failure = error
            for ticket in batch:
                ticket.finish(failure)

    async def _lead_async(self, loop: asyncio.AbstractEventLoop) -> None:
        """Write batches on the event loop with ``write_async`` (PostgreSQL, ADR 0039): each
        an INSERT on one of the loop's asynchronous connections, while the loop serves
        others; what arrives meanwhile makes the next batch. Cancelled (the loop stops), the
        batch in hand gets the cancellation and a pool thread leads the rest."""
        assert self._write_async is not None
        while (batch := self._take()) is not None:
            failure: BaseException | None = None
            try:
                await self._write_async([event for ticket in batch for event in ticket.events])
            except asyncio.CancelledError as cancelled:
                self._settle_batch(batch, loop, cancelled)
                loop.run_in_executor(None, self._lead).add_done_callback(_retrieve)
                raise
            except Exception as error:  # as a thread's lead: the batch's requests get it
                failure = error
            self._settle_batch(batch, loop, failure)

    @staticmethod
    def _settle_batch(
        batch: list[_Ticket], loop: asyncio.AbstractEventLoop, failure: BaseException | None
    ) -> None:
        """Tell each request of ``batch`` how its write ended: one on ``loop`` at once, any
        other through its own loop or thread."""
        for ticket in batch:
            if ticket.future is not None and ticket.loop is loop:
                _settle(ticket.future, failure)
            else:
                ticket.finish(failure)

    def _lead_on_loop(self, loop: asyncio.AbstractEventLoop, held: float | None = None) -> None:
        """Commit the next batch on the event loop itself when ``write_now`` can (no other
        writer holds the lock): no thread to wake and no hand-over of the interpreter lock
        between it and the loop (ADR 0026). When it cannot, the batch goes back to the front
        of the queue and the loop tries again a moment later, serving other requests
        meanwhile; what arrives in that moment joins the batch (ADR 0047). Only a batch held
        back for ``patience`` seconds (``held``: since when) goes to a pool thread, which
        waits for the lock. After a batch, the next is taken on the loop's next turn."""
        assert self._write_now is not None
        batch = self._take()
        if batch is None:
            return
        failure: BaseException | None = None
        try:
            committed = self._write_now([event for ticket in batch for event in ticket.events])
        except BaseException as error:  # as a thread's lead: the batch's requests get it
            committed, failure = True, error
        if not committed:
            with self._lock:
                self._queue[:0] = batch
            now = loop.time()
            held = now if held is None else held
            if now - held < self.patience:
                # sooner while the hold is new (another writer's commit, a millisecond or
                # two), less often as it lasts (an indexer catching up)
                later = min(_RETRY_MOST, max(_RETRY_LEAST, (now - held) / 4))
                loop.call_later(later, self._lead_on_loop, loop, held)
            else:
                loop.run_in_executor(None, self._lead).add_done_callback(_retrieve)
            return
        self._settle_batch(batch, loop, failure)
        loop.call_soon(self._lead_on_loop, loop)


def _retrieve(leader: asyncio.Future[None]) -> None:
    """The lead's own outcome: every failure of a write went to its batch's tickets."""
    if not leader.cancelled():
        leader.exception()


class LogIndexer:
    """Indexes the waiting access-log entries as AuditEvent resources, in a thread.

    A round moves the oldest waiting entries, at most ``batch`` and about ``max_bytes`` of
    them (``Store.index_access_log``), in one transaction: a batch shares the index pages
    its entries touch, and a small one holds SQLite's write lock briefly (the writes wait
    for it; the entries of reads are committed to a file of their own, ADR 0027). After a
    round that stopped at that size the next follows a ``pause`` later, which leaves the
    write lock to the writes, and is twice as large, up to ``grow`` times the
    first (ADR 0026): while the log runs ahead of it, larger batches share more pages and
    cost less an entry, so the indexer catches up instead of falling further behind; after
    a round that took all that waited, the next is of the first size again, after a rest
    in which about ``REST_SHARE`` of the backlog's bound arrives at the rate the last
    rounds found, ``interval`` at most (what arrives meanwhile makes it larger, and cheaper
    per entry; a fixed rest let four thousand reads a second fill the bound: ADR 0050).
    Entries another process is indexing are left to it. At the stop it indexes what is
    left. A failure is logged (its type only: no SQL, no health data) and the entries wait
    for the next round; none is lost, since a batch leaves the log as written only once it
    is indexed (in the same transaction, or on SQLite after it, from the log's own file).
    """

    def __init__(
        self,
        store: Store,
        interval: float = 1.0,
        batch: int = 100,
        pause: float = 0.01,
        max_bytes: int = BATCH_BYTES,
        grow: int = 4,
        checkpoint_every: float = CHECKPOINT_EVERY,
        upkeep_every: float = UPKEEP_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock``: seconds, for the rate the rests are paced by."""
        self.store = store
        self.clock = clock
        self.interval = interval
        self.batch = batch
        self.pause = pause
        self.max_bytes = max_bytes
        self.grow = grow
        self.checkpoint_every = checkpoint_every
        self.upkeep_every = upkeep_every
        #: the next round's size, as a multiple of the first
        self.scale = 1

    def run(self, stop: threading.Event) -> None:
        """Rounds until ``stop``, then what is left; beside them for as long, on SQLite a
        :class:`Checkpointer`, which checkpoints once more after the last round, and on
        PostgreSQL an :class:`Upkeeper`."""
        halt = threading.Event()
        beside = None
        if self.store.checkpoints:
            work = Checkpointer(self.store, self.checkpoint_every).run
            beside = threading.Thread(
                target=work, args=(halt,), name="eigendossier-checkpoint", daemon=True
            )
        elif self.store.keeps_up:
            work = Upkeeper(self.store, self.upkeep_every).run
            beside = threading.Thread(
                target=work, args=(halt,), name="eigendossier-upkeep", daemon=True
            )
        if beside is not None:
            beside.start()
        try:
            began, moved = self.clock(), 0  # since the last rest began
            while not stop.is_set():
                batch = self.round()
                moved += batch.moved
                if batch.more:
                    stop.wait(self.pause)
                    continue
                now = self.clock()
                rest = self.rest(moved, now - began)
                began, moved = now, 0
                stop.wait(rest)
            self.index_waiting()
        finally:
            halt.set()
            if beside is not None:
                beside.join()

    def rest(self, moved: int, seconds: float) -> float:
        """How long to rest after a round that took all that waited, having moved ``moved``
        entries in the ``seconds`` since the last rest began (that rest and the rounds
        after it: about the rate at which entries arrive): the time in which ``REST_SHARE``
        of the backlog's bound arrives at that rate, at least ``pause`` and at most
        ``interval``; ``interval`` when nothing arrived."""
        if moved <= 0 or seconds <= 0:
            return self.interval
        enough = REST_SHARE * self.store.log_backlog * seconds / moved
        return min(self.interval, max(self.pause, enough))

    def index_waiting(self) -> int:
        """Rounds without a pause until no entry waits (that no other process holds)."""
        moved = 0
        while True:
            batch = self.round()
            moved += batch.moved
            if not batch.more:
                return moved

    def round(self) -> Batch:
        """One batch; the next one twice as large (up to ``grow`` times the first) when this
        one stopped at its size, of the first size when it took all that waited."""
        batch = self._round(self.batch * self.scale, self.max_bytes * self.scale)
        self.scale = min(self.scale * 2, self.grow) if batch.more else 1
        return batch

    def _round(self, limit: int, max_bytes: int) -> Batch:
        try:
            return self.store.index_access_log(limit, wait=False, max_bytes=max_bytes)
        except Exception as error:  # the next round tries again; the entries wait
            log.error("indexing the access log failed: %s", type(error).__name__)
            return Batch(0, more=False)


class _Beside(abc.ABC):
    """Work the indexer has done every ``every`` seconds in a thread beside its rounds
    (:meth:`work`), until stopped (then once more, with ``last``). A failure is logged as
    ``failure`` with its type only (no SQL, no data), and the next round tries again:
    nothing is lost."""

    failure = ""
    last = False

    def __init__(self, store: Store, every: float) -> None:
        self.store = store
        self.every = every

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.every):
            self.once()
        if self.last:
            self.once()

    def once(self) -> bool:
        """One round; False when it failed (logged)."""
        try:
            self.work()
        except Exception as error:  # the next round tries again
            log.error("%s failed: %s", self.failure, type(error).__name__)
            return False
        return True

    @abc.abstractmethod
    def work(self) -> None:
        """The round's work; what it raises is the round's failure."""


class Checkpointer(_Beside):
    """Checkpoints SQLite's WAL every ``every`` seconds, in a thread beside the indexer
    (ADR 0036), and once more when stopped.

    The indexer writes most of the pages (some five an entry). A commit checkpoints when
    the WAL has grown past ``WAL_AUTOCHECKPOINT`` pages, and then waits for the copy and
    two flushes to disk: mostly a wait for the disk, not work of the processor (for
    10,874 entries of reads, 1.07 s of which 0.18 s on the processor). Here the copy runs
    while the indexer works out its next batch, and the WAL stays far below that size, so
    no commit waits for it.
    A checkpoint flushes the WAL first, so it also bounds what a power loss can take
    (``synchronous=NORMAL``) to about ``every`` seconds of commits. A failure is logged by
    its type only and the next one tries again.
    """

    failure = "checkpointing the database"
    last = True

    def __init__(self, store: Store, every: float = CHECKPOINT_EVERY) -> None:
        super().__init__(store, every)

    def work(self) -> None:
        self.store.checkpoint()


class Upkeeper(_Beside):
    """PostgreSQL's upkeep of the gateway's tables every ``every`` seconds, in a thread
    beside the indexer (ADR 0045): the access log's queue vacuumed, and while autovacuum
    is off the statistics of the tables that changed gathered (``Store.upkeep``). Several
    processes' upkeepers do not wait for one another: a vacuum or an analysis another has
    in hand is skipped. A failure is logged by its type only, and the next round tries
    again."""

    failure = "the database's upkeep"

    def __init__(self, store: Store, every: float = UPKEEP_EVERY) -> None:
        super().__init__(store, every)

    def work(self) -> None:
        self.store.upkeep()
