"""The heap between passes: pages a pass freed go back to the kernel, and the objects
that live on are examined by Python's collector once per full pass, not inside passes.

*Trimming.*
A pass builds and drops large transient structures (the desired state parsed from the
wire or the state file, rendered iptables chains, plans). glibc returns freed memory of
its main heap to the kernel only from the top of the heap, so the pages of a pass's
garbage that lie below live allocations stay resident. In a 1,000-port soak under churn
``malloc_trim(0)`` gave 8 MB back the first time and 1 to 2.5 MB at later ones
(doc/reliability.md). It releases the free pages anywhere in the heap (``madvise``) and
takes about a millisecond here, so it runs after a pass at most once per
:data:`INTERVAL`.

*Settling* (:func:`settle_long_lived`). Python's cyclic collector walks every object it
tracks in a full (oldest-generation) collection, which it starts by itself whenever enough
new objects have survived: with the Open vSwitch replica of 1,000 ports that walk took
30-36 ms here, and it fell inside a pass, in 2 of 9 runs of a 500-port plug
(``tools/bench/ovs.py``). After a full pass the agent collects once itself and moves what
is alive to the permanent generation (``gc.freeze``), which the automatic collections skip;
the next settling unfreezes and collects everything again first, so garbage among those
objects waits at most until then.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
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


def settle_long_lived() -> int:
    """Collect every generation (the frozen objects too), then freeze what is alive.

    :returns: how many objects are frozen now.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class HeapUpkeep:
    """After a pass: settles the heap after a full pass and calls ``malloc_trim(0)``,
    each at most once per ``interval`` seconds."""

    def __init__(
        self,
        clock: Callable[[], float],
        interval: float = INTERVAL,
        trim: Callable[[int], int] | None = None,
        settle: Callable[[], int] = settle_long_lived,
    ) -> None:
        self._clock = clock
        self._interval = interval
        self._trim = trim if trim is not None else _load_malloc_trim()
        self._settle = settle
        self._last: float | None = None
        self._settled: float | None = None
        self.trims = 0
        self.settlings = 0

    def after_pass(self, full: bool = False) -> None:
        """Settle after a full pass (first, so the trim returns what it freed), and trim
        if the C library can; each if its last run is ``interval`` seconds old."""
        now = self._clock()
        if full and (self._settled is None or now - self._settled >= self._interval):
            self._settled = now
            frozen = self._settle()
            self.settlings += 1
            LOG.debug("Heap settled: %d objects frozen", frozen)
        if self._trim is None:
            return
        if self._last is not None and now - self._last < self._interval:
            return
        self._last = now
        self._trim(0)
        self.trims += 1
