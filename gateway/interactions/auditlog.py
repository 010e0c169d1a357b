"""Group commit of the access log: the read entries of concurrent requests in one transaction.

Every read writes its NEN 7513 entry before the response leaves, so a request never answers
without its log line. Written one transaction per request, those entries queue for the
database's write lock (on SQLite, one lock for every process). Here the first request to
arrive writes what every other request queued meanwhile, in one transaction, and each
request still waits until its own entries are committed; a failure reaches every request
of that batch. No thread of its own: the requests' threads take turns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GroupCommit"]


@dataclass(slots=True)
class _Ticket:
    events: list[dict[str, Any]]
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class GroupCommit:
    """Batches of ``write(events)`` calls, at most ``max_events`` entries a transaction."""

    def __init__(self, write: Callable[[list[dict[str, Any]]], None], max_events: int = 500):
        self._write = write
        self._max = max_events
        self._lock = threading.Lock()
        self._queue: list[_Ticket] = []
        self._writing = False

    @property
    def waiting(self) -> int:
        """How many requests wait for the write in progress to finish."""
        with self._lock:
            return len(self._queue)

    def submit(self, events: list[dict[str, Any]]) -> None:
        """Return once ``events`` are committed (raise what the write raised)."""
        ticket = _Ticket(events)
        with self._lock:
            self._queue.append(ticket)
            lead = not self._writing
            self._writing = True
        if lead:
            self._lead()
        ticket.done.wait()
        if ticket.error is not None:
            raise ticket.error

    def _lead(self) -> None:
        while True:
            with self._lock:
                batch: list[_Ticket] = []
                size = 0
                while self._queue and (not batch or size + len(self._queue[0].events) <= self._max):
                    ticket = self._queue.pop(0)
                    batch.append(ticket)
                    size += len(ticket.events)
                if not batch:
                    self._writing = False
                    return
            try:
                self._write([event for ticket in batch for event in ticket.events])
            except BaseException as error:
                for ticket in batch:
                    ticket.error = error
            for ticket in batch:
                ticket.done.set()
