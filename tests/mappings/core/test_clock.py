"""R4 instants as the clock writes them."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from mappings.core.clock import format_instant

#: any moment, in any offset a zone has (UTC-14:00 to UTC+14:00, to the minute)
moments = st.builds(
    lambda moment, minutes: moment.replace(tzinfo=dt.UTC).astimezone(
        dt.timezone(dt.timedelta(minutes=minutes))
    ),
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)


@given(moments)
def test_an_instant_is_the_moment_in_utc_to_the_millisecond(moment: dt.datetime) -> None:
    """What writing the whole moment gives, though each second's text is kept."""
    whole = moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    assert format_instant(moment) == whole.removesuffix("+00:00") + "Z"


def test_the_milliseconds_are_each_moments_own_within_a_second() -> None:
    second = dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    texts = [format_instant(second.replace(microsecond=us)) for us in (0, 999, 1000, 999_999)]
    assert texts == [
        "1969-12-31T23:59:59.000Z",
        "1969-12-31T23:59:59.000Z",
        "1969-12-31T23:59:59.001Z",
        "1969-12-31T23:59:59.999Z",
    ]
    later = dt.datetime(2242, 1, 1, 0, 0, 0, 999_999, tzinfo=dt.UTC)  # past a float's reach
    assert format_instant(later) == "2242-01-01T00:00:00.999Z"
