"""Refusals without a valid token: recorded per address, reason and window, never lost; and
a flood of made-up key ids reads the signing keys at most once per interval."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import httpx

from consent.tokens import InvalidToken, KeyRing, TokenIssuer, new_signing_keys
from gateway.interactions.refusals import Refusal, RefusalTally

T0 = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)


def _tally() -> tuple[RefusalTally, list[Refusal]]:
    written: list[Refusal] = []
    return RefusalTally(written.extend, window=dt.timedelta(minutes=1)), written


def test_the_first_is_written_at_once_the_rest_counted_into_one_entry() -> None:
    tally, written = _tally()
    for second in range(50):
        tally.refused("10.0.0.9", "unknown signing key", T0 + dt.timedelta(seconds=second))
    assert written == [Refusal("10.0.0.9", "unknown signing key", T0, T0, 1)]
    tally.refused("10.0.0.7", "expired", T0 + dt.timedelta(seconds=61))  # another caller
    first_held, last = T0 + dt.timedelta(seconds=1), T0 + dt.timedelta(seconds=49)
    later = T0 + dt.timedelta(seconds=61)
    assert written[1:] == [
        Refusal("10.0.0.9", "unknown signing key", first_held, last, 49),
        Refusal("10.0.0.7", "expired", later, later, 1),
    ]


def test_reasons_and_addresses_are_apart_and_flush_loses_nothing() -> None:
    tally, written = _tally()
    for address in ("a", "b"):
        for reason in ("expired", "revoked", "expired"):
            tally.refused(address, reason, T0)
    tally.flush()
    assert sum(r.count for r in written) == 6
    per_key: dict[tuple[str | None, str], int] = {}
    for r in written:
        per_key[(r.address, r.reason)] = per_key.get((r.address, r.reason), 0) + r.count
    assert per_key == {
        ("a", "expired"): 2,
        ("a", "revoked"): 1,
        ("b", "expired"): 2,
        ("b", "revoked"): 1,
    }


def test_a_spray_of_addresses_stays_bounded() -> None:
    written: list[Refusal] = []
    tally = RefusalTally(written.extend, max_keys=10)
    for i in range(100):
        tally.refused(f"10.0.{i}.1", "expired", T0)
        tally.refused(f"10.0.{i}.1", "expired", T0)
    tally.flush()
    assert sum(r.count for r in written) == 200
    assert len(tally._windows) == 0


def test_a_flood_of_forged_tokens_over_http_is_few_entries(secure: dict[str, Any]) -> None:
    base = secure["base"]
    for _ in range(30):
        response = httpx.get(f"{base}/Patient", headers={"Authorization": "Bearer forged.x.y"})
        assert response.status_code == 401
    events = _refusals(secure)
    assert len(events) == 1  # the first at once; the rest are held for the window
    secure["refusals"].flush()
    events = _refusals(secure)
    assert len(events) == 2
    held = next(e for e in events if "period" in e)
    assert held["outcomeDesc"].endswith("29 times")
    assert held["agent"][0]["network"]["address"] == "127.0.0.1"


def _refusals(secure: dict[str, Any]) -> list[dict[str, Any]]:
    import orjson
    from sqlalchemy import select

    from gateway.store.schema import resources

    store = secure["services"].store
    store.catch_up_access_log()
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(resources.c.content).where(
                resources.c.res_type == "AuditEvent", resources.c.deleted.is_(False)
            )
        ).all()
    return [orjson.loads(r.content) for r in rows]


class _Clock:
    def __init__(self) -> None:
        self.moment = T0

    def now(self) -> dt.datetime:
        return self.moment


def test_unknown_key_ids_reload_the_ring_at_most_once_per_interval() -> None:
    clock = _Clock()
    reloads = []
    ring = KeyRing(tuple(new_signing_keys()))

    def reload() -> KeyRing:
        reloads.append(clock.now())
        return ring

    issuer = TokenIssuer(ring, "https://gw/oauth", clock, reload=reload)
    forged = _token_with_kid("made-up")
    for _ in range(100):
        with contextlib.suppress(InvalidToken):
            issuer.verify(forged, audience="https://gw/fhir")
    assert len(reloads) == 1
    clock.moment = T0 + dt.timedelta(seconds=11)
    with contextlib.suppress(InvalidToken):
        issuer.verify(forged, audience="https://gw/fhir")
    assert len(reloads) == 2


def _token_with_kid(kid: str) -> str:
    import base64
    import json

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'ES256', 'kid': kid, 'typ': 'JWT'})}.{part({'sub': 'x'})}.c2ln"
