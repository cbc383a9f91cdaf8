"""The walk through chains of rules that iptables and ebtables share.

Rules in order; the first that matches acts: a verdict ends the walk, a call (``-j``)
continues in another chain and comes back after it, a goto (``-g``) continues there and
comes back to the caller's caller, a return (or the end of a user chain) goes back, and
the end (or a return) of the built-in chain applies its policy. A non-terminal target
(``MARK``) is the caller's business: it says :data:`CONTINUE`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

R = TypeVar("R")
#: Loop guard: netagent's chains are at most four calls deep.
MAX_STEPS = 100_000


class UnknownChainError(Exception):
    """A jump names a chain the walk was not given (or the walk does not end)."""


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A terminal target: ``ACCEPT`` or ``DROP``."""

    name: str


@dataclasses.dataclass(frozen=True)
class Call:
    """Continue in ``chain``; ``goto`` returns to the caller's caller."""

    chain: str
    goto: bool = False


RETURN = "RETURN"
CONTINUE = "CONTINUE"
Action = Verdict | Call | str


@dataclasses.dataclass(frozen=True)
class Walked(Generic[R]):
    """The verdict and every rule that matched: (chain, 1-based position, rule)."""

    verdict: str
    matched: tuple[tuple[str, int, R], ...]


def walk(
    chains: Mapping[str, Sequence[R]],
    start: str,
    matches: Callable[[R], bool],
    act: Callable[[R], Action],
    policy: str = "ACCEPT",
) -> Walked[R]:
    """Run one packet through ``chains`` from the built-in chain ``start``.

    :param matches: whether a rule matches the packet (may raise for what it cannot
        evaluate)
    :param act: what a matching rule's target does
    :raises UnknownChainError: a jump to a chain not in ``chains``, or no end
    """
    stack: list[tuple[str, int]] = []
    chain, index = start, 0
    matched: list[tuple[str, int, R]] = []
    for _ in range(MAX_STEPS):
        rules = chains.get(chain)
        if rules is None:
            raise UnknownChainError(f"chain {chain} is not known")
        if index >= len(rules):
            if not stack:
                return Walked(policy, tuple(matched))
            chain, index = stack.pop()
            continue
        rule = rules[index]
        if not matches(rule):
            index += 1
            continue
        matched.append((chain, index + 1, rule))
        action = act(rule)
        if isinstance(action, Verdict):
            return Walked(action.name, tuple(matched))
        if isinstance(action, Call):
            if not action.goto:
                stack.append((chain, index + 1))
            chain, index = action.chain, 0
        elif action == RETURN:
            if not stack:
                return Walked(policy, tuple(matched))
            chain, index = stack.pop()
        else:
            index += 1
    raise UnknownChainError("the walk did not end")
