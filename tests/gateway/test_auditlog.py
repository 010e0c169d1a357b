"""The group commit of access-log entries: batches, waits, failures, with real threads."""

from __future__ import annotations

import asyncio
import threading
import time
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


def test_a_request_on_the_event_loop_waits_without_a_thread_and_leads_when_alone() -> None:
    written: list[list[int]] = []
    writers: list[str] = []

    def write(events: list[dict[str, Any]]) -> None:
        writers.append(threading.current_thread().name)
        written.append([e["n"] for e in events])

    log = GroupCommit(write)

    async def main() -> None:
        await log.submit_async([_event(1)])  # alone: a pool thread leads
        assert written == [[1]]
        await asyncio.gather(*(log.submit_async([_event(n)]) for n in range(2, 7)))

    asyncio.run(main())
    assert sorted(n for batch in written for n in batch) == [1, 2, 3, 4, 5, 6]
    assert threading.main_thread().name not in writers  # the loop's thread never wrote


def test_a_request_on_the_event_loop_joins_the_write_in_progress_and_sees_its_failure() -> None:
    calls: list[list[int]] = []
    first_started, release = threading.Event(), threading.Event()

    def write(events: list[dict[str, Any]]) -> None:
        calls.append([e["n"] for e in events])
        if len(calls) == 1:
            first_started.set()
            release.wait(10)
        if len(calls) == 2:
            raise RuntimeError("disk full")

    log = GroupCommit(write)
    leader = threading.Thread(target=log.submit, args=([_event(0)],))
    leader.start()
    assert first_started.wait(10)

    async def main() -> None:
        waiting = asyncio.ensure_future(log.submit_async([_event(1)]))
        while log.waiting < 1:  # queued behind the write in progress
            await asyncio.sleep(0)
        release.set()
        with pytest.raises(RuntimeError, match="disk full"):
            await waiting
        await log.submit_async([_event(2)])  # the log writes again

    asyncio.run(main())
    leader.join(10)
    assert calls == [[0], [1], [2]]


def test_a_request_that_went_away_does_not_disturb_the_writer() -> None:
    release = threading.Event()
    written: list[int] = []

    def write(events: list[dict[str, Any]]) -> None:
        release.wait(10)
        written.extend(e["n"] for e in events)

    log = GroupCommit(write)

    async def main() -> None:
        gone = asyncio.ensure_future(log.submit_async([_event(1)]))
        await asyncio.sleep(0.05)
        gone.cancel()  # the client disconnected; its entry is still written
        release.set()
        await log.submit_async([_event(2)])

    asyncio.run(main())
    assert written == [1, 2]


def test_with_several_writers_batches_are_written_at_once_and_none_is_lost() -> None:
    """PostgreSQL's setting: a second batch is written while the first still waits."""
    both_writing = threading.Barrier(2, timeout=10)
    written: list[int] = []
    lock = threading.Lock()

    def write(events: list[dict[str, Any]]) -> None:
        if len(events) == 1 and events[0]["n"] in (0, 1):
            both_writing.wait()  # fails (BrokenBarrierError) unless two writes overlap
        with lock:
            written.extend(e["n"] for e in events)

    log = GroupCommit(write, writers=2)
    threads = [threading.Thread(target=log.submit, args=([_event(n)],)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    log.submit([_event(2)])
    assert sorted(written) == [0, 1, 2]


def test_on_the_loop_requests_of_one_turn_are_committed_by_the_loop_in_one_batch() -> None:
    """SQLite's setting (ADR 0026): with no other writer, the loop commits itself."""
    now: list[tuple[str, list[int]]] = []

    def write_now(events: list[dict[str, Any]]) -> bool:
        now.append((threading.current_thread().name, [e["n"] for e in events]))
        return True

    def write(events: list[dict[str, Any]]) -> None:
        raise AssertionError("no thread writes while the loop can")

    log = GroupCommit(write, write_now=write_now)

    async def main() -> None:
        await asyncio.gather(*(log.submit_async([_event(n)]) for n in range(5)))
        await log.submit_async([_event(5)])

    asyncio.run(main())
    assert now == [("MainThread", [0, 1, 2, 3, 4]), ("MainThread", [5])]


def test_on_the_loop_a_held_back_batch_is_tried_again_there_with_what_came_meanwhile() -> None:
    """``write_now`` could not (the write lock held elsewhere, or the indexer behind): the
    batch goes back first in line and the loop tries again a moment later, serving other
    requests meanwhile; what they submitted joins it, and no thread writes (ADR 0047)."""
    tried: list[tuple[str, list[int]]] = []

    def write_now(events: list[dict[str, Any]]) -> bool:
        tried.append((threading.current_thread().name, [e["n"] for e in events]))
        return len(tried) > 2

    def write(events: list[dict[str, Any]]) -> None:
        raise AssertionError("no thread writes while the loop is patient")

    log = GroupCommit(write, write_now=write_now)

    async def main() -> None:
        first = asyncio.gather(*(log.submit_async([_event(n)]) for n in range(3)))
        while len(tried) < 1:  # held back once: the next request arrives meanwhile
            await asyncio.sleep(0)
        await asyncio.gather(first, log.submit_async([_event(3)]))

    asyncio.run(main())
    assert tried == [
        ("MainThread", [0, 1, 2]),
        ("MainThread", [0, 1, 2, 3]),
        ("MainThread", [0, 1, 2, 3]),
    ]
    assert log.writing == 0 and log.waiting == 0


def test_on_the_loop_a_batch_held_back_past_its_patience_goes_to_a_thread_in_order() -> None:
    """A batch the loop could not commit for ``patience`` seconds is written by a pool
    thread, which waits for the lock; the next request tries the loop again."""
    tried: list[list[int]] = []
    written: list[tuple[str, list[int]]] = []

    def write_now(events: list[dict[str, Any]]) -> bool:
        tried.append([e["n"] for e in events])
        return tried[-1] == [3]

    def write(events: list[dict[str, Any]]) -> None:
        written.append((threading.current_thread().name, [e["n"] for e in events]))

    log = GroupCommit(write, write_now=write_now, patience=0.05)

    async def main() -> None:
        started = time.monotonic()
        await asyncio.gather(*(log.submit_async([_event(n)]) for n in range(3)))
        assert time.monotonic() - started >= 0.05
        while log.writing:  # until the thread has given the lead up
            await asyncio.sleep(0.001)
        await log.submit_async([_event(3)])

    asyncio.run(main())
    assert len(tried) > 2  # tried again on the loop, at growing intervals, then given up
    assert all(batch == [0, 1, 2] for batch in tried[:-1]) and tried[-1] == [3]
    assert [batch for _, batch in written] == [[0, 1, 2]]
    assert written[0][0] != "MainThread"


@pytest.mark.parametrize("awaited", [False, True], ids=["write_now", "write_async"])
def test_on_the_loop_a_failed_commit_fails_its_batch_and_the_log_goes_on(awaited: bool) -> None:
    """SQLite's commit on the loop (``write_now``) and PostgreSQL's awaited one
    (``write_async``, ADR 0039) alike: a failure fails its batch only."""
    calls: list[list[int]] = []

    def write_now(events: list[dict[str, Any]]) -> bool:
        calls.append([e["n"] for e in events])
        if len(calls) == 1:
            raise RuntimeError("disk full")
        return True

    async def write_async(events: list[dict[str, Any]]) -> None:
        write_now(events)

    log = (
        GroupCommit(lambda events: None, write_async=write_async)
        if awaited
        else GroupCommit(lambda events: None, write_now=write_now)
    )

    async def main() -> None:
        results = await asyncio.gather(
            *(log.submit_async([_event(n)]) for n in range(2)), return_exceptions=True
        )
        assert [type(r).__name__ for r in results] == ["RuntimeError", "RuntimeError"]
        await log.submit_async([_event(2)])

    asyncio.run(main())
    assert calls == [[0, 1], [2]]


def test_a_thread_queued_behind_the_loop_is_written_and_woken() -> None:
    """A request on a pool thread (``submit``) that queues while the loop leads is taken
    into the loop's next batch and woken when it is committed."""
    now: list[list[int]] = []
    loop_leads, thread_queued = threading.Event(), threading.Event()

    def write_now(events: list[dict[str, Any]]) -> bool:
        now.append([e["n"] for e in events])
        if len(now) == 1:
            loop_leads.set()
            assert thread_queued.wait(10)
        return True

    log = GroupCommit(lambda events: None, write_now=write_now)
    worker = threading.Thread(target=log.submit, args=([_event(1)],))

    def queue_behind() -> None:
        assert loop_leads.wait(10)
        worker.start()
        while log.waiting < 1:
            pass
        thread_queued.set()

    helper = threading.Thread(target=queue_behind)
    helper.start()

    async def main() -> None:
        await log.submit_async([_event(0)])

    asyncio.run(main())
    helper.join(10)
    worker.join(10)
    assert not worker.is_alive()
    assert now == [[0], [1]]


def test_on_the_loop_batches_are_awaited_and_what_arrives_meanwhile_goes_next() -> None:
    """PostgreSQL's setting (ADR 0039): the loop awaits the database for a batch, serves
    others meanwhile, and their entries make the next batch; no thread writes."""
    written: list[tuple[str, list[int]]] = []
    calls: list[int] = []
    started = asyncio.Event()
    release = asyncio.Event()

    async def write_async(events: list[dict[str, Any]]) -> None:
        calls.append(len(events))
        if len(calls) == 1:
            started.set()
            await release.wait()
        written.append((threading.current_thread().name, [e["n"] for e in events]))

    def write(events: list[dict[str, Any]]) -> None:
        raise AssertionError("no thread writes while the loop can")

    log = GroupCommit(write, writers=4, write_async=write_async)

    async def main() -> None:
        first = asyncio.ensure_future(log.submit_async([_event(0)]))
        await started.wait()
        later = [asyncio.ensure_future(log.submit_async([_event(n)])) for n in (1, 2, 3)]
        while len(calls) < 2:  # a second lead took what queued meanwhile, and wrote it
            await asyncio.sleep(0.001)
        assert written == [("MainThread", [1, 2, 3])]
        release.set()
        await asyncio.gather(first, *later)
        assert log.writing == 0

    asyncio.run(main())
    assert written == [("MainThread", [1, 2, 3]), ("MainThread", [0])]


def test_a_cancelled_lead_on_the_loop_hands_what_waits_to_a_thread() -> None:
    """The loop stops while a batch is awaited: that batch's requests get the cancellation,
    and what queued behind it is written by a pool thread, not left waiting."""
    threads: list[list[int]] = []
    started = asyncio.Event()

    async def write_async(events: list[dict[str, Any]]) -> None:
        started.set()
        await asyncio.sleep(10)

    def write(events: list[dict[str, Any]]) -> None:
        threads.append([e["n"] for e in events])

    log = GroupCommit(write, write_async=write_async)
    behind = threading.Thread(target=log.submit, args=([_event(1)],))

    async def main() -> None:
        first = asyncio.ensure_future(log.submit_async([_event(0)]))
        await started.wait()
        behind.start()
        while log.waiting < 1:
            await asyncio.sleep(0.001)
        (lead,) = log._leads
        lead.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(main())
    behind.join(10)
    assert not behind.is_alive()
    assert threads == [[1]]
