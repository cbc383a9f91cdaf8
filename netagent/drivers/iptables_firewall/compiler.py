"""Security groups to iptables rules: pure functions, no kernel access.

Layout in table ``filter`` of each family (see doc/firewall.md for the why):

* ``na-FORWARD`` (netagent's hook, first in ``FORWARD``): bridged traffic of ``tap+`` ports
  on netagent bridges (``brq+``, and ``qbr+`` for hybrid plug) goes to ``na-egress``
  (coming from a VM) and ``na-ingress`` (going to a VM), then is accepted. On IPv6,
  router/neighbour solicitations and neighbour advertisements from a VM first go to
  ``na-nd`` (:mod:`.nd`).
* ``na-egress`` / ``na-ingress`` / ``na-nd``: 16 buckets by the first hex digit of the port
  id (``na-e-<h>``, ``na-n-<h>``, ``na-d-<h>``); anything not in a bucket is dropped.
* A bucket holds one rule per known port of the bucket (``goto`` its profile chain, or
  ``RETURN`` when port security is off) and ends with ``DROP``: a tap netagent has no
  filter for yet forwards nothing.
* Profile chains ``na-po-<hash>`` / ``na-pi-<hash>``: one per (direction, stateful,
  ordered list of groups) -- shared by every port with the same groups. Conntrack
  RELATED/ESTABLISHED returns (= passes), INVALID drops, the always-allowed DHCP/ND
  messages pass, then the accept mark is cleared and each group chain is jumped to; if
  any group rule matched, the mark is set and the packet goes to ``na-accept``.
* Group chains (``nai<id>``/``nao<id>``, :func:`netagent.common.names.security_group_chain`):
  one rule per security-group rule of that direction and family, target ``MARK``.
  Remote groups and remote address groups match ipset ``na4<id>``/``na6<id>``.

A chain reached by ``goto`` that returns lands back in ``na-FORWARD``: "passed this
check". Packets between two local VMs pass the source port's egress check, then the
destination port's ingress check, then ``na-FORWARD`` accepts them.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Iterable, Sequence

from netagent.common import names
from netagent.common.exceptions import NetagentError
from netagent.linux.iptables import (
    DROP,
    RETURN,
    Conntrack,
    DPortRange,
    DstNet,
    Icmp,
    InIface,
    Jump,
    MarkMatch,
    Match,
    OutIface,
    Physdev,
    Proto,
    Rule,
    SetMark,
    SetMatch,
    SPortRange,
    SrcNet,
)
from netagent.model.secgroup import Direction, EtherType, SecurityGroup, SecurityGroupRule

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Bridges whose tap ports netagent filters: Linux bridge networks and hybrid plug.
BRIDGE_PREFIXES = ("brq", "qbr")
TAP_WILDCARD = "tap+"
HEX_DIGITS = "0123456789abcdef"
EGRESS_DISPATCH = "na-egress"
INGRESS_DISPATCH = "na-ingress"
ND_DISPATCH = "na-nd"
ACCEPT_CHAIN = "na-accept"
#: ICMPv6 types from a VM checked in ``na-nd`` (:mod:`.nd`): RS, NS, NA.
ND_TYPES = (133, 135, 136)
#: ICMPv6 types a VM may always send: MLD query/report/done, RS, NS, MLDv2 report
#: (RS/NS/NA are checked per port in ``na-nd``; RA and redirects are dropped by ebtables).
ICMPV6_EGRESS_ALWAYS = (130, 131, 132, 133, 135, 136, 143)
#: ICMPv6 types a VM may always receive: MLD query, RA, NS, NA.
ICMPV6_INGRESS_ALWAYS = (130, 134, 135, 136)


class FirewallBuildError(NetagentError):
    """A port's filter cannot be built; ``reason`` says why (rebuildable from args)."""

    def __init__(self, port_id: str, reason: str) -> None:
        super().__init__(port_id, reason)
        self.port_id = port_id
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def _dir(direction: Direction) -> names.Direction:
    return "ingress" if direction is Direction.INGRESS else "egress"


def bucket(device: str) -> str:
    """The bucket digit of a tap device (4th character, a hex digit for port ids)."""
    digit = device[3:4]
    if digit not in HEX_DIGITS or not digit:
        raise ValueError(f"device {device!r} has no hex bucket digit")
    return digit


def bucket_chain(kind: str, digit: str) -> str:
    """``na-e-<h>`` (egress), ``na-n-<h>`` (ingress) or ``na-d-<h>`` (neighbour discovery)."""
    return f"na-{kind}-{digit}"


def profile_chain(direction: Direction, stateful: bool, group_ids: Sequence[str]) -> str:
    """Name of the shared chain for ports with these groups (in order)."""
    return _profile_chain(direction, stateful, tuple(group_ids))


@functools.lru_cache(maxsize=4096)
def _profile_chain(direction: Direction, stateful: bool, group_ids: tuple[str, ...]) -> str:
    blob = f"{direction.value}|{int(stateful)}|{','.join(group_ids)}"
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return f"na-p{'i' if direction is Direction.INGRESS else 'o'}-{digest}"


#: Last rule of every bucket: a tap without a filter forwards nothing.
BUCKET_END = Rule((), DROP)


# -- security-group rules -------------------------------------------------------------


def rule_matches(rule: SecurityGroupRule, family: int) -> tuple[Match, ...]:
    """The iptables matches of one security-group rule (remote side, then protocol).

    :raises ValueError: the rule cannot be expressed (bad values in a hand-built rule)
    """
    ingress = rule.direction is Direction.INGRESS
    out: list[Match] = []
    side = "src" if ingress else "dst"
    if rule.remote_ip_prefix is not None:
        prefix = ipaddress.ip_network(rule.remote_ip_prefix, strict=False)
        if prefix.prefixlen:
            out.append(SrcNet(prefix) if ingress else DstNet(prefix))
    remote = rule.remote_group_id or rule.remote_address_group_id
    if remote is not None:
        out.append(SetMatch(names.ipset_name(4 if family == 4 else 6, remote), side))
    if rule.local_ip_prefix is not None:
        local = ipaddress.ip_network(rule.local_ip_prefix, strict=False)
        if local.prefixlen:
            out.append(DstNet(local) if ingress else SrcNet(local))
    if rule.protocol is not None:
        out.append(Proto(rule.protocol))
        if rule.port_range_min is not None:
            high = rule.port_range_max if rule.port_range_max is not None else rule.port_range_min
            out.append(DPortRange(rule.port_range_min, high))
        if rule.source_port_range_min is not None:
            low = rule.source_port_range_min
            shigh = rule.source_port_range_max
            out.append(SPortRange(low, low if shigh is None else shigh))
        if rule.icmp_type is not None:
            out.append(Icmp(rule.icmp_type, rule.icmp_code))
    elif any(
        x is not None for x in (rule.port_range_min, rule.icmp_type, rule.source_port_range_min)
    ):
        raise ValueError("ports or ICMP type without a protocol")
    return tuple(out)


def group_chain_rules(
    group: SecurityGroup, direction: Direction, family: int, mark: int
) -> list[tuple[SecurityGroupRule, Rule]]:
    """The rules of a group chain in chain order, each with the security-group rule it
    comes from: each matching rule sets the accept mark.

    A rule whose matches repeat an earlier one's is left out. Every rule is rendered here
    so that a rule the iptables layer refuses fails now. As every rule only sets the
    mark, their order does not matter: they are sorted by their text, so the same rules
    in another order (Neutron's RPC and REST API give a group's rules in different
    orders) make the same chain, and a resync does not rewrite it.

    :raises ValueError: a rule of the group cannot be expressed
    """
    ethertype = EtherType.IPV4 if family == 4 else EtherType.IPV6
    out: list[tuple[SecurityGroupRule, Rule]] = []
    seen: set[tuple[Match, ...]] = set()
    for sg_rule in group.rules:
        if sg_rule.direction is not direction or sg_rule.ethertype is not ethertype:
            continue
        matches = rule_matches(sg_rule, family)
        if matches in seen:
            continue
        seen.add(matches)
        rule = Rule(matches, SetMark(mark, mark))
        rule.rendered(family)
        out.append((sg_rule, rule))
    out.sort(key=lambda pair: pair[1].rendered(family))
    return out


def group_rules(group: SecurityGroup, direction: Direction, family: int, mark: int) -> list[Rule]:
    """The rules of a group chain (:func:`group_chain_rules` without their origin).

    :raises ValueError: a rule of the group cannot be expressed
    """
    return [rule for _, rule in group_chain_rules(group, direction, family, mark)]


def compile_group(group: SecurityGroup, mark: int) -> dict[tuple[int, Direction], list[Rule]]:
    """All four chains of a group: ``{(family, direction): rules}``.

    :raises FirewallBuildError: (for the group id) any rule cannot be expressed
    """
    try:
        return {
            (family, direction): group_rules(group, direction, family, mark)
            for family in (4, 6)
            for direction in (Direction.EGRESS, Direction.INGRESS)
        }
    except (ValueError, TypeError, AttributeError) as exc:
        raise FirewallBuildError(group.id, f"security group {group.id}: {exc}") from exc


def group_chain(direction: Direction, group_id: str) -> str:
    """The shared chain of a group and direction."""
    return names.security_group_chain(_dir(direction), group_id)


def remote_ids(groups: Iterable[SecurityGroup]) -> set[str]:
    """Remote group and remote address group ids the groups' rules reference."""
    return {
        rid
        for group in groups
        for rule in group.rules
        for rid in (rule.remote_group_id, rule.remote_address_group_id)
        if rid is not None
    }


# -- shared chains --------------------------------------------------------------------


def profile_rules(
    direction: Direction, family: int, stateful: bool, group_ids: Sequence[str], mark: int
) -> list[Rule]:
    """Content of a profile chain (see module docstring)."""
    out: list[Rule] = []
    if stateful:
        out.append(Rule((Conntrack(frozenset({"INVALID"})),), DROP))
        out.append(Rule((Conntrack(frozenset({"RELATED", "ESTABLISHED"})),), RETURN))
    egress = direction is Direction.EGRESS
    if family == 4:
        sport, dport = (68, 67) if egress else (67, 68)
        out.append(Rule((Proto(17), SPortRange(sport, sport), DPortRange(dport, dport)), RETURN))
    else:
        sport, dport = (546, 547) if egress else (547, 546)
        out.append(Rule((Proto(17), SPortRange(sport, sport), DPortRange(dport, dport)), RETURN))
        types = ICMPV6_EGRESS_ALWAYS if egress else ICMPV6_INGRESS_ALWAYS
        out += [Rule((Proto(58), Icmp(t)), RETURN) for t in types]
    if group_ids:
        out.append(Rule((), SetMark(0, mark)))
        for group_id in group_ids:
            out.append(Rule((), Jump(group_chain(direction, group_id))))
        out.append(Rule((MarkMatch(mark, mark),), Jump(ACCEPT_CHAIN, goto=True)))
    out.append(Rule((), DROP))
    return out


def accept_rules(mark: int) -> list[Rule]:
    """``na-accept``: clear the mark and pass (reached by goto: returns to na-FORWARD)."""
    return [Rule((), SetMark(0, mark)), Rule((), RETURN)]


def hook_rules(family: int) -> list[Rule]:
    """``na-FORWARD``: dispatch bridged tap traffic on netagent bridges, then accept it."""
    out: list[Rule] = []
    for prefix in BRIDGE_PREFIXES:
        bridge = f"{prefix}+"
        src = (InIface(bridge), Physdev(in_=TAP_WILDCARD, is_bridged=True))
        dst = (OutIface(bridge), Physdev(out=TAP_WILDCARD, is_bridged=True))
        if family == 6:
            out += [Rule((*src, Proto(58), Icmp(t)), Jump(ND_DISPATCH)) for t in ND_TYPES]
        out.append(Rule(src, Jump(EGRESS_DISPATCH)))
        out.append(Rule(dst, Jump(INGRESS_DISPATCH)))
    for prefix in BRIDGE_PREFIXES:
        bridge = f"{prefix}+"
        out.append(Rule((InIface(bridge), Physdev(in_=TAP_WILDCARD, is_bridged=True))))
        out.append(Rule((OutIface(bridge), Physdev(out=TAP_WILDCARD, is_bridged=True))))
    return out


def dispatch_rules(kind: str) -> list[Rule]:
    """``na-egress``/``na-ingress``/``na-nd``: goto the bucket of the tap, else drop."""
    out = []
    for digit in HEX_DIGITS:
        tap = f"tap{digit}+"
        physdev = Physdev(out=tap) if kind == "n" else Physdev(in_=tap)
        out.append(Rule((physdev,), Jump(bucket_chain(kind, digit), goto=True)))
    out.append(Rule((), DROP))
    return out


def bucket_entry(kind: str, device: str, chain: str | None) -> Rule:
    """A port's rule in its ``na-e-``/``na-n-`` bucket: goto its profile (None: RETURN)."""
    physdev = Physdev(out=device) if kind == "n" else Physdev(in_=device)
    return Rule((physdev,), RETURN if chain is None else Jump(chain, goto=True))


def bucket_rules(kind: str, entries: Sequence[tuple[str, str | None]]) -> list[Rule]:
    """A bucket: ``(device, profile chain)`` per port (None: unfiltered), then drop."""
    out = [bucket_entry(kind, device, chain) for device, chain in sorted(entries)]
    out.append(BUCKET_END)
    return out
