"""The process's memory: settled before serving, given back after a large request.

What the gateway builds at its start (the FHIR definitions, the search plans, the compiled
statements) lives as long as the process. CPython's cycle collector would otherwise walk
all of it at every full collection (about 140-190 ms on the benchmark machine, stalling
every request in flight); :func:`settle_heap` moves it out of the collector's sight once,
when the app starts serving, so a full collection walks only what requests made.

Parsing a body of megabytes makes many small objects; CPython frees them, but the C
allocator keeps the pages for the process, so its resident size stays at the peak of the
largest request it ever saw. After a large request the gateway asks glibc to return free
pages to the system (``malloc_trim``); elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
from collections.abc import Callable

__all__ = ["release_memory", "settle_heap"]


@functools.cache
def _trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


def release_memory() -> None:
    """Return the allocator's free pages to the system, where the platform can."""
    trim = _trim()
    if trim is not None:
        trim(0)


def settle_heap(thresholds: tuple[int, int, int] | None = None) -> None:
    """Collect what startup left behind, then keep everything alive now out of the cycle
    collector's later passes (``gc.freeze``): it is the process's for its lifetime.

    ``thresholds``: the collector's thresholds from now on (``gc.set_threshold``; CPython's
    are 700, 10, 10). The access log's indexer makes tens of thousands of objects a batch,
    each freed by its count when the batch is stored: collecting them every 700 cost it
    4-9 % of its time (ADR 0052)."""
    gc.collect()
    gc.freeze()
    if thresholds is not None:
        gc.set_threshold(*thresholds)
