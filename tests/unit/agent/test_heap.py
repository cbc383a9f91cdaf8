"""The heap upkeep: when it trims and settles, that glibc's malloc_trim really returns
pages, and that settling frees what the frozen generation held."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from collections.abc import Iterator

import pytest

from netagent.agent import heap


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_trims_after_the_first_pass_then_at_most_once_per_interval() -> None:
    clock = FakeClock()
    calls: list[int] = []
    trimmer = heap.HeapUpkeep(clock, interval=60.0, trim=lambda pad: calls.append(pad) or 1)
    trimmer.after_pass()
    clock.now += 59.0
    trimmer.after_pass()
    assert calls == [0]
    clock.now += 1.0
    trimmer.after_pass()
    assert calls == [0, 0] and trimmer.trims == 2


def test_settles_after_a_full_pass_at_most_once_per_interval() -> None:
    clock = FakeClock()
    settled: list[float] = []
    upkeep = heap.HeapUpkeep(
        clock, interval=60.0, trim=lambda pad: 1, settle=lambda: settled.append(clock.now) or 7
    )
    upkeep.after_pass()  # an incremental pass never settles
    upkeep.after_pass(full=True)
    clock.now += 30.0
    upkeep.after_pass(full=True)
    assert settled == [100.0]
    clock.now += 30.0
    upkeep.after_pass(full=True)
    assert settled == [100.0, 160.0] and upkeep.settlings == 2


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # leave this test process's collector as it was


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_settling_freezes_the_living_and_frees_what_died_since(unfrozen: None) -> None:
    alive = Cycle()
    ref = weakref.ref(alive)
    assert heap.settle_long_lived() > 0
    assert gc.is_tracked(alive) and ref() is alive
    del alive
    gc.collect()  # a frozen cycle is beyond the collector's reach ...
    assert ref() is not None
    heap.settle_long_lived()  # ... until the next settling
    assert ref() is None


def test_without_malloc_trim_a_pass_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_load_malloc_trim", lambda: None)
    trimmer = heap.HeapUpkeep(FakeClock())
    trimmer.after_pass()
    assert trimmer.trims == 0


#: Run in a fresh interpreter: in a heap other tests have used, the small allocations that
#: keep the freed blocks from the top of the heap come from old holes instead.
_FRAGMENT = """
import ctypes, sys
from netagent.agent import heap

def rss_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
chunk = 64 * 1024  # below the mmap threshold: from the heap
blocks, pins = [], []
for _ in range(1024):  # a live allocation after each block: the freed ones are holes
    blocks.append(libc.malloc(chunk))
    ctypes.memset(blocks[-1], 1, chunk)
    pins.append(libc.malloc(64))
for block in blocks:
    libc.free(block)
freed_but_resident = rss_kib()
if sys.argv[1] == "trim":
    heap._load_malloc_trim()(0)
print(freed_but_resident - rss_kib())
"""


def _returned_kib(trim: bool) -> int:
    argv = [sys.executable, "-c", _FRAGMENT, "trim" if trim else "no-trim"]
    return int(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)


def test_malloc_trim_returns_freed_pages_between_live_allocations() -> None:
    """The case the trimmer is for: 64 MiB freed between live allocations stays resident
    (the control) until malloc_trim hands it back."""
    if heap._load_malloc_trim() is None:
        pytest.skip("the C library has no malloc_trim")
    assert _returned_kib(trim=False) < 1024
    assert _returned_kib(trim=True) > 32 * 1024
