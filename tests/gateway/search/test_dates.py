"""FHIR dates as ranges: property tests over the precision rules."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.search.dates import parse_date_range, to_micros
from gateway.store.repository import instant_of
from mappings.core.clock import format_instant

moments = st.datetimes(
    min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
)


@given(moments)
def test_every_precision_contains_the_moment(moment: dt.datetime) -> None:
    micros = to_micros(moment)
    texts = [
        moment.strftime("%Y"),
        moment.strftime("%Y-%m"),
        moment.strftime("%Y-%m-%d"),
        moment.strftime("%Y-%m-%dT%H:%MZ"),
        moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    ]
    widths = []
    for text in texts:
        low, high = parse_date_range(text)
        assert low <= micros < high
        widths.append(high - low)
    assert widths == sorted(widths, reverse=True)
    assert widths[-1] == 1


@given(moments, st.integers(min_value=-14 * 60, max_value=14 * 60))
def test_zone_offsets_shift_the_range(moment: dt.datetime, minutes: int) -> None:
    zone = dt.timezone(dt.timedelta(minutes=minutes))
    local = moment.astimezone(zone).replace(microsecond=0)
    sign = "+" if minutes >= 0 else "-"
    offset = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    low, high = parse_date_range(local.strftime("%Y-%m-%dT%H:%M:%S") + offset)
    assert low == to_micros(local) and high - low == 1_000_000


def test_month_and_leap_years() -> None:
    low, high = parse_date_range("2024-02")
    assert (high - low) == 29 * 86_400_000_000
    low, high = parse_date_range("2023-02")
    assert (high - low) == 28 * 86_400_000_000


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2024-13",
        "2024-02-30",
        "24",
        "2024-01-01T10",
        "2024-01-01T25:00Z",
        "2024-01-01T10:00+15:00",
        "tomorrow",
        "0000",
        "2024-01-01 10:00",
    ],
)
def test_invalid_dates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_date_range(text)


@given(st.text(max_size=25))
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        low, high = parse_date_range(text)
    except ValueError:
        return
    assert low < high


@given(
    st.datetimes(
        min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59, 999999)
    )
)
def test_a_stored_time_reads_back_as_the_instant_it_was(moment: dt.datetime) -> None:
    """instant_of keeps each second's text: it must write what format_instant writes."""
    aware = moment.replace(tzinfo=dt.UTC)
    assert instant_of(to_micros(aware)) == format_instant(aware)
