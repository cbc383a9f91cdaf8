"""An interpreter of netagent's iptables rule objects for one packet.

It walks the same :class:`~netagent.linux.iptables.rules.Rule` objects the firewall
driver's compiler builds (not their text), with iptables' semantics: rules in order, the
first matching terminal target decides, ``-j`` returns to the caller, ``-g`` returns to
the caller's caller, the end of a user chain returns, ``MARK --set-xmark`` is not
terminal, and the end (or a ``RETURN``) of the built-in chain applies its policy
(:mod:`.chainwalk`, shared with ebtables). A match type it does not know raises
:class:`NotModelledError` rather than guessing.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping, Sequence

from netagent.explain import chainwalk
from netagent.explain.packet import Packet
from netagent.linux.iptables.rules import (
    U32,
    Conntrack,
    DPortRange,
    DstNet,
    Icmp,
    InIface,
    MarkMatch,
    Match,
    OutIface,
    Physdev,
    Proto,
    Rule,
    SetMatch,
    SPortRange,
    SrcNet,
)
from netagent.linux.iptables.targets import ACCEPT, DROP, RETURN, Jump, SetMark

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class NotModelledError(Exception):
    """The packet reaches a rule whose match the explainer cannot evaluate."""


@dataclasses.dataclass(frozen=True)
class Context:
    """Where the packet is: the bridge it crosses and its bridge ports.

    :ivar physdev_in: bridge port it came in on (a tap, or the VXLAN device)
    :ivar physdev_out: bridge port it leaves on
    :ivar ct_state: conntrack state of the packet (``NEW`` for a first packet)
    """

    bridge: str
    physdev_in: str
    physdev_out: str
    ct_state: str = "NEW"


@dataclasses.dataclass(frozen=True)
class Step:
    """A rule that matched: chain, position (1-based, as ``iptables -L --line-numbers``)."""

    chain: str
    index: int
    rule: Rule


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The verdict of a walk and every rule that matched on the way."""

    verdict: str
    steps: tuple[Step, ...]


def _iface(actual: str, pattern: str) -> bool:
    if pattern.endswith("+"):
        return actual.startswith(pattern[:-1])
    return actual == pattern


def _in(address: ipaddress.IPv4Address | ipaddress.IPv6Address, net: IPNetwork) -> bool:
    return address.version == net.version and address in net


def match(
    m: Match, pkt: Packet, ctx: Context, mark: int, sets: Mapping[str, frozenset[IPNetwork]]
) -> bool:
    """Whether one match object matches the packet.

    :raises NotModelledError: a match type without packet semantics here
    """
    if isinstance(m, Proto):
        return (pkt.proto == m.number) != m.negate
    if isinstance(m, DPortRange):
        return pkt.dport is not None and m.low <= pkt.dport <= m.high
    if isinstance(m, SPortRange):
        if pkt.sport is None:  # an ephemeral port: only a full range covers it for sure
            return m.low <= 1 and m.high >= 65535
        return m.low <= pkt.sport <= m.high
    if isinstance(m, SrcNet):
        return _in(pkt.src, m.net) != m.negate
    if isinstance(m, DstNet):
        return _in(pkt.dst, m.net) != m.negate
    if isinstance(m, InIface):
        return _iface(ctx.bridge, m.name) != m.negate
    if isinstance(m, OutIface):
        return _iface(ctx.bridge, m.name) != m.negate
    if isinstance(m, Conntrack):
        return (ctx.ct_state in m.states) != m.negate
    if isinstance(m, SetMatch):
        address = pkt.src if m.direction == "src" else pkt.dst
        found = any(_in(address, net) for net in sets.get(m.name, frozenset()))
        return found != m.negate
    if isinstance(m, Physdev):
        if m.in_ is not None and not _iface(ctx.physdev_in, m.in_):
            return False
        return m.out is None or _iface(ctx.physdev_out, m.out)
    if isinstance(m, MarkMatch):
        return (mark & m.mask) == m.value
    if isinstance(m, Icmp):
        if not pkt.is_icmp or pkt.icmp_type != m.type:
            return False
        return m.code is None or m.code == pkt.icmp_code
    if isinstance(m, U32):
        raise NotModelledError("u32 match (neighbour advertisement targets) is not modelled")
    raise NotModelledError(f"match {type(m).__name__} is not modelled")


def walk(
    chains: Mapping[str, Sequence[Rule]],
    start: str,
    pkt: Packet,
    ctx: Context,
    sets: Mapping[str, frozenset[IPNetwork]],
    *,
    policy: str = "ACCEPT",
) -> Outcome:
    """Run ``pkt`` through ``chains`` from the built-in chain ``start``.

    :param chains: chain name -> rules (``start`` included)
    :param sets: ipset name -> members
    :raises NotModelledError: a rule on the way cannot be evaluated, or a jump names a
        chain not in ``chains``
    """
    mark = 0

    def matches(rule: Rule) -> bool:
        return all(match(m, pkt, ctx, mark, sets) for m in rule.matches)

    def act(rule: Rule) -> chainwalk.Action:
        nonlocal mark
        target = rule.target
        if target in (ACCEPT, DROP):
            return chainwalk.Verdict("ACCEPT" if target == ACCEPT else "DROP")
        if target == RETURN:
            return chainwalk.RETURN
        if isinstance(target, Jump):
            return chainwalk.Call(target.chain, target.goto)
        if isinstance(target, SetMark):
            mark = (mark & ~target.mask) ^ target.value
            return chainwalk.CONTINUE
        raise NotModelledError(f"target {target!r} is not modelled")

    try:
        walked = chainwalk.walk(chains, start, matches, act, policy)
    except chainwalk.UnknownChainError as exc:
        raise NotModelledError(str(exc)) from exc
    return Outcome(walked.verdict, tuple(Step(c, i, r) for c, i, r in walked.matched))
