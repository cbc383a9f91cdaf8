"""The seam between a desired-state source and the agent core.

A source (the state file, later the Neutron RPC client) owns how desired state is learnt;
the core owns what is done with it. The source hands the core complete snapshots: the core
diffs consecutive snapshots itself, so a source never has to say what changed, and a
notification that arrives twice or out of order cannot make the core act on stale data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from netagent.model import DesiredState


@dataclasses.dataclass(frozen=True)
class SourceUpdate:
    """One complete desired-state snapshot from a source.

    :param state: every valid object the source knows, for all hosts.
    :param errors: one line per object the source had to skip or keep at its previous
        version (for the status tool; the source has already logged them).
    :param origin: where the snapshot came from, for logs (a path, ``"neutron"``).
    :param file_error: why the source's newest input was refused as a whole (``state``
        is then the last good one, kept); None when the newest input was used.
    """

    state: DesiredState
    errors: tuple[str, ...] = ()
    origin: str = ""
    file_error: str | None = None


#: What a source calls with each new snapshot. Must return quickly: it only records.
UpdateCallback = Callable[[SourceUpdate], None]


class Source(Protocol):
    """A producer of desired-state snapshots.

    The first call of the callback must carry the *complete* desired picture: the core
    does not touch the host before it has received one.
    """

    def start(self, callback: UpdateCallback) -> None:
        """Begin delivering snapshots to ``callback`` from the source's own thread.

        :param callback: called with every new snapshot; never called concurrently.
        """

    def stop(self) -> None:
        """Stop delivering snapshots and release resources. Idempotent."""

    def reread(self, reason: str) -> None:
        """Fetch the whole desired state again soon, even if nothing seems changed
        (SIGHUP). Safe to call from a signal handler: it only sets a flag."""
