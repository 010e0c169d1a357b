"""What a gateway process keeps of the Consents: per access epoch, until a period turns.

The end-to-end side (a revocation through one gateway seen by another, a care team losing
a member, a period starting and ending while a gateway keeps the grant) is in
tests/gateway/test_consent.py; here the cache's rules and the period arithmetic.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from consent.policy import next_change
from gateway.interactions.grants import GrantCache

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


class _Deriving:
    """A derive function that counts its calls and returns its call number."""

    def __init__(self, until: dt.datetime | None = None) -> None:
        self.calls = 0
        self.until = until

    def __call__(self) -> tuple[int, dt.datetime | None]:
        self.calls += 1
        return self.calls, self.until


def test_an_entry_serves_its_epoch_only() -> None:
    cache, derive = GrantCache(), _Deriving()
    assert cache.get(7, "gp", NOW, derive) == 1
    assert cache.get(7, "gp", NOW, derive) == 1  # kept
    assert cache.get(8, "gp", NOW, derive) == 2  # the epoch moved: derived again
    assert cache.get(8, "gp", NOW, derive) == 2
    assert cache.get(3, "gp", NOW, derive) == 3  # a lower epoch (a restored backup) too
    assert cache.get(8, "gp", NOW, derive) == 4  # and the entries of 8 went with the move
    assert derive.calls == 4


def test_keys_are_apart_and_a_store_without_the_counter_derives_every_time() -> None:
    cache = GrantCache()
    gp, nurse = _Deriving(), _Deriving()
    cache.get(1, "gp", NOW, gp)
    cache.get(1, "nurse", NOW, nurse)
    cache.get(1, "gp", NOW, gp)
    assert (gp.calls, nurse.calls) == (1, 1)
    uncounted = _Deriving()
    for _ in range(3):
        cache.get(None, "gp", NOW, uncounted)
    assert uncounted.calls == 3


def test_an_entry_holds_until_the_instant_its_periods_turn() -> None:
    turn = NOW + dt.timedelta(minutes=5)
    cache, derive = GrantCache(), _Deriving(until=turn)
    cache.get(1, "gp", NOW, derive)
    cache.get(1, "gp", turn - dt.timedelta(microseconds=1), derive)
    assert derive.calls == 1
    cache.get(1, "gp", turn, derive)
    assert derive.calls == 2


def test_the_cache_stays_within_its_size() -> None:
    cache = GrantCache(max_entries=3)
    derives = [_Deriving() for _ in range(5)]
    for n, derive in enumerate(derives):
        cache.get(1, n, NOW, derive)
    cache.get(1, 4, NOW, derives[4])  # the newest is kept
    cache.get(1, 0, NOW, derives[0])  # the oldest went when the cache was full
    assert [d.calls for d in derives] == [2, 1, 1, 1, 1]


def _consent(provision: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Consent", "status": "active", "provision": provision}


def test_next_change_is_the_first_period_bound_after_now() -> None:
    nested = _consent(
        {
            "type": "permit",
            "period": {"start": "2026-01-01", "end": "2026-12-31"},
            "provision": [
                {"type": "deny", "period": {"start": "2026-11-22T12:30:00Z"}},
                {"type": "deny", "period": {"end": "2026-11-22T13:00:00+01:00"}},
            ],
        }
    )
    # 13:00 in Amsterdam is 12:00 UTC, which is now: that period turns a microsecond later
    assert next_change(nested, NOW) == NOW + dt.timedelta(microseconds=1)
    later = NOW + dt.timedelta(seconds=1)
    assert next_change(nested, later) == dt.datetime(2026, 11, 22, 12, 30, tzinfo=dt.UTC)
    # a date as end: the grant holds through that whole day
    assert next_change(nested, dt.datetime(2026, 12, 1, tzinfo=dt.UTC)) == dt.datetime(
        2027, 1, 1, tzinfo=dt.UTC
    )
    assert next_change(nested, dt.datetime(2027, 1, 1, tzinfo=dt.UTC)) is None
    assert next_change(_consent({"type": "permit"}), NOW) is None
