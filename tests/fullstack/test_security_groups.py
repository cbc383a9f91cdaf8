"""End to end: agents with ``firewall_driver = iptables`` from a state file, on Linux
bridge hosts and on Open vSwitch hosts with os-vif's hybrid plug (the tap in
``qbr<port>``, the veth ``qvb``/``qvo`` to br-int; ``tests/fullstack/ovs_host.py``), with
both iptables backends. Every check runs on both plugs: a security group rule change in
the file changes what passes between two VMs (two hosts and one host); an allowed TCP
port passes and another does not; MAC, IPv4, ARP and neighbour-advertisement spoofing
from a VM's namespace reaches neither another VM, nor br-int (hybrid plug), nor the
host's stack (each with the same frame unspoofed as control where that may pass: the
host guard keeps every VM frame from the host's stack); per-network conntrack zones keep
two networks with the same addresses apart. Assertions are on packets only."""

from __future__ import annotations

import ipaddress
import os
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from netagent.common import names
from tests.common import frames, traffic
from tests.common.ovs import PrivateOvs
from tests.fullstack import harness, ovs_host
from tests.fullstack.harness import Fabric, Host, Vm, can_ping, wait_for

SG = str(uuid.uuid4())
#: egress only: nothing may reach its ports
CLOSED_SG = str(uuid.uuid4())
AGENT_EXTRA = "[agent]\nfirewall_driver = iptables\n[iptables]\nbackend = {backend}\n"
PLUGS = ("linuxbridge", "ovs-hybrid")
BACKENDS = ("nft", "legacy")
TCP_OPEN, TCP_SHUT = 5001, 5002
UDP_OPEN = 7000
FOREIGN4 = "198.51.100.200"
FOREIGN6 = "fd00:5::c8"
FOREIGN_MAC = "fa:16:3e:aa:bb:cc"
BROADCAST = "ff:ff:ff:ff:ff:ff"
ALL_NODES = "ff02::1"


def _rule(direction: str, **kw: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "direction": direction, "ethertype": "IPv4", **kw}


def _rules(icmp_in: bool, ingress: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rules = [_rule("egress"), *ingress]
    if icmp_in:
        rules.append(_rule("ingress", protocol="icmp", remote_group_id=SG))
    return rules


class SecuredFabric(Fabric):
    """The harness fabric with security group SG on every port (CLOSED_SG on the ports
    in ``closed_ports``), hosts and VMs made for the test's plug."""

    icmp_in = False
    #: more ingress rules of SG
    ingress: list[dict[str, Any]]
    closed_ports: set[str]
    plug: str
    switches: dict[str, PrivateOvs]

    def state(self) -> dict[str, Any]:
        doc = super().state()
        doc["security_groups"] = [
            {"id": SG, "name": "web", "security_group_rules": _rules(self.icmp_in, self.ingress)},
            {"id": CLOSED_SG, "name": "closed", "security_group_rules": [_rule("egress")]},
        ]
        for port in doc["ports"]:
            port["security_groups"] = [CLOSED_SG if port["id"] in self.closed_ports else SG]
        return doc

    @property
    def hybrid(self) -> bool:
        return self.plug == "ovs-hybrid"

    def add_plugged_host(self, name: str, tunnel_ip: str) -> Host:
        if self.hybrid:
            return ovs_host.add_ovs_host(self, self.switches, name, tunnel_ip)
        return self.add_host(name, tunnel_ip)

    def add_plugged_vm(self, name: str, host: Host, net: str, cidr: str) -> Vm:
        """A VM whose tap Nova/os-vif plugged (Linux bridge: netagent enslaves it)."""
        vm = self.add_vm(name, host, net, cidr)
        if self.hybrid:
            ovs_host.plug_like_os_vif(self.switches[host.name], vm, hybrid=True)
        return vm

    def start_secured(self, backend: str) -> None:
        self.write_state()
        for host in self.hosts.values():
            host.write_config(self.state_file, AGENT_EXTRA.format(backend=backend))
            host.start_agent()

    def wired(self, vm: Vm) -> bool:
        if self.hybrid:
            return ovs_host.wired(self.switches[vm.host.name], vm)
        return super().wired(vm)

    def bridge_of(self, vm: Vm) -> str:
        """The Linux bridge the VM's tap is in (the host's side of the filter)."""
        if self.hybrid:
            return names.hybrid_bridge(vm.port_id)
        return names.network_bridge(vm.network_id)

    def converged(self) -> None:
        wait_for(
            "agents converged",
            lambda: all(h.status().returncode == 0 for h in self.hosts.values()),
            timeout=30,
        )


@pytest.fixture(params=PLUGS)
def secured(fabric: Fabric, request: pytest.FixtureRequest) -> SecuredFabric:
    fabric.__class__ = SecuredFabric
    assert isinstance(fabric, SecuredFabric)
    fabric.plug = request.param
    fabric.ingress, fabric.closed_ports, fabric.switches = [], set(), {}
    if fabric.hybrid:  # private OVS per host; skips where Open vSwitch is not installed
        fabric.switches = request.getfixturevalue("switches")
    return fabric


@pytest.mark.parametrize("backend", BACKENDS)
def test_rule_change_in_state_file_changes_traffic(secured: SecuredFabric, backend: str) -> None:
    host_a = secured.add_plugged_host("host-a", "198.18.0.1")
    host_b = secured.add_plugged_host("host-b", "198.18.0.2")
    net = secured.add_network(1001)
    vm1 = secured.add_plugged_vm("vm1", host_a, net, "192.0.2.10/24")
    vm2 = secured.add_plugged_vm("vm2", host_b, net, "192.0.2.11/24")
    vm3 = secured.add_plugged_vm("vm3", host_a, net, "192.0.2.12/24")
    secured.start_secured(backend)
    secured.wait_wired(vm1, vm2, vm3)
    # wired and filtered, but no ingress rule yet: nothing answers a ping
    secured.converged()
    assert not can_ping(vm1.netns, vm2.address)
    assert not can_ping(vm1.netns, vm3.address)
    # allow ICMP from the group: both the cross-host and the same-host pair work
    secured.icmp_in = True
    secured.write_state()
    secured.wait_ping(vm1, vm2, timeout=30)
    secured.wait_ping(vm1, vm3, timeout=30)
    # and take it away again
    secured.icmp_in = False
    secured.write_state()
    wait_for("ping blocked again", lambda: not can_ping(vm1.netns, vm2.address), timeout=30)
    assert not can_ping(vm3.netns, vm1.address)
    assert all(h.agent_alive() for h in (host_a, host_b)), harness.Fabric.diagnostics(secured)


# -- spoofing ---------------------------------------------------------------------------


def _arp(sender_mac: str, sender_ip: str, target_ip: str) -> bytes:
    """An ARP reply (op 2, gratuitous when ``target_ip`` is ``sender_ip``)."""
    return (
        bytes.fromhex("0001080006040002")
        + frames.mac_bytes(sender_mac)
        + ipaddress.IPv4Address(sender_ip).packed
        + bytes(6)
        + ipaddress.IPv4Address(target_ip).packed
    )


#: name -> (builder of the spoofed frame, builder of the same frame unspoofed); each
#: takes the attacker, the destination MAC and a marker the frame carries, and returns
#: (frame, what a capture looks for)
Spoof = Callable[[Vm, str, bytes], tuple[bytes, bytes]]


def _udp(src_mac: Callable[[Vm], str], src_ip: Callable[[Vm], str]) -> Spoof:
    def build(vm: Vm, dst_mac: str, magic: bytes) -> tuple[bytes, bytes]:
        dst = "192.0.2.20"  # the victim's
        packet = frames.udp4(src_ip(vm), dst, 40000, UDP_OPEN, magic)
        return frames.ethernet(dst_mac, src_mac(vm), frames.ETH_IPV4, packet), magic

    return build


def _arp_reply(sender_mac: Callable[[Vm], str], sender_ip: Callable[[Vm], str]) -> Spoof:
    def build(vm: Vm, dst_mac: str, magic: bytes) -> tuple[bytes, bytes]:
        arp = _arp(sender_mac(vm), sender_ip(vm), sender_ip(vm))
        # ARP carries no payload: the marker is in the padding, the capture looks for
        # the ARP body (unique per attacker and case)
        return frames.ethernet(BROADCAST, vm.mac, 0x0806, arp + magic), arp[8:18]

    return build


def _neighbour_advert(target: Callable[[Vm], str]) -> Spoof:
    def build(vm: Vm, dst_mac: str, magic: bytes) -> tuple[bytes, bytes]:
        na = frames.neighbour_advert(target(vm), frames.nd_option(2, vm.mac))
        packet = frames.icmp6(frames.link_local(vm.mac), ALL_NODES, na)
        mcast = frames.ipv6_multicast_mac(ALL_NODES)
        frame = frames.ethernet(mcast, vm.mac, frames.ETH_IPV6, packet)
        return frame, ipaddress.IPv6Address(target(vm)).packed

    return build


def _own_mac(vm: Vm) -> str:
    return vm.mac


def _own_ip(vm: Vm) -> str:
    return vm.address


SPOOFS: dict[str, tuple[Spoof, Spoof]] = {
    "ipv4-source": (_udp(_own_mac, lambda vm: FOREIGN4), _udp(_own_mac, _own_ip)),
    "mac-source": (_udp(lambda vm: FOREIGN_MAC, _own_ip), _udp(_own_mac, _own_ip)),
    "arp-sender-ip": (_arp_reply(_own_mac, lambda vm: FOREIGN4), _arp_reply(_own_mac, _own_ip)),
    "arp-sender-mac": (
        _arp_reply(lambda vm: FOREIGN_MAC, _own_ip),
        _arp_reply(_own_mac, _own_ip),
    ),
    "nd-target": (
        _neighbour_advert(lambda vm: FOREIGN6),
        _neighbour_advert(lambda vm: frames.link_local(vm.mac)),
    ),
}


def _arrivals(netns: str, device: str, attacker: Vm, frame: bytes, marker: bytes) -> int:
    with frames.Capture(netns, device, marker) as capture:
        frames.send(attacker.netns, "eth0", [frame])
        return capture.count()


@pytest.mark.parametrize("backend", BACKENDS)
def test_tcp_port_rule_and_spoofing_from_a_vm(secured: SecuredFabric, backend: str) -> None:
    secured.ingress = [
        _rule("ingress", protocol="tcp", port_range_min=TCP_OPEN, port_range_max=TCP_OPEN),
        _rule("ingress", protocol="udp", port_range_min=UDP_OPEN, port_range_max=UDP_OPEN),
    ]
    host = secured.add_plugged_host("host-a", "198.18.0.1")
    net = secured.add_network(1001)
    attacker = secured.add_plugged_vm("attacker", host, net, "192.0.2.10/24")
    victim = secured.add_plugged_vm("victim", host, net, "192.0.2.20/24")
    secured.start_secured(backend)
    secured.wait_wired(attacker, victim)
    secured.converged()

    # rules: the allowed TCP port answers, the other one does not
    with traffic.whoami_server(victim.netns, "open", port=TCP_OPEN):
        wait_for(
            "allowed TCP port answers",
            lambda: traffic.ask(attacker.netns, victim.address, TCP_OPEN).startswith("open"),
            timeout=30,
        )
    with traffic.whoami_server(victim.netns, "shut", port=TCP_SHUT):
        assert traffic.ask(attacker.netns, victim.address, TCP_SHUT) == ""

    # where a frame from the attacker may show up: the other VM; with the hybrid plug,
    # br-int's side of the attacker's veth (towards other VMs, hosts and routers); the
    # host's own stack through the attacker's bridge (the host guard's side)
    places = {"vm": (victim.netns, "eth0")}
    if secured.hybrid:
        places["br-int"] = (host.netns, names.hybrid_veth_ovs_side(attacker.port_id))
    places["host stack"] = (host.netns, secured.bridge_of(attacker))
    results: dict[str, tuple[int, int]] = {}
    for name, (spoofed, honest) in SPOOFS.items():
        for where, (netns, device) in places.items():
            got: list[int] = []
            for build in (spoofed, honest):
                frame, marker = build(attacker, victim.mac, os.urandom(8))
                got.append(_arrivals(netns, device, attacker, frame, marker))
            results[f"{name} to {where}"] = (got[0], got[1])
    assert not {k: v for k, v in results.items() if v[0]}, results  # no spoofed frame
    # controls: the same frames unspoofed get out of the VM's bridge; none reaches the
    # host's stack (the host guard takes every VM frame, spoofed or not)
    for key, (_, honest) in results.items():
        assert (honest > 0) is (not key.endswith("host stack")), (key, results)
    assert host.agent_alive(), secured.diagnostics()


# -- conntrack zones --------------------------------------------------------------------

X_IP, Y_IP = "192.0.2.10", "192.0.2.20"
P, Q = 40001, 40002


def _send_udp(vm: Vm, sport: int, dst: str, dport: int, payload: bytes) -> None:
    sock = traffic.udp_socket(vm.netns, vm.address, sport)
    with sock:
        for _ in range(3):
            sock.sendto(payload, (dst, dport))


def _received(vm: Vm, port: int, send: Callable[[bytes], None]) -> int:
    magic = os.urandom(8)
    with frames.UdpListener(vm.netns, vm.address, port, magic) as listener:
        send(magic)
        return listener.count()


@pytest.mark.parametrize("backend", BACKENDS)
def test_conntrack_zones_keep_overlapping_networks_apart(
    secured: SecuredFabric, backend: str
) -> None:
    """X and Y on network A, X' and Y' on network B with the same addresses. X -> Y
    makes a conntrack entry in A; Y' then sends X' exactly Y's reply 5-tuple. X' has no
    ingress rule: it must get nothing (without zones the entry of A makes it
    ESTABLISHED and it passes)."""
    secured.ingress = [_rule("ingress", protocol="udp")]
    host = secured.add_plugged_host("host-a", "198.18.0.1")
    net_a, net_b = secured.add_network(1001), secured.add_network(1002)
    x = secured.add_plugged_vm("x", host, net_a, f"{X_IP}/24")
    y = secured.add_plugged_vm("y", host, net_a, f"{Y_IP}/24")
    x2 = secured.add_plugged_vm("x2", host, net_b, f"{X_IP}/24")
    y2 = secured.add_plugged_vm("y2", host, net_b, f"{Y_IP}/24")
    secured.closed_ports = {x2.port_id}
    secured.start_secured(backend)
    secured.wait_wired(x, y, x2, y2)
    secured.converged()
    # net A: X -> Y passes (Y's group allows UDP in) and leaves the entry X:P -> Y:Q
    wait_for(
        "X -> Y",
        lambda: _received(y, Q, lambda m: _send_udp(x, P, Y_IP, Q, m)) > 0,
        timeout=30,
    )
    # net B: Y' sends X' the reply 5-tuple of that entry
    assert _received(x2, P, lambda m: _send_udp(y2, Q, X_IP, P, m)) == 0
    # control: the same datagram reaches X (net A, open) from Y
    assert _received(x, P, lambda m: _send_udp(y, Q, X_IP, P, m)) > 0
    assert host.agent_alive(), secured.diagnostics()
