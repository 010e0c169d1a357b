"""The threads a request's synchronous work runs on, reached through the event loop's own
executor hop (ADR 0033).

anyio's ``to_thread.run_sync`` (behind Starlette's ``run_in_threadpool``) enters a cancel
scope and a capacity limiter, reads run variables, starts its own worker threads and
reports back through them: on PostgreSQL, where every read of the dossier goes to a
thread, that machinery held the interpreter for 0.19 ms of each consent-on read, more than
the event loop spent parsing the request and writing the answer together. A
:class:`Threads` is a fixed pool of threads and one ``run_in_executor`` per call: at most
``size`` calls run at once, the others wait in its queue in the order they came.

A call runs in a copy of the caller's context variables, as with anyio. A caller that is
cancelled (a server that stops) no longer waits, but a call that started runs to its end:
what it answered and logged stays answered and logged. :meth:`close` waits for the calls
that run or wait.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["Threads"]

T = TypeVar("T")


class Threads:
    def __init__(self, size: int, name: str) -> None:
        if size < 1:
            raise ValueError("a pool of threads needs one at least")
        self.size = size
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)

    async def run(self, call: Callable[[], T]) -> T:
        """``call()`` on one of the threads; its result, or what it raised."""
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(context.run, call))

    def close(self) -> None:
        """Wait for every call that runs or waits; the threads then end."""
        self._pool.shutdown(wait=True)
