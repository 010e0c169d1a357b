"""FHIR dates as ranges (FHIR R4 search.html#date).

Every date, dateTime and instant stands for the range its precision implies: ``2026`` is
the whole year, ``2026-03`` the month, ``2026-03-04T10:00`` the minute. A range is a pair
of integers, microseconds since the Unix epoch, low inclusive and high exclusive. A time
without a zone is taken as UTC (the server's zone), as are dates.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

__all__ = ["MAX", "MIN", "DateRange", "parse_date_range", "to_micros"]

DateRange = tuple[int, int]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MIN = -(2**62)
MAX = 2**62

_PATTERN = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2})(?::(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?"
)


def to_micros(moment: dt.datetime) -> int:
    """Microseconds since the epoch for an aware datetime."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _zone(text: str | None) -> dt.tzinfo:
    if text is None or text == "Z":
        return dt.UTC
    sign = 1 if text[0] == "+" else -1
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 14 or minutes > 59:
        raise ValueError("zone offset out of range")
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


def parse_date_range(text: str) -> DateRange:
    """The range ``text`` stands for. Raises ValueError when it is not a FHIR date."""
    match = _PATTERN.fullmatch(text)
    if match is None:
        raise ValueError("not a FHIR date, dateTime or instant")
    parts = match.groupdict()
    year = int(parts["year"])
    if year < 1:
        raise ValueError("year out of range")
    if parts["month"] is None:
        low = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
        high = dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC) if year < 9999 else None
        return to_micros(low), to_micros(high) if high else MAX
    month = int(parts["month"])
    if parts["day"] is None:
        low = dt.datetime(year, month, 1, tzinfo=dt.UTC)
        days = calendar.monthrange(year, month)[1]
        return to_micros(low), to_micros(low + dt.timedelta(days=days))
    day = int(parts["day"])
    if parts["hour"] is None:
        low = dt.datetime(year, month, day, tzinfo=dt.UTC)
        return to_micros(low), to_micros(low + dt.timedelta(days=1))
    if parts["minute"] is None:
        raise ValueError("an hour needs minutes")
    zone = _zone(parts["zone"])
    hour, minute = int(parts["hour"]), int(parts["minute"])
    if parts["second"] is None:
        low = dt.datetime(year, month, day, hour, minute, tzinfo=zone)
        return to_micros(low), to_micros(low + dt.timedelta(minutes=1))
    second = int(parts["second"])
    fraction = parts["fraction"]
    if fraction is None:
        low = dt.datetime(year, month, day, hour, minute, second, tzinfo=zone)
        return to_micros(low), to_micros(low + dt.timedelta(seconds=1))
    digits = min(len(fraction), 6)
    micros = int(fraction[:digits].ljust(6, "0"))
    low = dt.datetime(year, month, day, hour, minute, second, micros, tzinfo=zone)
    step = 10 ** (6 - digits)
    return to_micros(low), to_micros(low) + step
