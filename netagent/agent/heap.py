"""Handing the heap pages a pass freed back to the kernel.

A pass builds and drops large transient structures (the desired state parsed from the
wire or the state file, rendered iptables chains, plans). glibc returns freed memory of
its main heap to the kernel only from the top of the heap, so the pages of a pass's
garbage that lie below live allocations stay resident. In a 1,000-port soak under churn
``malloc_trim(0)`` gave 8 MB back the first time and 1 to 2.5 MB at later ones
(doc/reliability.md). It releases the free pages anywhere in the heap (``madvise``) and
takes about a millisecond here, so it runs after a pass at most once per
:data:`INTERVAL`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

LOG = logging.getLogger(__name__)

#: Seconds between two trims at the least.
INTERVAL = 60.0


def _load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    result: Callable[[int], int] = trim
    return result


class HeapTrimmer:
    """Calls ``malloc_trim(0)`` after a pass, at most once per ``interval`` seconds."""

    def __init__(
        self,
        clock: Callable[[], float],
        interval: float = INTERVAL,
        trim: Callable[[int], int] | None = None,
    ) -> None:
        self._clock = clock
        self._interval = interval
        self._trim = trim if trim is not None else _load_malloc_trim()
        self._last: float | None = None
        self.trims = 0

    def after_pass(self) -> None:
        """Trim if the C library can and the last trim is ``interval`` seconds old."""
        if self._trim is None:
            return
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            return
        self._last = now
        self._trim(0)
        self.trims += 1
