"""The clock, passed in wherever time is read, so that tests can fix it."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
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
    """An R4 ``instant`` in UTC with millisecond precision: 2026-11-22T08:00:00.123Z. Its
    date and time to the second are written once a second (every access-log entry has
    one: half the cost of writing it whole each time)."""
    utc = moment.astimezone(dt.UTC)
    return f"{_to_the_second((utc - _EPOCH) // _SECOND)}.{utc.microsecond // 1000:03d}Z"


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SECOND = dt.timedelta(seconds=1)


@lru_cache(maxsize=64)
def _to_the_second(seconds: int) -> str:
    moment = _EPOCH + dt.timedelta(seconds=seconds)
    return moment.isoformat(timespec="seconds").removesuffix("+00:00")
