"""Path, checks and verdict of one packet between two ports (or towards an address).

:func:`explain` resolves the two ends in a :class:`~.snapshot.Snapshot`, lays out the
path (tap, bridge, VXLAN device and peer host, tap), and evaluates each filter on the
way with the interpreters of :mod:`.ebtables_eval` and :mod:`.iptables_eval` over the
chains :mod:`.rulesets` rebuilds with the driver's own code. A filter on the agent's own
host is tied to the kernel (:mod:`.kernel`): the rules that decided carry their packet
counters, and every chain, ipset and hook the packet goes through is compared with what
the desired state says. A filter on another host is evaluated from the desired state
(its own agent's ``explain`` ties it to its kernel).

Each half is evaluated on its own (egress as if the packet left towards the other
host, ingress as if it came from there): both verdicts show even when the first drops.
On one host the driver's ``na-FORWARD`` runs both halves in one traversal, one after
the other, with the mark cleared in between, so the halves are independent there too.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping, Sequence

from netagent.common import names
from netagent.drivers.iptables_firewall import antispoof
from netagent.explain import ebtables_eval, iptables_eval, kernel, routing, rulesets
from netagent.explain.iptables_eval import Context, NotModelledError, Outcome, Step
from netagent.explain.packet import IPAddress, Packet, parse_protocol
from netagent.explain.result import (
    DROP,
    NOT_EVALUATED,
    PASS,
    Check,
    Explanation,
    Hop,
    Mismatch,
    RuleHit,
)
from netagent.explain.snapshot import OvsInfo, Snapshot
from netagent.linux import conntrack
from netagent.linux.iptables.rules import Conntrack, MarkMatch, SetMatch
from netagent.linux.iptables.targets import RETURN, SetMark
from netagent.model.port import Port

UNKNOWN = "unknown"
#: bridge port name standing for "not a tap" (the VXLAN device or the uplink)
_NOT_A_TAP = "uplink"


class ExplainError(ValueError):
    """The question cannot be asked: an unknown port, a missing address..."""


@dataclasses.dataclass(frozen=True)
class Query:
    """The command line of ``netagent-status explain``, unparsed values."""

    source: str
    destination: str
    protocol: str
    port: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    ethertype: str | None = None
    source_ip: str | None = None


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _by_id(snap: Snapshot, ref: str) -> Port:
    if ref in snap.ports:
        return snap.ports[ref]
    found = [p for p in snap.ports.values() if len(ref) >= 4 and p.id.startswith(ref.lower())]
    if len(found) != 1:
        raise ExplainError(f"no port {ref!r} known to the agent on {snap.host}")
    return found[0]


def _by_address(snap: Snapshot, address: IPAddress) -> Port | None:
    """The port with ``address`` as fixed IP, else one whose address pair covers it
    (this host's first, then by id)."""
    ports = sorted(snap.ports.values(), key=lambda p: (p.host != snap.host, p.id))
    for port in ports:
        if address in port.addresses:
            return port
    for port in ports:
        for pair in port.allowed_address_pairs:
            if pair.ip_address.version == address.version and address in pair.ip_address:
                return port
    return None


def _first_address(port: Port, family: int) -> IPAddress:
    for address in port.addresses:
        if address.version == family:
            return address
    raise ExplainError(f"port {port.id} has no IPv{family} address: name one instead")


def _family(query: Query) -> int:
    if query.ethertype is not None:
        if query.ethertype not in ("IPv4", "IPv6"):
            raise ExplainError("--ethertype must be IPv4 or IPv6")
        return 4 if query.ethertype == "IPv4" else 6
    for text in (query.source_ip, query.source, query.destination):
        address = _address(text) if text else None
        if address is not None:
            return address.version
    return 4


def _hit(table: str, step: Step, family: int) -> RuleHit:
    matches, target = step.rule.rendered(family)
    text = f"-A {step.chain} {matches} {target}".replace("  ", " ")
    return RuleHit(table, step.chain, step.index, text)


class _Tracer:
    """One explanation being built (kernel ties, mismatches, notes)."""

    def __init__(self, snap: Snapshot, state: kernel.KernelState | None, family: int) -> None:
        self.snap = snap
        self.kernel = state
        self.family = family
        self.mismatches: dict[tuple[str, str], Mismatch] = {}
        self.notes: list[str] = []
        self.filtering = "backend" in snap.firewall

    # -- kernel ties ----------------------------------------------------------------------

    def _saved(self, host: str) -> dict[str, list[kernel.SavedRule]] | None:
        if host != self.snap.host or self.kernel is None:
            return None
        return self.kernel.iptables.get(self.family)

    def tie(self, host: str, ruleset: rulesets.Ruleset, hits: Iterable[RuleHit]) -> list[RuleHit]:
        """``hits`` with kernel counters (when this host's chain is as desired)."""
        saved = self._saved(host)
        out = []
        for hit in hits:
            if saved is not None and hit.table == f"iptables IPv{self.family} filter":
                rules = ruleset.chains.get(hit.chain, [])
                same = hit.chain == rulesets.IPT_HOOK or (
                    kernel.chain_difference(hit.chain, self.family, rules, saved) is None
                )
                kept = saved.get(hit.chain, [])
                if same and hit.index <= len(kept) and hit.chain != rulesets.IPT_HOOK:
                    out.append(dataclasses.replace(hit, packets=kept[hit.index - 1].packets))
                    continue
            out.append(hit)
        return out

    def compare(self, host: str, ruleset: rulesets.Ruleset, steps: Sequence[Step]) -> None:
        """Record mismatches of the chains, hook and ipsets the packet went through."""
        saved = self._saved(host)
        if saved is None:
            return
        table = f"iptables IPv{self.family} filter"
        why = kernel.hook_difference(rulesets.IPT_HOOK, rulesets.IPT_HOOK_CHAIN, saved)
        if why is not None:
            self._mismatch(host, f"{table} {rulesets.IPT_HOOK}", why)
        chains = dict.fromkeys(s.chain for s in steps if s.chain != rulesets.IPT_HOOK)
        for name in chains:
            why = kernel.chain_difference(name, self.family, ruleset.chains[name], saved)
            if why is not None:
                self._mismatch(host, f"{table} chain {name}", why)
        if self.kernel is not None and self.kernel.ipsets is not None:
            for name in chains:
                for rule in ruleset.chains[name]:
                    for m in rule.matches:
                        if isinstance(m, SetMatch):
                            members = ruleset.sets.get(m.name, frozenset())
                            why = kernel.set_difference(m.name, members, self.kernel.ipsets)
                            if why is not None:
                                self._mismatch(host, f"ipset {m.name}", why)

    def compare_eb(
        self, host: str, ruleset: rulesets.Ruleset, steps: Sequence[ebtables_eval.EbStep]
    ) -> None:
        if host != self.snap.host or self.kernel is None or self.kernel.ebtables is None:
            return
        saved = self.kernel.ebtables
        if saved.hook is not True:
            state = "not rule 1" if saved.hook is False else "missing"
            self._mismatch(host, "ebtables nat PREROUTING", f"jump to na-PREROUTING {state}")
        for name in dict.fromkeys(s.chain for s in steps if s.chain != rulesets.EB_HOOK):
            why = kernel.eb_chain_difference(name, ruleset.eb_chains[name], saved)
            if why is not None:
                self._mismatch(host, f"ebtables nat chain {name}", why)

    def _eb_packets(self, host: str, chain: str, index: int) -> int | None:
        """The kernel's packet counter of ebtables rule ``index`` (1-based) of ``chain``;
        None when not read here or when the chain differs from the desired one."""
        if host != self.snap.host or self.kernel is None or self.kernel.ebtables is None:
            return None
        if (host, f"ebtables nat chain {chain}") in self.mismatches:
            return None
        counted = self.kernel.ebtables.packets.get(chain, [])
        return counted[index - 1] if index <= len(counted) else None

    def _mismatch(self, host: str, what: str, detail: str) -> None:
        self.mismatches.setdefault((host, what), Mismatch(host, what, detail))

    def source(self, host: str) -> str:
        return "kernel" if host == self.snap.host and self.kernel is not None else "desired state"

    # -- checks ---------------------------------------------------------------------------

    def antispoof(self, port: Port, pkt: Packet, ruleset: rulesets.Ruleset) -> Check:
        host = port.host or UNKNOWN
        base = Check("anti-spoofing", host, port.id, PASS, "", self.source(host))
        if not self.filtering:
            return dataclasses.replace(base, reason="no firewall driver: nothing is checked")
        mac = pkt.src_mac or port.mac_address
        outcome = ebtables_eval.walk(
            ruleset.eb_chains, rulesets.EB_HOOK, pkt, port.device_name, mac
        )
        self.compare_eb(host, ruleset, outcome.steps)
        hits = tuple(
            RuleHit(
                "ebtables nat",
                s.chain,
                s.index,
                f"-A {s.chain} {s.rule.rendered()}",
                self._eb_packets(host, s.chain, s.index),
            )
            for s in outcome.steps
            if s.chain.startswith("na-s-") or s is outcome.steps[-1]
        )
        last = outcome.steps[-1].chain if outcome.steps else ""
        if outcome.verdict == "ACCEPT":
            if not port.port_security_enabled:
                reason = "port security disabled: everything from the tap is accepted"
            else:
                reason = f"source {mac} {pkt.src} is {self._owned_as(port, pkt.src)}"
            return dataclasses.replace(base, reason=reason, implemented_by=hits)
        if last.startswith("na-b-") and port.id not in ruleset.records:
            reason = "the port has no anti-spoofing entry here (not filtered yet, or excluded)"
        elif last.startswith("na-b-"):
            reason = f"source MAC {mac} is not one of the port's MACs"
        elif last == antispoof.OK_CHAIN:
            reason = "DHCP server replies, redirects and router advertisements from VMs drop"
        else:
            reason = (
                f"source {pkt.src} is neither a fixed IP nor an allowed address pair "
                f"of the port (with MAC {mac})"
            )
        return dataclasses.replace(base, verdict=DROP, reason=reason, implemented_by=hits)

    @staticmethod
    def _owned_as(port: Port, address: IPAddress) -> str:
        if address in port.addresses:
            return "a fixed IP of the port"
        for pair in port.allowed_address_pairs:
            if pair.ip_address.version == address.version and address in pair.ip_address:
                return f"in allowed address pair {pair.ip_address}"
        return "the port's link-local address"

    def security_group(
        self, direction: str, port: Port, pkt: Packet, ctx: Context, rs: rulesets.Ruleset
    ) -> Check:
        host = port.host or UNKNOWN
        name = f"{direction} security group"
        base = Check(name, host, port.id, PASS, "", self.source(host))
        if not self.filtering:
            return dataclasses.replace(base, reason="no firewall driver: nothing is filtered")
        try:
            outcome = iptables_eval.walk(rs.chains, rulesets.IPT_HOOK, pkt, ctx, rs.sets)
        except NotModelledError as exc:
            return dataclasses.replace(base, verdict=NOT_EVALUATED, reason=str(exc))
        self.compare(host, rs, outcome.steps)
        return self._verdict(base, direction, port, pkt, outcome, rs)

    def _verdict(  # noqa: PLR0917 - one call site
        self,
        base: Check,
        direction: str,
        port: Port,
        pkt: Packet,
        outcome: Outcome,
        rs: rulesets.Ruleset,
    ) -> Check:
        table = f"iptables IPv{self.family} filter"
        steps = [s for s in outcome.steps if rulesets.chain_kind(s.chain) == direction]
        record = rs.records.get(port.id)
        conntrack = None
        if record is not None and record.profiles is not None:
            profile = record.profiles[0 if direction == "egress" else 1]
            if record.stateful:
                conntrack = (
                    f"stateful: replies pass as RELATED,ESTABLISHED ({profile} rule 2); "
                    "INVALID drops (rule 1)"
                )
            else:
                conntrack = "stateless groups: no conntrack, a reply needs a rule of its own"
        base = dataclasses.replace(base, conntrack=conntrack)
        dropped = outcome.verdict == "DROP" and bool(steps) and steps[-1] is outcome.steps[-1]
        if not steps:
            return dataclasses.replace(
                base, verdict=NOT_EVALUATED, reason="the packet does not reach this port's filter"
            )
        last = steps[-1]
        if record is None or (last.chain.startswith(("na-e-", "na-n-")) and dropped):
            why = self.snap.firewall.get("excluded", {}).get(port.id) or "not applied yet"
            hits = self.tie(base.host, rs, [_hit(table, last, self.family)])
            return dataclasses.replace(
                base,
                verdict=DROP,
                reason=f"the port is not in its bucket, it forwards nothing ({why})",
                implemented_by=tuple(hits),
            )
        if not record.secured:
            hits = self.tie(base.host, rs, [_hit(table, last, self.family)])
            return dataclasses.replace(
                base, reason="port security disabled: not filtered", implemented_by=tuple(hits)
            )
        marks = [
            s
            for s in steps
            if s.chain in rs.origin
            and isinstance(s.rule.target, SetMark)
            and s.rule.target.value != 0
        ]
        if marks:
            first = marks[0]
            rule = rs.origin[first.chain][first.index - 1]
            accept = next(
                (s for s in steps if any(isinstance(m, MarkMatch) for m in s.rule.matches)), None
            )
            raw = [_hit(table, first, self.family)]
            if accept is not None:
                raw.append(_hit(table, accept, self.family))
            also = tuple(
                f"{rs.origin[s.chain][s.index - 1].security_group_id} "
                f"{rs.origin[s.chain][s.index - 1].id or '-'}: "
                f"{rs.origin[s.chain][s.index - 1].summary()}"
                for s in marks[1:]
            )
            return dataclasses.replace(
                base,
                reason="allowed by a rule",
                security_group=rule.security_group_id,
                rule_id=rule.id,
                rule=rule.summary(),
                implemented_by=tuple(self.tie(base.host, rs, raw)),
                also_matched=also,
            )
        if dropped:
            groups = ", ".join(record.groups) or "none"
            hits = self.tie(base.host, rs, [_hit(table, last, self.family)])
            return dataclasses.replace(
                base,
                verdict=DROP,
                reason=f"default deny: no rule of the port's groups ({groups}) matches",
                implemented_by=tuple(hits),
            )
        if last.rule.target == RETURN and not any(
            isinstance(m, Conntrack) for m in last.rule.matches
        ):
            hits = self.tie(base.host, rs, [_hit(table, last, self.family)])
            return dataclasses.replace(
                base,
                reason="always allowed (DHCP / neighbour discovery, as Neutron does)",
                implemented_by=tuple(hits),
            )
        hits = self.tie(base.host, rs, [_hit(table, last, self.family)])
        return dataclasses.replace(base, reason="passed", implemented_by=tuple(hits))


def _other_side(network_type: str, vni: int | None) -> str:
    if network_type == "vxlan" and vni is not None:
        return names.vxlan_device(vni)
    return _NOT_A_TAP


def explain(snap: Snapshot, query: Query, state: kernel.KernelState | None) -> Explanation:
    """Explain what happens to the first packet ``query`` describes.

    :param state: this host's kernel state (None: evaluate from the desired state only)
    :raises ExplainError: an end cannot be resolved, or the packet cannot be built
    """
    family = _family(query)
    src_addr = _address(query.source)
    src_port = _by_address(snap, src_addr) if src_addr else _by_id(snap, query.source)
    if src_port is None:
        raise ExplainError(f"no port known to the agent on {snap.host} has address {src_addr}")
    if query.source_ip:
        src_addr = _address(query.source_ip)
        if src_addr is None:
            raise ExplainError(f"--source-ip {query.source_ip!r} is not an address")
    if src_addr is None:
        src_addr = _first_address(src_port, family)
    dst_addr = _address(query.destination)
    dst_port = _by_address(snap, dst_addr) if dst_addr else _by_id(snap, query.destination)
    if dst_addr is None:
        assert dst_port is not None
        dst_addr = _first_address(dst_port, family)
    try:
        proto = parse_protocol(query.protocol, family)
        pkt = Packet(
            src_addr,
            dst_addr,
            proto,
            dport=query.port,
            icmp_type=query.icmp_type,
            icmp_code=query.icmp_code,
        )
    except ValueError as exc:
        raise ExplainError(str(exc)) from exc
    if snap.host not in (src_port.host, dst_port.host if dst_port else None):
        raise ExplainError(f"neither end is bound to {snap.host}: ask the agent of their host")
    tracer = _Tracer(snap, state, family)
    src_host = src_port.host or UNKNOWN
    path = [Hop(src_host, "tap", src_port.device_name, f"port {src_port.id}")]
    path += _hybrid_hops(snap, src_host, src_port)
    checks: list[Check] = []
    path_drop: str | None = None
    src_rs = rulesets.build(snap, src_host, family, _planned(snap, src_host))
    checks.append(tracer.antispoof(src_port, pkt, src_rs))
    routed = _routed(snap, src_port, dst_port, pkt)
    if routed is not None and routed.host == src_host:
        next_dev = routed.in_device.host_name
    elif routed is not None:
        next_dev = _segment(snap, src_port.network_id).other
    elif dst_port is not None and dst_port.host == src_host:
        next_dev = dst_port.device_name
    else:
        next_dev = _segment(snap, src_port.network_id).other
    egress_ctx = _filter_context(snap, src_port, "egress", next_dev)
    checks.append(tracer.security_group("egress", src_port, pkt, egress_ctx, src_rs))
    delivered: str | None = None
    if routed is not None:
        router_host = routed.host or UNKNOWN
        path += _segment(snap, src_port.network_id).hops(src_host, router_host)
        path.append(Hop(router_host, "router", routed.namespace, f"in {routed.in_device.name}"))
        path += [Hop(router_host, "router", routed.namespace, step) for step in routed.nat]
        dst_port = None
        if routed.drop is not None:
            path_drop = routed.drop
        elif routed.out_device is not None and routed.out_device.gateway:
            via = f" via {routed.nexthop}" if routed.nexthop else ""
            path.append(
                Hop(router_host, "gateway", routed.out_device.name,
                    f"external network {routed.out_network}{via}, as {routed.packet.summary()}")
            )  # fmt: skip
            delivered = f"left router {routed.router.id} on {router_host} by its gateway"
        elif routed.out_device is not None and routed.out_network is not None:
            path.append(Hop(router_host, "router", routed.out_device.name, "out"))
            dst_port = _by_address(snap, routed.packet.dst)
            if dst_port is None or dst_port.network_id != routed.out_network:
                dst_port = None
                delivered = (
                    f"sent by router {routed.router.id} on network {routed.out_network}; no "
                    f"port with {routed.packet.dst} there is known on {snap.host}"
                )
            else:
                checks.append(
                    _deliver(
                        snap, tracer, path, router_host, routed.out_device.host_name, dst_port,
                        routed.packet, src_rs if router_host == src_host else None,
                    )
                )  # fmt: skip
    elif dst_port is None or dst_port.network_id != src_port.network_id:
        owner = "" if dst_port is None else f" (port {dst_port.id} is on another network)"
        path_drop = (
            f"no port on network {src_port.network_id} has {dst_addr}{owner}, and no router "
            "is on it: nothing on this segment answers"
        )
    else:
        checks.append(
            _deliver(snap, tracer, path, src_host, src_port.device_name, dst_port, pkt, src_rs)
        )
        segment = _segment(snap, src_port.network_id)
        dst_host = dst_port.host or UNKNOWN
        if dst_host != src_host and src_host == snap.host and segment.peerless(dst_host):
            path_drop = f"no tunnel peer for host {dst_host} on network {src_port.network_id}"
    verdict, where = PASS, ""
    for check in checks:
        if check.name == "ingress security group" and path_drop:
            break
        if check.verdict == DROP:
            verdict, where = DROP, f"{check.name} of port {check.port} on {check.host}"
            break
        if check.verdict == NOT_EVALUATED:
            verdict, where = UNKNOWN, f"{check.name} on {check.host}: {check.reason}"
            break
    if verdict == PASS and path_drop:
        verdict, where = DROP, path_drop
    if verdict == PASS and dst_port is not None:
        where = f"delivered to {dst_port.device_name} on {dst_port.host}"
    elif verdict == PASS and delivered is not None:
        where = delivered
    if tracer.mismatches:
        tracer.notes.append(
            "the kernel differs from the desired state on this path: the verdict above is the "
            "desired state's, the packet may do otherwise until the agent rewrites the chains "
            "(integrity check)"
        )
    remote = sorted({c.host for c in checks if c.source == "desired state"})
    if remote:
        tracer.notes.append(
            "checks on " + ", ".join(remote) + " come from the desired state: run explain "
            "on that host to tie them to its kernel"
        )
    return Explanation(
        live=_live(state, pkt)
        if snap.host in (src_host, dst_port.host if dst_port else None)
        else None,
        packet=pkt,
        source_port=src_port.id,
        destination_port=dst_port.id if dst_port else None,
        path=tuple(path),
        checks=tuple(checks),
        verdict=verdict,
        where=where,
        mismatches=tuple(tracer.mismatches.values()),
        notes=tuple(tracer.notes),
        complete=verdict != UNKNOWN,
    )


@dataclasses.dataclass(frozen=True)
class _Segment:
    """A network's segment as the hosts see it: the bridge and what leaves the host."""

    network_id: str
    network_type: str
    vni: int | None
    peers: Mapping[str, IPAddress]
    ovs: OvsInfo | None = None

    @property
    def bridge(self) -> str:
        if self.ovs is not None:
            return self.ovs.integration_bridge
        return names.network_bridge(self.network_id)

    @property
    def other(self) -> str:
        """The bridge port towards other hosts (the VXLAN device or the uplink); on Open
        vSwitch the tunnel bridge."""
        if self.ovs is not None and self.network_type == "vxlan":
            return self.ovs.tunnel_bridge
        return _other_side(self.network_type, self.vni)

    @property
    def bridge_detail(self) -> str:
        detail = f"network {self.network_id}"
        if self.ovs is not None:
            vlan = self.ovs.local_vlans.get(self.network_id)
            detail += f", local VLAN {vlan if vlan is not None else 'unknown'}"
        return detail

    def peerless(self, host: str) -> bool:
        return self.network_type == "vxlan" and self.peers.get(host) is None

    def hops(self, from_host: str, to_host: str) -> list[Hop]:
        """From a device on ``from_host``'s bridge to ``to_host``'s bridge (included)."""
        detail = self.bridge_detail
        path = [Hop(from_host, "bridge", self.bridge, detail)]
        if to_host == from_host:
            return path
        if self.network_type == "vxlan":
            peer = self.peers.get(to_host)
            path.append(
                Hop(from_host, "vxlan", self.other, f"VNI {self.vni} to {to_host} ({peer})")
            )
            path.append(Hop(to_host, "host", to_host, f"VTEP {peer or '(its own)'}"))
            path.append(Hop(to_host, "vxlan", self.other, f"VNI {self.vni}"))
        else:
            path.append(Hop(from_host, "uplink", self.other, f"{self.network_type} network"))
            path.append(Hop(to_host, "uplink", self.other, f"{self.network_type} network"))
        path.append(Hop(to_host, "bridge", self.bridge, detail))
        return path


def _segment(snap: Snapshot, network_id: str) -> _Segment:
    info = snap.networks.get(network_id)
    if info is None:
        return _Segment(network_id, "unknown", None, {}, snap.ovs)
    return _Segment(
        network_id, info.network_type, info.segmentation_id, info.tunnel_peers, snap.ovs
    )


def _deliver(  # noqa: PLR0917 - the two call sites name every argument's role
    snap: Snapshot,
    tracer: _Tracer,
    path: list[Hop],
    from_host: str,
    from_device: str,
    dst_port: Port,
    pkt: Packet,
    local_rs: rulesets.Ruleset | None,
) -> Check:
    """Add the hops from ``from_device`` (on ``from_host``) to ``dst_port``'s tap and
    return the ingress security group check there.

    :param local_rs: the ruleset of ``from_host`` if already built (reused when the
        destination is on the same host)
    """
    segment = _segment(snap, dst_port.network_id)
    dst_host = dst_port.host or UNKNOWN
    path += segment.hops(from_host, dst_host)
    path += _hybrid_hops(snap, dst_host, dst_port)
    path.append(Hop(dst_host, "tap", dst_port.device_name, f"port {dst_port.id}"))
    if dst_host == from_host and local_rs is not None:
        rs = local_rs
    else:
        rs = rulesets.build(snap, dst_host, tracer.family, _planned(snap, dst_host))
    came_by = from_device if dst_host == from_host else segment.other
    ctx = _filter_context(snap, dst_port, "ingress", came_by)
    return tracer.security_group("ingress", dst_port, pkt, ctx, rs)


def _hybrid_hops(snap: Snapshot, host: str, port: Port) -> list[Hop]:
    """The hybrid plug between a tap and br-int on Open vSwitch hosts with a firewall:
    the port's own Linux bridge ``qbr`` (where the firewall filters it)."""
    if snap.ovs is None or not snap.firewall:
        return []
    detail = f"hybrid plug of port {port.id}: firewall here, veth to {snap.ovs.integration_bridge}"
    return [Hop(host, "bridge", names.hybrid_bridge(port.id), detail)]


def _filter_context(snap: Snapshot, port: Port, direction: str, other: str) -> Context:
    """Where the firewall sees ``port``'s packet: on Linux bridge the network's bridge
    between the tap and ``other`` (the next bridge port); on Open vSwitch the port's own
    hybrid bridge ``qbr`` between the tap and the veth ``qvb`` to br-int."""
    if snap.ovs is not None:
        bridge = names.hybrid_bridge(port.id)
        other = names.hybrid_veth_bridge_side(port.id)
    else:
        bridge = names.network_bridge(port.network_id)
    if direction == "egress":
        return Context(bridge, port.device_name, other)
    return Context(bridge, other, port.device_name)


def _routed(
    snap: Snapshot, src_port: Port, dst_port: Port | None, pkt: Packet
) -> routing.Routed | None:
    """The router hop when the destination is off the source's subnets, else None."""
    if dst_port is not None and dst_port.network_id == src_port.network_id:
        return None
    router = routing.router_for(snap, src_port)
    if router is None:
        return None
    local = [
        s.cidr
        for rp in router.interfaces
        if rp.network_id == src_port.network_id
        for s in rp.subnets
    ]
    if any(pkt.dst.version == net.version and pkt.dst in net for net in local):
        return None  # on the source's own subnet: not routed
    try:
        return routing.route(snap, src_port, pkt)
    except ValueError as exc:
        raise ExplainError(f"router {router.id}: {exc}") from exc


def _live(state: kernel.KernelState | None, pkt: Packet) -> tuple[str, ...] | None:
    """This host's conntrack entries of ``pkt``'s flow (original direction)."""
    if state is None or state.conntrack is None:
        return None
    found = sorted(
        (e.zone, e.sport or 0, e.tcp_state)
        for e in state.conntrack
        if (e.proto, e.src, e.dst) == (pkt.proto, pkt.src, pkt.dst)
        and (pkt.dport is None or e.dport == pkt.dport)
    )
    return tuple(
        f"zone {zone}"
        + (f", source port {sport}" if sport else "")
        + (f", {conntrack.tcp_state_name(tcp)}" if tcp is not None else "")
        for zone, sport, tcp in found
    )


def _planned(snap: Snapshot, host: str) -> frozenset[str] | None:
    return snap.planned if host == snap.host else None
