"""Memoisation bounded by what the agent's recent passes used, not by a count.

The validators and renderers that see every port's MAC, addresses, device and rule text
were memoised with ``functools.lru_cache`` of a few thousand entries each. Under churn
every new port brings new keys, so those caches grew for as long as they were not full
(hours at 2 changes a second; a 30-minute soak at 1,000 ports read it as a memory trend),
and at a few thousand entries each they held megabytes of values no port used any more.

A :class:`PassMemo` keeps two generations: the keys used since the current pass began, and
those of the pass before. :func:`new_pass` (called by the agent after every pass) drops the
older one, so what is held is what the last two passes used: the host's working set,
whatever the churn. A key found only in the older generation is moved, not recomputed.
Outside the agent (tools, tests) nothing starts passes, so a generation is also started
when the current one reaches :data:`MAX_ENTRIES`.

Exceptions are not memoised: an invalid value is checked (and refused) every time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import Generic, ParamSpec, TypeVar, cast

P = ParamSpec("P")
R = TypeVar("R")

#: Entries of one generation at most (a pass that sees more starts a new one).
MAX_ENTRIES = 65536

_ROTATIONS: list[Callable[[], None]] = []
_MISSING = object()


class PassMemo(Generic[P, R]):
    """``fn`` memoised on its positional arguments for the current and the last pass."""

    def __init__(self, fn: Callable[P, R]) -> None:
        self._fn = fn
        self._current: dict[Hashable, R] = {}
        self._previous: dict[Hashable, R] = {}
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if kwargs:  # not memoised: every caller passes positional arguments
            return self._fn(*args, **kwargs)
        try:
            return self._current[args]
        except KeyError:
            pass
        found = self._previous.get(args, _MISSING)
        value = self._fn(*args, **kwargs) if found is _MISSING else cast(R, found)
        if len(self._current) >= MAX_ENTRIES:
            self.rotate()
        self._current[args] = value
        return value

    def rotate(self) -> None:
        """Start a new generation; the one before the current is dropped."""
        self._previous, self._current = self._current, {}

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)


def pass_memo(fn: Callable[P, R]) -> PassMemo[P, R]:
    """Decorator: memoise ``fn`` (hashable positional arguments) until two passes after
    its last use."""
    memo = PassMemo(fn)
    _ROTATIONS.append(memo.rotate)
    return memo


def new_pass() -> None:
    """The agent finished a pass: every memo starts a new generation."""
    for rotate in _ROTATIONS:
        rotate()
