"""The threads the FHIR endpoint's interactions run on (ADR 0033): a fixed pool reached
through the event loop's executor, in the caller's context, at most ``size`` at once."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from gateway.http.threads import Threads

_WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def test_a_call_answers_or_raises_in_the_callers_context_on_another_thread() -> None:
    threads = Threads(2, "test")

    def seen() -> tuple[str, int]:
        return _WHO.get(), threading.get_ident()

    async def main() -> None:
        _WHO.set("anna")
        who, ident = await threads.run(seen)
        assert who == "anna" and ident != threading.get_ident()
        with pytest.raises(ZeroDivisionError):
            await threads.run(lambda: 1 // 0)

    try:
        asyncio.run(main())
    finally:
        threads.close()
    with pytest.raises(ValueError):
        Threads(0, "none")


def test_at_most_size_run_at_once_and_close_waits_for_a_call_its_caller_left() -> None:
    threads = Threads(2, "test")
    lock = threading.Lock()
    running = {"now": 0, "most": 0}
    finished: list[int] = []

    def work(n: int) -> int:
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        time.sleep(0.05)
        with lock:
            running["now"] -= 1
        finished.append(n)
        return n

    async def main() -> None:
        results = await asyncio.gather(*(threads.run(lambda n=n: work(n)) for n in range(6)))
        assert sorted(results) == list(range(6))
        left = asyncio.ensure_future(threads.run(lambda: work(99)))
        await asyncio.sleep(0.01)  # it started on a thread
        left.cancel()  # its caller stops waiting ...

    asyncio.run(main())
    threads.close()  # ... and the call that started runs to its end before close returns
    assert running["most"] == 2
    assert 99 in finished
