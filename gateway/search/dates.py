"""FHIR dates as ranges (FHIR R4 search.html#date).

Every date, dateTime and instant stands for the range its precision implies: ``2026`` is
the whole year, ``2026-03`` the month, ``2026-03-04T10:00`` the minute. A range is a pair
of integers, microseconds since the Unix epoch, low inclusive and high exclusive: the high
end is computed as a number, so ``9999-12-31`` (whose end no datetime can hold) has one. A
time without a zone is taken as UTC (the server's zone), as are dates. Digits are ASCII.
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
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?",
    re.ASCII,
)
_DAY = 86_400_000_000
_MINUTE = 60_000_000
_SECOND = 1_000_000


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
        low = to_micros(dt.datetime(year, 1, 1, tzinfo=dt.UTC))
        return low, low + (366 if calendar.isleap(year) else 365) * _DAY
    month = int(parts["month"])
    if parts["day"] is None:
        low = to_micros(dt.datetime(year, month, 1, tzinfo=dt.UTC))
        return low, low + calendar.monthrange(year, month)[1] * _DAY
    day = int(parts["day"])
    if parts["hour"] is None:
        low = to_micros(dt.datetime(year, month, day, tzinfo=dt.UTC))
        return low, low + _DAY
    if parts["minute"] is None:
        raise ValueError("an hour needs minutes")
    zone = _zone(parts["zone"])
    hour, minute = int(parts["hour"]), int(parts["minute"])
    if parts["second"] is None:
        low = to_micros(dt.datetime(year, month, day, hour, minute, tzinfo=zone))
        return low, low + _MINUTE
    second = int(parts["second"])
    fraction = parts["fraction"]
    if fraction is None:
        low = to_micros(dt.datetime(year, month, day, hour, minute, second, tzinfo=zone))
        return low, low + _SECOND
    digits = min(len(fraction), 6)
    micros = int(fraction[:digits].ljust(6, "0"))
    low = to_micros(dt.datetime(year, month, day, hour, minute, second, micros, tzinfo=zone))
    return low, low + 10 ** (6 - digits)
