"""The group commit of access-log entries: batches, waits, failures, with real threads."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from gateway.interactions.auditlog import GroupCommit


def _event(n: int) -> dict[str, Any]:
    return {"resourceType": "AuditEvent", "n": n}


def test_entries_queued_during_a_write_go_in_one_next_write() -> None:
    writes: list[list[int]] = []
    first_started, release = threading.Event(), threading.Event()

    def write(events: list[dict[str, Any]]) -> None:
        if not writes:
            first_started.set()
            release.wait(10)
        writes.append([e["n"] for e in events])

    log = GroupCommit(write)
    threads = [threading.Thread(target=log.submit, args=([_event(0)],))]
    threads[0].start()
    assert first_started.wait(10)
    waiting = [threading.Thread(target=log.submit, args=([_event(n)],)) for n in range(1, 6)]
    for thread in waiting:
        thread.start()
    while log.waiting < 5:  # until all five are queued behind the first write
        pass
    release.set()
    for thread in threads + waiting:
        thread.join(10)
    assert writes[0] == [0]
    assert sorted(writes[1]) == [1, 2, 3, 4, 5] and len(writes) == 2


def test_a_failed_write_fails_every_request_of_its_batch_and_not_later_ones() -> None:
    calls: list[int] = []

    def write(events: list[dict[str, Any]]) -> None:
        calls.append(len(events))
        if len(calls) == 1:
            raise RuntimeError("disk full")

    log = GroupCommit(write)
    with pytest.raises(RuntimeError, match="disk full"):
        log.submit([_event(1)])
    log.submit([_event(2)])  # the log writes again
    assert calls == [1, 1]


def test_batches_respect_their_size_limit() -> None:
    sizes: list[int] = []
    log = GroupCommit(lambda events: sizes.append(len(events)), max_events=3)
    log.submit([_event(n) for n in range(5)])  # one request larger than a batch still goes
    assert sizes == [5]
