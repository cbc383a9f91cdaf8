"""What an explanation says: the path, the checks, the verdict, the mismatches.

The path is a list of :class:`Hop` objects of open-ended kinds (``tap``, ``bridge``,
``vxlan``, ``uplink``, ``host``...): a router or an OVS bridge is one more kind of hop
with its own checks, added by the code that models it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from netagent.explain.packet import Packet

PASS = "pass"  # noqa: S105 - a verdict, not a password
DROP = "drop"
NOT_EVALUATED = "not evaluated"


@dataclasses.dataclass(frozen=True)
class Hop:
    """One place the packet goes through."""

    host: str
    kind: str
    name: str
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class RuleHit:
    """A kernel rule on the way: chain, 1-based position, text, packet counter.

    :ivar packets: the kernel's counter, None when the kernel was not read (another
        host) or its chain differs from the desired one
    """

    table: str
    chain: str
    index: int
    text: str
    packets: int | None = None


@dataclasses.dataclass(frozen=True)
class Check:
    """The verdict of one filter on the way.

    :ivar source: ``kernel`` (evaluated here, counters read) or ``desired state`` (the
        filter is on another host: what its agent should have applied)
    :ivar rule: the deciding security-group rule's summary (None: none decided)
    :ivar implemented_by: the kernel rules that decided, first the deciding one
    :ivar also_matched: further security-group rules that matched (they count too)
    """

    name: str
    host: str
    port: str
    verdict: str
    reason: str
    source: str
    security_group: str | None = None
    rule_id: str | None = None
    rule: str | None = None
    implemented_by: tuple[RuleHit, ...] = ()
    also_matched: tuple[str, ...] = ()
    conntrack: str | None = None


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """Applied kernel state that differs from what the desired state says."""

    host: str
    what: str
    detail: str


@dataclasses.dataclass(frozen=True)
class Explanation:
    """Everything ``explain`` found for one packet.

    :ivar complete: every check on the way was evaluated (on this host's kernel or from
        the desired state); False when a part could not be
    """

    packet: Packet
    source_port: str
    destination_port: str | None
    path: tuple[Hop, ...]
    checks: tuple[Check, ...]
    verdict: str
    where: str
    mismatches: tuple[Mismatch, ...] = ()
    notes: tuple[str, ...] = ()
    complete: bool = True
    #: live conntrack entries of this flow on this host (``zone, sport``), None: not read
    live: tuple[str, ...] | None = None

    @property
    def passes(self) -> bool:
        """The final verdict is pass."""
        return self.verdict == PASS

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json``)."""
        pkt = self.packet
        return {
            "packet": {
                "src": str(pkt.src),
                "dst": str(pkt.dst),
                "protocol": pkt.proto,
                "port": pkt.dport,
                "icmp_type": pkt.icmp_type if pkt.is_icmp else None,
                "icmp_code": pkt.icmp_code if pkt.is_icmp else None,
                "summary": pkt.summary(),
            },
            "source_port": self.source_port,
            "destination_port": self.destination_port,
            "path": [dataclasses.asdict(h) for h in self.path],
            "checks": [dataclasses.asdict(c) for c in self.checks],
            "verdict": self.verdict,
            "where": self.where,
            "complete": self.complete,
            "mismatches": [dataclasses.asdict(m) for m in self.mismatches],
            "notes": list(self.notes),
            "conntrack_entries": None if self.live is None else list(self.live),
        }
