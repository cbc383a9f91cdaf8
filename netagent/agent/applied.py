"""What the drivers last converged, per resource: the reconciler's memory of the host.

The reconciler compares the fingerprint of a resource's current plan with the one recorded
here; equal fingerprints mean the drivers already did exactly this, so an incremental pass
skips the resource. A full resync ignores the record (drivers re-check everything) and then
rewrites it. The record lives in memory only: after a restart it is empty, the first full
resync sends everything, and the idempotent drivers adopt what already exists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

P = TypeVar("P")


@dataclasses.dataclass(frozen=True)
class Entry(Generic[P]):
    """One applied resource.

    :param fingerprint: a value equal to the fingerprint of any identical plan.
    :param plan: the plan that was applied, kept to undo it later (e.g. unplug a port
        whose object is already gone from the desired state).
    """

    fingerprint: Hashable | object
    plan: P


class AppliedRecord(Generic[P]):
    """Applied entries of one stage (filtered ports, wired ports, networks, routers).

    Only the reconciler's worker thread writes it; readers in other threads use
    :meth:`ids`, which copies.
    """

    def __init__(self) -> None:
        self._entries: dict[str, Entry[P]] = {}

    def record(self, resource_id: str, fingerprint: object, plan: P) -> None:
        """Remember that ``plan`` converged for ``resource_id``."""
        self._entries[resource_id] = Entry(fingerprint, plan)

    def forget(self, resource_id: str) -> Entry[P] | None:
        """Drop a resource (removed, or in an unknown state after a failure)."""
        return self._entries.pop(resource_id, None)

    def matches(self, resource_id: str, fingerprint: object) -> bool:
        """Whether ``resource_id`` was applied with exactly this fingerprint."""
        entry = self._entries.get(resource_id)
        return entry is not None and entry.fingerprint == fingerprint

    def get(self, resource_id: str) -> Entry[P] | None:
        return self._entries.get(resource_id)

    def ids(self) -> set[str]:
        """Every recorded id (a copy)."""
        return set(self._entries)

    def __contains__(self, resource_id: object) -> bool:
        return resource_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))
