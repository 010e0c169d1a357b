"""The clock, passed in wherever time is read, so that tests can fix it."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

__all__ = ["Clock", "SystemClock", "format_instant"]


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


def format_instant(moment: dt.datetime) -> str:
    """An R4 ``instant`` in UTC with millisecond precision: 2026-11-22T08:00:00.123Z."""
    text = moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    return text[: -len("+00:00")] + "Z"
