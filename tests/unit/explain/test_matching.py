"""The explainer's rule semantics: the interpreter walks the compiler's rule objects."""

from __future__ import annotations

import dataclasses
import ipaddress
import uuid
from typing import Any

import pytest

from netagent.drivers.iptables_firewall import compiler as comp
from netagent.explain import iptables_eval, packet, snapshot, trace
from netagent.explain.iptables_eval import Context, NotModelledError
from netagent.explain.packet import Packet
from netagent.linux.iptables.rules import U32, DPortRange, Proto, Rule, SetMatch
from netagent.linux.iptables.targets import DROP, RETURN, Jump, SetMark
from netagent.model.secgroup import Direction, SecurityGroup
from tests.unit.explain import topology as t

MARK = 0x1000000
SETS: dict[str, frozenset[Any]] = {}
CTX = Context("brqx", "tap0", "tap1")


def _pkt(proto: int, dport: int | None = None, src: str = "192.0.2.10", **kw: Any) -> Packet:
    dst = "192.0.2.20" if ":" not in src else "fd00::20"
    return Packet(ipaddress.ip_address(src), ipaddress.ip_address(dst), proto, dport, **kw)


def _group(*rules: dict[str, Any]) -> SecurityGroup:
    gid = str(uuid.uuid4())
    return SecurityGroup.from_api(
        {"id": gid, "security_group_rules": [{"direction": "ingress", **r} for r in rules]}
    )


def _allows(group: SecurityGroup, pkt: Packet, sets: dict[str, Any] | None = None) -> bool:
    """Whether the group's ingress chain sets the mark for ``pkt``."""
    chains = {"FORWARD": comp.group_rules(group, Direction.INGRESS, pkt.family, MARK)}
    chains["FORWARD"].append(Rule((), DROP))
    outcome = iptables_eval.walk(chains, "FORWARD", pkt, CTX, sets or SETS)
    return any(isinstance(s.rule.target, SetMark) for s in outcome.steps)


@pytest.mark.parametrize("protocol", [0, "0", "000", "hopopt", "any", None])
def test_protocol_zero_means_any(protocol: object) -> None:
    rule: dict[str, Any] = {} if protocol is None else {"protocol": protocol}
    group = _group(rule)
    for proto in (6, 17, 1, 47, 132):
        assert _allows(group, _pkt(proto, 80 if proto in (6, 17, 132) else None))


@pytest.mark.parametrize(
    ("port", "allowed"), [(79, False), (80, True), (85, True), (90, True), (91, False)]
)
def test_port_range_bounds(port: int, allowed: bool) -> None:
    group = _group({"protocol": "tcp", "port_range_min": 80, "port_range_max": 90})
    assert _allows(group, _pkt(6, port)) is allowed
    assert not _allows(group, _pkt(17, port))


def test_protocol_by_number_is_the_named_protocol() -> None:
    group = _group({"protocol": "17", "port_range_min": 53, "port_range_max": 53})
    assert _allows(group, _pkt(17, 53))
    assert not _allows(group, _pkt(6, 53))


@pytest.mark.parametrize(
    ("rule", "icmp_type", "code", "allowed"),
    [
        ({"port_range_min": 8}, 8, 0, True),
        ({"port_range_min": 8}, 8, 1, True),
        ({"port_range_min": 8}, 0, 0, False),
        ({"port_range_min": 8, "port_range_max": 0}, 8, 0, True),
        ({"port_range_min": 8, "port_range_max": 0}, 8, 1, False),
        ({}, 13, 0, True),
    ],
)
def test_icmp_type_and_code(
    rule: dict[str, Any], icmp_type: int, code: int, allowed: bool
) -> None:
    group = _group({"protocol": "icmp", **rule})
    assert _allows(group, _pkt(1, icmp_type=icmp_type, icmp_code=code)) is allowed


def test_remote_prefix() -> None:
    group = _group({"protocol": "tcp", "remote_ip_prefix": "192.0.2.0/28"})
    assert _allows(group, _pkt(6, 22, src="192.0.2.15"))
    assert not _allows(group, _pkt(6, 22, src="192.0.2.16"))


def test_remote_group_is_an_ipset_of_members() -> None:
    remote = str(uuid.uuid4())
    group = _group({"protocol": "udp", "remote_group_id": remote})
    name = comp.names.ipset_name(4, remote)
    sets = {name: frozenset({ipaddress.ip_network("192.0.2.64/28")})}
    assert _allows(group, _pkt(17, 53, src="192.0.2.70"), sets)
    assert not _allows(group, _pkt(17, 53, src="192.0.2.80"), sets)
    assert not _allows(group, _pkt(17, 53, src="192.0.2.70"))


def test_ethertype_keeps_families_apart() -> None:
    group = _group({"protocol": "tcp"})
    assert _allows(group, _pkt(6, 22))
    assert not _allows(group, _pkt(6, 22, src="fd00::10"))
    v6 = _group({"ethertype": "IPv6", "protocol": "icmp"})
    assert _allows(v6, _pkt(58, src="fd00::10"))


def test_goto_returns_to_the_callers_caller_and_marks_are_not_terminal() -> None:
    chains = {
        "FORWARD": [Rule((), Jump("a")), Rule((Proto(6),), DROP)],
        "a": [Rule((), Jump("b", goto=True)), Rule((), DROP)],
        "b": [Rule((), SetMark(MARK, MARK)), Rule((Proto(17),), RETURN)],
    }
    tcp = iptables_eval.walk(chains, "FORWARD", _pkt(6, 1), CTX, SETS)
    assert tcp.verdict == "DROP"
    assert [(s.chain, s.index) for s in tcp.steps] == [
        ("FORWARD", 1),
        ("a", 1),
        ("b", 1),
        ("FORWARD", 2),
    ]
    udp = iptables_eval.walk(chains, "FORWARD", _pkt(17, 1), CTX, SETS)
    assert udp.verdict == "ACCEPT"


def test_unknown_match_is_not_guessed() -> None:
    chains = {"FORWARD": [Rule((Proto(58), U32(((4, 0xFF00, 0x3A00),))), DROP)]}
    with pytest.raises(NotModelledError):
        iptables_eval.walk(chains, "FORWARD", _pkt(58, src="fd00::1"), CTX, SETS)
    missing = {"FORWARD": [Rule((SetMatch("na4nothere"), DPortRange(1, 2)), Jump("gone"))]}
    assert iptables_eval.walk(missing, "FORWARD", _pkt(6, 1), CTX, SETS).verdict == "ACCEPT"


@pytest.mark.parametrize(
    ("text", "family", "number"),
    [("tcp", 4, 6), ("UDP", 4, 17), ("icmp", 4, 1), ("icmp", 6, 58), ("47", 4, 47)],
)
def test_parse_protocol(text: str, family: int, number: int) -> None:
    assert packet.parse_protocol(text, family) == number


@pytest.mark.parametrize("text", ["0", "256", "bogus", "-1"])
def test_parse_protocol_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        packet.parse_protocol(text, 4)


def test_packet_needs_a_port_for_tcp_and_none_for_icmp() -> None:
    with pytest.raises(ValueError):
        _pkt(6)
    with pytest.raises(ValueError):
        _pkt(1, 80)
    assert _pkt(1).icmp_type == 8
    assert _pkt(58, src="fd00::1").icmp_type == 128


# -- whole explanations on the small topology -----------------------------------------


def _explain(**kw: Any) -> trace.Explanation:
    return trace.explain(t.snap(), trace.Query(**kw), None)


def test_stateless_group_gets_no_conntrack_and_protocol_zero_passes() -> None:
    exp = _explain(source=t.VM1, destination=t.VM4, protocol="47")
    ingress = exp.checks[2]
    assert exp.verdict == "pass"
    assert (ingress.security_group, ingress.rule_id) == (t.ADM, t.R_ANY)
    assert ingress.rule == "ingress IPv4 any protocol from anywhere"
    assert ingress.conntrack is not None and ingress.conntrack.startswith("stateless")


def test_spoofed_source_drops_at_anti_spoofing() -> None:
    exp = _explain(
        source=t.VM1, destination=t.VM3, protocol="tcp", port=22, source_ip="192.0.2.99"
    )
    assert exp.verdict == "drop"
    assert exp.where.startswith("anti-spoofing")
    assert exp.checks[0].implemented_by[-1].chain == "na-eb-tail"


def test_allowed_pair_source_passes_anti_spoofing_and_is_a_remote_group_member() -> None:
    exp = _explain(
        source=t.VM1, destination=t.VM3, protocol="tcp", port=22, source_ip="192.0.2.70"
    )
    assert exp.verdict == "pass"
    assert "allowed address pair 192.0.2.64/28" in exp.checks[0].reason
    assert exp.checks[2].rule_id == t.R_SSH


def test_default_deny_names_the_profile_drop() -> None:
    exp = _explain(source=t.VM1, destination=t.VM3, protocol="udp", port=53)
    ingress = exp.checks[2]
    assert (exp.verdict, ingress.verdict) == ("drop", "drop")
    assert ingress.reason.startswith("default deny")
    assert ingress.implemented_by[0].chain.startswith("na-pi-")
    assert ingress.implemented_by[0].text.endswith("-j DROP")


def test_cross_host_path_names_vni_and_peer() -> None:
    exp = _explain(source="192.0.2.10", destination="192.0.2.20", protocol="icmp")
    kinds = [(h.host, h.kind, h.name) for h in exp.path]
    assert ("host-a", "vxlan", "nvx-1001") in kinds
    assert ("host-b", "tap", "tapb2000000-00") in kinds
    assert exp.verdict == "pass"
    assert exp.checks[2].source == "desired state"
    assert exp.checks[2].rule_id == t.R_ICMP


def test_unknown_address_drops_on_the_segment() -> None:
    exp = _explain(source=t.VM1, destination="192.0.2.99", protocol="udp", port=53)
    assert exp.verdict == "drop"
    assert exp.destination_port is None
    assert "no port on network" in exp.where


def test_unknown_ports_and_foreign_hosts_are_refused() -> None:
    with pytest.raises(trace.ExplainError):
        _explain(source="192.0.2.99", destination=t.VM2, protocol="tcp", port=1)
    with pytest.raises(trace.ExplainError):
        _explain(source="deadbeef", destination=t.VM2, protocol="tcp", port=1)
    with pytest.raises(trace.ExplainError):
        trace.explain(t.snap("host-b"), trace.Query(t.VM1, t.VM3, "tcp", 1), None)


def test_unsecured_port_is_not_filtered() -> None:
    snap = t.snap()
    ports = dict(snap.ports)
    ports[t.VM3] = dataclasses.replace(
        ports[t.VM3], port_security_enabled=False, security_groups=()
    )
    snap = dataclasses.replace(snap, ports=ports)
    exp = trace.explain(snap, trace.Query(t.VM1, t.VM3, "udp", 53), None)
    assert exp.verdict == "pass"
    assert exp.checks[2].reason == "port security disabled: not filtered"


def test_excluded_port_forwards_nothing() -> None:
    fw = {"backend": "nft", "mark": MARK, "excluded": {t.VM3: "chain refused"}, "bad_groups": {}}
    exp = trace.explain(t.snap(firewall=fw), trace.Query(t.VM1, t.VM3, "tcp", 22), None)
    assert exp.verdict == "drop"
    assert "chain refused" in exp.checks[2].reason


def test_no_firewall_driver_passes_everything() -> None:
    exp = trace.explain(t.snap(firewall={}), trace.Query(t.VM1, t.VM3, "udp", 53), None)
    assert exp.verdict == "pass"
    assert all("no firewall driver" in c.reason for c in exp.checks)


def test_open_vswitch_path_names_br_int_with_the_local_vlan_and_br_tun() -> None:
    l2 = {
        "driver": "openvswitch",
        "integration_bridge": "br-int",
        "tunnel_bridge": "br-tun",
        "networks": {t.NET: {"local_vlan": 7, "kind": "vxlan"}},
    }
    snap = snapshot.parse(t.document(), {}, l2)
    exp = trace.explain(snap, trace.Query("192.0.2.10", "192.0.2.20", "icmp"), None)
    hops = [(h.host, h.kind, h.name, h.detail) for h in exp.path]
    assert ("host-a", "bridge", "br-int", f"network {t.NET}, local VLAN 7") in hops
    assert ("host-a", "vxlan", "br-tun", "VNI 1001 to host-b (198.18.0.2)") in hops
    assert not any(name.startswith("brq") for _, _, name, _ in hops)
    with pytest.raises(ValueError, match="invalid l2 driver description"):
        snapshot.parse(t.document(), {}, {**l2, "networks": {t.NET: {"local_vlan": 9999}}})
    assert snapshot.parse(t.document(), {}, {"driver": "linuxbridge"}).ovs is None


def test_open_vswitch_hybrid_ports_are_filtered_on_their_qbr_bridges() -> None:
    """With the hybrid plug each tap sits on its own qbr bridge, its veth qvb the other
    bridge port: the security groups are walked with those names (on br-int no hook of
    the firewall would match, and everything would seem to pass)."""
    l2 = {
        "driver": "openvswitch",
        "integration_bridge": "br-int",
        "tunnel_bridge": "br-tun",
        "networks": {t.NET: {"local_vlan": 7, "kind": "vxlan"}},
    }
    fw = {"backend": "nft", "mark": MARK, "excluded": {}, "bad_groups": {}}
    snap = snapshot.parse(t.document(), fw, l2)
    exp = trace.explain(snap, trace.Query(t.VM1, t.VM3, "udp", 53), None)
    egress, ingress = exp.checks[1], exp.checks[2]
    assert (exp.verdict, ingress.verdict) == ("drop", "drop")
    assert ingress.reason.startswith("default deny")
    assert ingress.implemented_by[-1].text.endswith("-j DROP")
    assert egress.reason == "allowed by a rule"
    allowed = trace.explain(snap, trace.Query(t.VM1, t.VM3, "tcp", 22), None)
    assert allowed.verdict == "pass" and allowed.checks[2].rule_id == t.R_SSH
    names = [(h.kind, h.name) for h in allowed.path]
    qbr = [name for kind, name in names if name.startswith("qbr")]
    assert qbr == [f"qbr{t.VM1[:11]}", f"qbr{t.VM3[:11]}"], names
    assert names.index(("bridge", qbr[0])) == 1 and names[-2] == ("bridge", qbr[1])
