"""An interpreter of netagent's ebtables rule objects for one IP frame from a VM.

Same idea as :mod:`.iptables_eval` (and the same walk, :mod:`.chainwalk`): the
:class:`~netagent.linux.ebtables.EbRule` objects the anti-spoofing compiler builds are
walked in order; a chain target jumps, the end of a user chain returns (netagent's chains
have policy ``RETURN``), ``ACCEPT``/``DROP`` decide, and the end of the built-in chain
applies its policy (``ACCEPT``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from netagent.explain import chainwalk
from netagent.explain.iptables_eval import NotModelledError
from netagent.explain.packet import Packet
from netagent.linux.ebtables import EbRule


@dataclasses.dataclass(frozen=True)
class EbStep:
    """A rule that matched: chain, 1-based position, rule."""

    chain: str
    index: int
    rule: EbRule


@dataclasses.dataclass(frozen=True)
class EbOutcome:
    """Verdict of the walk and the rules that matched."""

    verdict: str
    steps: tuple[EbStep, ...]


def _iface(actual: str, pattern: str) -> bool:
    return actual.startswith(pattern[:-1]) if pattern.endswith("+") else actual == pattern


def match(rule: EbRule, pkt: Packet, in_iface: str, src_mac: str) -> bool:
    """Whether ``rule`` matches an IPv4/IPv6 frame of ``pkt`` from ``src_mac``."""
    ethertype = "IPv4" if pkt.family == 4 else "IPv6"
    checks = (
        rule.ethertype is None or rule.ethertype == ethertype,
        rule.in_iface is None or _iface(in_iface, rule.in_iface),
        rule.src_mac is None or rule.src_mac == src_mac.lower(),
        rule.ip_src is None or (pkt.src.version == rule.ip_src.version and pkt.src in rule.ip_src),
        rule.ip_dst is None or (pkt.dst.version == rule.ip_dst.version and pkt.dst in rule.ip_dst),
        rule.ip_proto is None or rule.ip_proto == pkt.proto,
        rule.sport is None or rule.sport == pkt.sport,
        rule.dport is None or rule.dport == pkt.dport,
        rule.icmp_type is None or (pkt.is_icmp and rule.icmp_type == pkt.icmp_type),
    )
    return all(checks)


def walk(
    chains: Mapping[str, Sequence[EbRule]],
    start: str,
    pkt: Packet,
    in_iface: str,
    src_mac: str,
) -> EbOutcome:
    """Run the frame through ``chains`` from the built-in chain ``start``.

    :raises NotModelledError: a jump to a chain not in ``chains``
    """

    def act(rule: EbRule) -> chainwalk.Action:
        if rule.target in ("ACCEPT", "DROP"):
            return chainwalk.Verdict(rule.target)
        if rule.target == "RETURN":
            return chainwalk.RETURN
        return chainwalk.Call(rule.target)

    try:
        walked = chainwalk.walk(
            chains, start, lambda rule: match(rule, pkt, in_iface, src_mac), act
        )
    except chainwalk.UnknownChainError as exc:
        raise NotModelledError(f"ebtables {exc}") from exc
    return EbOutcome(walked.verdict, tuple(EbStep(c, i, r) for c, i, r in walked.matched))
