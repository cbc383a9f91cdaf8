"""Flows as values, netagent's cookies, and the per-bridge table of what is installed.

*How.* Every flow netagent writes carries a cookie made of :data:`COOKIE_PREFIX` (the top
24 bits: whose flow it is) and 40 bits of a hash of the flow's text (which flow it is).
The set of cookies on a bridge therefore says exactly which of netagent's flows are
installed, without parsing ovs-ofctl's output back into matches and actions:

* flows to add are the wanted cookies not installed (a changed flow has a new cookie; the
  add replaces the old flow with the same match and priority in place);
* flows to delete are installed cookies nobody wants, deleted by exact cookie;
* both go to ovs-vswitchd as one bundle, additions first, so no packet ever sees a table
  without the new flows.

*Why.* An agent restart reads the installed cookies once (adoption) and, with nothing
changed, sends nothing: no flow is modified, no counter reset. Flows of others (other
cookies) are never read or touched.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import operator
from collections.abc import Iterable, Sequence

from netagent.privileged import openflow
from netagent.privileged.openflow import FlowStats, OpenFlowError

__all__ = [
    "COOKIE_MASK",
    "COOKIE_PREFIX",
    "Flow",
    "FlowStats",
    "FlowTable",
    "OpenFlowError",
    "StagedSync",
    "SyncResult",
]

LOG = logging.getLogger(__name__)

#: The top 24 bits of every netagent cookie ("NaA").
COOKIE_PREFIX = 0x4E6141 << 40
COOKIE_MASK = 0xFFFFFF << 40
_HASH_BITS = 40


@dataclasses.dataclass(frozen=True, order=True)
class Flow:
    """One OpenFlow rule in ovs-ofctl syntax (``match`` may be empty)."""

    table: int
    priority: int
    match: str
    actions: str

    @property
    def key(self) -> tuple[int, int, str]:
        """What OpenFlow identifies a rule by (two wanted flows must never share it)."""
        return (self.table, self.priority, self.match)

    @functools.cached_property
    def cookie(self) -> int:
        digest = hashlib.sha256(str(self).encode()).digest()
        return COOKIE_PREFIX | (int.from_bytes(digest[:8], "big") & ((1 << _HASH_BITS) - 1))

    def __str__(self) -> str:
        match = f",{self.match}" if self.match else ""
        return f"table={self.table},priority={self.priority}{match},actions={self.actions}"

    def line(self) -> str:
        """The ``add-flows`` line of this flow, with its cookie."""
        return f"cookie=0x{self.cookie:x},{self}"


#: Flows in their dataclass order, compared as one tuple each (the generated ``__lt__``
#: makes two tuples per comparison: 500 flows took a millisecond)
_ORDER = operator.attrgetter("table", "priority", "match", "actions")


@dataclasses.dataclass(frozen=True)
class SyncResult:
    added: int
    deleted: int


class FlowTable:
    """netagent's flows on one bridge: what is installed, and the bundle that fixes it.

    :param target: the bridge's OpenFlow management socket (``unix:.../<br>.mgmt``).
    """

    def __init__(self, bridge: str, target: str) -> None:
        self.bridge = bridge
        self.target = target
        #: cookies installed (None: unknown, read on the next sync)
        self._installed: set[int] | None = None
        #: cookies this process installed and still wants or wanted
        self._ours: set[int] = set()

    def forget(self) -> None:
        """The installed flows are unknown again (e.g. ovs-vswitchd restarted)."""
        self._installed = None

    def installed(self) -> set[int]:
        """The netagent cookies on the bridge (read once, then tracked)."""
        if self._installed is None:
            self._installed = set(openflow.cookies(self.target, COOKIE_PREFIX, COOKIE_MASK))
        return set(self._installed)

    @staticmethod
    def missing(tables: Sequence[FlowTable], flow: Flow) -> list[FlowTable]:
        """The tables whose bridge does not hold ``flow`` now (asks ovs-vswitchd, ignores
        the record), all bridges asked at once.

        :raises OpenFlowError: a bridge could not be asked.
        """
        found = openflow.flow_stats_each(
            [table.target for table in tables], flow.cookie, (1 << 64) - 1, flow.table
        )
        return [table for table, flows in zip(tables, found, strict=True) if not flows]

    def stats(self, table: int) -> dict[int, FlowStats]:
        """netagent's flows in ``table`` as ovs-vswitchd has them now, by cookie (one
        flow-stats request; for the status).

        :raises OpenFlowError: the bridge cannot be reached.
        """
        found = openflow.flow_stats(self.target, COOKIE_PREFIX, COOKIE_MASK, table)
        return {flow.cookie: flow for flow in found}

    def sync(self, wanted: Iterable[Flow], sweep: bool) -> SyncResult:
        """Make the bridge hold ``wanted`` in one bundle.

        :param sweep: also delete netagent flows found on the bridge that this process did
            not install (an earlier run's); without it only flows this process installed
            and no longer wants are deleted (a partial picture never removes the rest).
        :raises ValueError: two wanted flows share table, priority and match.
        :raises OpenFlowError: the bundle failed (nothing changed; the record is unknown).
        """
        return self.stage(wanted, sweep).commit()

    def stage(self, wanted: Iterable[Flow], sweep: bool) -> StagedSync:
        """:meth:`sync`'s bundle, checked by ovs-vswitchd but not applied until
        :meth:`StagedSync.commit`; nothing else may change this table meanwhile.

        :raises ValueError: two wanted flows share table, priority and match.
        :raises OpenFlowError: the bridge refused the bundle (nothing staged; the record
            is unknown).
        """
        return self.prepare(wanted, sweep).send()

    def prepare(self, wanted: Iterable[Flow], sweep: bool) -> StagedSync:
        """:meth:`stage` without sending: the bundle computed and encoded (the CPU part,
        in the caller's thread); :meth:`StagedSync.send` stages it.

        :raises ValueError: two wanted flows share table, priority and match.
        :raises OpenFlowError: the installed flows could not be read (the first time).
        """
        by_cookie: dict[int, Flow] = {}
        keys: dict[tuple[int, int, str], Flow] = {}
        for flow in wanted:
            other = keys.setdefault(flow.key, flow)
            if other != flow:
                raise ValueError(f"flows {other} and {flow} share their match")
            by_cookie[flow.cookie] = flow
        installed = self.installed()
        add = sorted((by_cookie[c] for c in by_cookie.keys() - installed), key=_ORDER)
        stale = installed - by_cookie.keys()
        if not sweep:
            stale &= self._ours
        lines = [flow.line() for flow in add]
        lines += [f"delete cookie=0x{cookie:x}/-1" for cookie in sorted(stale)]
        bundle = openflow.StagedBundle(self.target, lines)
        return StagedSync(self, bundle, add, stale, installed, set(by_cookie))

    def _committed(self, staged: StagedSync) -> None:
        if staged.add or staged.stale:
            LOG.info(
                "Bridge %s: %d flows added, %d removed in one bundle",
                self.bridge,
                len(staged.add),
                len(staged.stale),
            )
            for flow in staged.add:
                LOG.debug("Bridge %s: + %s", self.bridge, flow)
        self._installed = (staged.installed | staged.wanted) - staged.stale
        self._ours = (self._ours | staged.wanted) - staged.stale

    def remove_all(self, dry_run: bool = False) -> int:
        """Delete every netagent flow on the bridge (the cleanup tool).

        :returns: how many there were.
        """
        found = openflow.cookies(self.target, COOKIE_PREFIX, COOKIE_MASK)
        if found and not dry_run:
            openflow.bundle(self.target, [f"delete cookie=0x{COOKIE_PREFIX:x}/0x{COOKIE_MASK:x}"])
        self._installed = None if dry_run else set()
        return len(found)


@dataclasses.dataclass
class StagedSync:
    """A :class:`FlowTable`'s changes staged in a bundle (:meth:`FlowTable.stage`)."""

    table: FlowTable
    bundle: openflow.StagedBundle
    add: list[Flow]
    stale: set[int]
    installed: set[int]
    wanted: set[int]

    def send(self) -> StagedSync:
        """Stage the bundle in ovs-vswitchd (I/O only); :returns: this object.

        :raises OpenFlowError: the bridge refused the bundle (nothing staged; the record
            is unknown).
        """
        try:
            self.bundle.send()
        except OpenFlowError:
            self.table.forget()
            raise
        return self

    def commit(self) -> SyncResult:
        """Apply the bundle (staged first if not yet) and record what the bridge holds
        now.

        :raises OpenFlowError: the commit failed (nothing changed; the record is unknown).
        """
        try:
            self.bundle.commit()
        except OpenFlowError:
            self.table.forget()
            raise
        self.table._committed(self)
        return SyncResult(len(self.add), len(self.stale))

    def discard(self) -> None:
        """Drop the bundle; the table's record stays as it was."""
        self.bundle.discard()
