"""Giving memory back after a large request.

Parsing a body of megabytes makes many small objects; CPython frees them, but the C
allocator keeps the pages for the process, so its resident size stays at the peak of the
largest request it ever saw. After a large request the gateway asks glibc to return free
pages to the system (``malloc_trim``); elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

__all__ = ["release_memory"]


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
