"""Refusals without a valid token, recorded per (client address, reason) and time window.

NEN 7513 asks that an attempt to reach the dossier is recorded, not that every packet of a
flood of forged tokens costs a database write. The first refusal of an address for a reason
is written at once; the ones after it within the window are counted, and written as one
entry (AuditEvent ``period`` from the first to the last, the count in ``outcomeDesc``) when
the window has passed and the next refusal of any caller arrives, or when the gateway stops.
No refusal goes unrecorded; a flood costs one write per address, reason and window.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Refusal", "RefusalTally"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """One entry to write: ``count`` refusals between ``first`` and ``last``."""

    address: str | None
    reason: str
    first: dt.datetime
    last: dt.datetime
    count: int


@dataclass(slots=True)
class _Window:
    start: dt.datetime
    first_held: dt.datetime | None = None  # the first refusal not yet written
    last: dt.datetime | None = None
    held: int = 0


class RefusalTally:
    """Which refusals to write now; ``write`` takes the entries (see the module docstring)."""

    def __init__(
        self,
        write: Callable[[list[Refusal]], None],
        window: dt.timedelta = dt.timedelta(minutes=1),
        max_keys: int = 10_000,
    ) -> None:
        self._write = write
        self._window = window
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._windows: dict[tuple[str | None, str], _Window] = {}

    def refused(self, address: str | None, reason: str, now: dt.datetime) -> None:
        """Record one refusal at ``now``."""
        due: list[Refusal] = []
        with self._lock:
            due += self._sweep(now)
            key = (address, reason)
            window = self._windows.get(key)
            if window is None:
                if len(self._windows) >= self._max_keys:  # a spray of addresses
                    due += self._drain()
                self._windows[key] = _Window(now)
                due.append(Refusal(address, reason, now, now, 1))
            else:
                window.first_held = window.first_held or now
                window.last = now
                window.held += 1
        if due:
            self._write(due)

    def flush(self) -> None:
        """Write every count held (the gateway stops)."""
        with self._lock:
            due = self._drain()
        if due:
            self._write(due)

    def _sweep(self, now: dt.datetime) -> list[Refusal]:
        """The held counts of windows that have passed; those windows end."""
        due = []
        for key, window in list(self._windows.items()):
            if now - window.start >= self._window:
                del self._windows[key]
                due += self._held(key, window)
        return due

    def _drain(self) -> list[Refusal]:
        due = [r for key, window in self._windows.items() for r in self._held(key, window)]
        self._windows.clear()
        return due

    @staticmethod
    def _held(key: tuple[str | None, str], window: _Window) -> list[Refusal]:
        if not window.held or window.first_held is None or window.last is None:
            return []
        return [Refusal(key[0], key[1], window.first_held, window.last, window.held)]
