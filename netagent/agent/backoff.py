"""Per-resource retry schedule with exponential backoff."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclasses.dataclass
class _Entry:
    failures: int
    due: float
    reason: str


class Backoff(Generic[K]):
    """Remembers failed keys and when each may be retried.

    The first retry of a key waits ``initial`` seconds, each further consecutive failure
    doubles the wait up to ``maximum``. A success forgets the key. Not thread-safe: the
    reconciler's worker thread is its only user.

    :param initial: seconds before the first retry.
    :param maximum: upper bound of the wait.
    :param clock: monotonic clock, replaceable in tests.
    """

    def __init__(
        self,
        initial: float = 1.0,
        maximum: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.initial = initial
        self.maximum = max(maximum, initial)
        self._clock = clock
        self._entries: dict[K, _Entry] = {}

    def failed(self, key: K, reason: str) -> int:
        """Record one more consecutive failure of ``key`` and schedule its retry.

        :returns: the number of consecutive failures of ``key`` so far.
        """
        entry = self._entries.get(key)
        failures = entry.failures + 1 if entry else 1
        delay = min(self.initial * 2 ** (failures - 1), self.maximum)
        self._entries[key] = _Entry(failures, self._clock() + delay, reason)
        return failures

    def succeeded(self, key: K) -> None:
        """Forget ``key``: its next failure starts from ``initial`` again."""
        self._entries.pop(key, None)

    def forget(self, keys: Iterable[K]) -> None:
        """Forget keys that are no longer wanted at all."""
        for key in keys:
            self._entries.pop(key, None)

    def due(self) -> set[K]:
        """Keys whose retry time has come (they stay recorded until they succeed)."""
        now = self._clock()
        return {key for key, entry in self._entries.items() if entry.due <= now}

    def next_due(self) -> float | None:
        """Clock value of the earliest scheduled retry, ``None`` when nothing waits."""
        return min((e.due for e in self._entries.values()), default=None)

    def failures(self, key: K) -> int:
        """Consecutive failures of ``key`` (0 when it is not failing)."""
        entry = self._entries.get(key)
        return entry.failures if entry else 0

    def reason(self, key: K) -> str | None:
        """Why ``key`` last failed, ``None`` when it is not failing."""
        entry = self._entries.get(key)
        return entry.reason if entry else None

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> set[K]:
        """Every key waiting for a retry."""
        return set(self._entries)
