"""The chains one host's firewall driver declares, rebuilt from a snapshot.

Built with the driver's own functions (:func:`build_record`, the compiler and the
anti-spoofing module), so the explainer walks the rule objects the driver renders: the
same protocol-0-is-any, port ranges, ICMP type/code, remote prefixes, remote-group
ipsets, allowed address pairs, statefulness and ethertype handling.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Collection, Mapping

from netagent.common import names
from netagent.drivers.iptables_firewall import antispoof
from netagent.drivers.iptables_firewall import compiler as comp
from netagent.drivers.iptables_firewall.driver import PortRecord, build_record
from netagent.explain.snapshot import Snapshot
from netagent.linux.ebtables import EbRule
from netagent.linux.iptables.rules import Rule
from netagent.linux.iptables.targets import Jump
from netagent.model.port import Port
from netagent.model.secgroup import Direction, SecurityGroup, SecurityGroupRule

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_MARK = 0x1000000
EB_HOOK = "PREROUTING"
EB_HOOK_CHAIN = "na-PREROUTING"
IPT_HOOK = "FORWARD"
IPT_HOOK_CHAIN = "na-FORWARD"


@dataclasses.dataclass
class Ruleset:
    """One host's chains for one family.

    :ivar origin: group chain name -> per rule, the security-group rule it came from
    :ivar records: the driver's record of each port in a bucket, by port id
    """

    family: int
    chains: dict[str, list[Rule]]
    eb_chains: dict[str, list[EbRule]]
    sets: dict[str, frozenset[IPNetwork]]
    origin: dict[str, list[SecurityGroupRule]]
    records: dict[str, PortRecord]
    groups: dict[str, SecurityGroup]


def build(
    snap: Snapshot,
    host: str,
    family: int,
    in_buckets: Collection[str] | None = None,
) -> Ruleset:
    """The chains the driver on ``host`` declares for the ports of ``snap`` bound there.

    :param in_buckets: port ids the driver put in its buckets (``None``: every port of
        the host that it can build a record for, minus ``excluded`` and the ports of
        ``bad_groups`` when ``host`` is the snapshot's own)
    """
    mark = int(snap.firewall.get("mark", DEFAULT_MARK))
    excluded = set(snap.firewall.get("excluded", {})) if host == snap.host else set()
    bad = set(snap.firewall.get("bad_groups", {})) if host == snap.host else set()
    state = snap.state()
    ports: list[Port] = [
        p
        for p in snap.local_ports(host)
        if (in_buckets is None or p.id in in_buckets) and p.id not in excluded
    ]
    records: dict[str, PortRecord] = {}
    for port in ports:
        try:
            record = build_record(port, state)
        except comp.FirewallBuildError:
            continue
        if not any(g in bad for g in record.groups):
            records[port.id] = record
    chains: dict[str, list[Rule]] = {IPT_HOOK: [Rule((), Jump(IPT_HOOK_CHAIN))]}
    chains[IPT_HOOK_CHAIN] = comp.hook_rules(family)
    chains[comp.ACCEPT_CHAIN] = comp.accept_rules(mark)
    for kind, name in (
        ("e", comp.EGRESS_DISPATCH),
        ("n", comp.INGRESS_DISPATCH),
        ("d", comp.ND_DISPATCH),
    ):
        if kind != "d" or family == 6:
            chains[name] = comp.dispatch_rules(kind)
    for digit in comp.HEX_DIGITS:
        members = sorted(
            (r for r in records.values() if r.digit == digit),
            key=lambda r: (r.device, r.spoof_chain or ""),
        )
        entries = [r.ipt_entries() for r in members]
        chains[comp.bucket_chain("e", digit)] = [e[0] for e in entries] + [comp.BUCKET_END]
        chains[comp.bucket_chain("n", digit)] = [e[1] for e in entries] + [comp.BUCKET_END]
        if family == 6:
            nd = [rule for e in entries for rule in e[2]]
            chains[comp.bucket_chain("d", digit)] = [*nd, comp.BUCKET_END]
    groups: dict[str, SecurityGroup] = {}
    origin: dict[str, list[SecurityGroupRule]] = {}
    for record in records.values():
        if record.profiles is None:
            continue
        for direction, profile in zip(
            (Direction.EGRESS, Direction.INGRESS), record.profiles, strict=True
        ):
            chains[profile] = comp.profile_rules(
                direction, family, record.stateful, record.groups, mark
            )
            for gid in record.groups:
                group = snap.security_groups.get(gid) or SecurityGroup(id=gid)
                groups[gid] = group
                name = comp.group_chain(direction, gid)
                pairs = comp.group_chain_rules(group, direction, family, mark)
                chains[name] = [rule for _, rule in pairs]
                origin[name] = [sg_rule for sg_rule, _ in pairs]
    sets: dict[str, frozenset[IPNetwork]] = {}
    for (rid, fam), members_ in snap.members.items():
        if fam == family:
            sets[names.ipset_name(4 if family == 4 else 6, rid)] = members_
    eb: dict[str, list[EbRule]] = {
        EB_HOOK: [EbRule(EB_HOOK_CHAIN)],
        EB_HOOK_CHAIN: antispoof.hook_rules(),
        antispoof.OK_CHAIN: antispoof.ok_rules(),
        antispoof.TAIL_CHAIN: antispoof.tail_rules(),
    }
    for digit in comp.HEX_DIGITS:
        members = [r for r in records.values() if r.digit == digit]
        eb_entries = [(r.device, r.spoof_chain, antispoof.macs(r.port)) for r in members]
        eb[antispoof.eb_bucket_chain(digit)] = antispoof.bucket_rules(eb_entries)
    for record in records.values():
        if record.secured:
            eb[antispoof.port_chain(record.port)] = list(record.spoof_rules)
    return Ruleset(family, chains, eb, sets, origin, records, groups)


def chain_kind(name: str) -> str | None:
    """``egress``/``ingress`` for the chains of one direction, else None (shared)."""
    if name in (comp.EGRESS_DISPATCH,) or name.startswith(("na-e-", "na-po-", "nao")):
        return "egress"
    if name in (comp.INGRESS_DISPATCH,) or name.startswith(("na-n-", "na-pi-", "nai")):
        return "ingress"
    return None


def is_group_chain(name: str, origin: Mapping[str, object]) -> bool:
    """Whether ``name`` is a security group's chain."""
    return name in origin
