"""The dirty set: what the reconciler's worker must look at next.

Producers (the source callback, the device monitor, signal handlers, the retry timer) only
*mark*; the one worker *takes* everything marked so far in one go. Marks that arrive while
the worker is busy accumulate and are taken together by its next pass, so a burst of
changes to one resource costs one pass, not one per change.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterable
from typing import Literal

Kind = Literal["network", "port", "router"]
#: A resource key: kind and id.
Key = tuple[Kind, str]


@dataclasses.dataclass(frozen=True)
class Batch:
    """What one worker pass has to do.

    :param keys: resources to re-evaluate.
    :param full: re-send every wanted resource to the drivers, then sweep.
    :param reasons: why a full resync was requested (for the log).
    """

    keys: frozenset[Key]
    full: bool
    reasons: tuple[str, ...] = ()


class DirtySet:
    """Thread-safe accumulator of dirty keys and full-resync requests."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._keys: set[Key] = set()
        self._full_reasons: list[str] = []
        self._wakeup = False
        self._stopped = False

    def mark(self, keys: Iterable[Key]) -> None:
        """Mark resources dirty and wake the worker."""
        with self._cond:
            before = len(self._keys)
            self._keys.update(keys)
            if len(self._keys) != before:
                self._cond.notify_all()

    def request_full(self, reason: str) -> None:
        """Ask for a full resync (coalesced with any other pending request)."""
        with self._cond:
            self._full_reasons.append(reason)
            self._cond.notify_all()

    def wake(self) -> None:
        """Wake the worker without marking anything (e.g. a new snapshot arrived)."""
        with self._cond:
            self._wakeup = True
            self._cond.notify_all()

    def stop(self) -> None:
        """Make every current and future :meth:`take` return ``None``."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        with self._cond:
            return self._stopped

    def pending(self) -> bool:
        """Whether anything is marked and not yet taken."""
        with self._cond:
            return bool(self._keys or self._full_reasons or self._wakeup)

    def take(self, timeout: float | None, settle: float = 0.0) -> Batch | None:
        """Wait for marks, then return and clear everything marked.

        :param timeout: seconds to wait for a first mark; on expiry an empty batch is
            returned (the caller checks its timers). ``None`` waits forever.
        :param settle: once something is marked, keep collecting for this many seconds so
            that a burst of changes is handled by one pass.
        :returns: the batch, or ``None`` after :meth:`stop`.
        """
        with self._cond:
            if not self._has_work():
                self._cond.wait_for(lambda: self._has_work() or self._stopped, timeout)
            if self._stopped:
                return None
            if settle > 0 and self._has_work():
                deadline = time.monotonic() + settle
                while not self._stopped and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                if self._stopped:
                    return None
            batch = Batch(
                frozenset(self._keys), bool(self._full_reasons), tuple(self._full_reasons)
            )
            self._keys.clear()
            self._full_reasons.clear()
            self._wakeup = False
            return batch

    def _has_work(self) -> bool:
        return bool(self._keys or self._full_reasons or self._wakeup)
