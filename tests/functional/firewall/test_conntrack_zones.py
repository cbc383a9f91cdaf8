"""Per-network conntrack zones: overlapping addresses on two networks of one host.

One host namespace, two networks (two ``brq`` bridges named after the network ids) with
the same subnet 192.0.2.0/24: VMs X and Y on net A, X' and Y' on net B with the same
addresses (different MACs). X sends UDP from port P to Y's port Q and Y replies, so net A
has an established entry. Y' then sends to X' with exactly the 5-tuple of Y's replies; X'
has no ingress rule and must not receive it. The same scenario with the driver's zone
switch off shows the packet does get through without zones (the test can fail), and that
a conntrack cleanup on net B then also deletes net A's entry.
"""

from __future__ import annotations

import ipaddress
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from netagent.common import names
from netagent.drivers.base import PortPlan
from netagent.model import DesiredState, FixedIP, Network, NetworkType, Port, SecurityGroup
from tests.functional.firewall.conftest import (
    VM,
    Listener,
    firewall_driver,
    nsrun,
    port_uuid,
    py,
    rule,
)

X_IP = "192.0.2.10"
Y_IP = "192.0.2.20"
P, Q = 40001, 40002


class TwoNets:
    """Host namespace with two bridges (nets A and B) and a driver in it."""

    def __init__(self, make_netns: Callable[[str], str], backend: str) -> None:
        self.make_netns = make_netns
        self.host = make_netns("zhost")
        self.nets = {k: str(uuid.uuid4()) for k in ("a", "b")}
        for net_id in self.nets.values():
            bridge = names.network_bridge(net_id)
            nsrun(self.host, "ip", "link", "add", bridge, "type", "bridge")
            nsrun(self.host, "ip", "link", "set", bridge, "up")
        self.networks = [
            Network(n, f"net-{k}", NetworkType.FLAT, None, "physnet1", 1500)
            for k, n in self.nets.items()
        ]
        self.ports: dict[str, Port] = {}
        self.vms: dict[str, VM] = {}
        self.plans: dict[str, PortPlan] = {}
        self.egress = rule("egress", "IPv4")
        self.open_sg = SecurityGroup(
            str(uuid.uuid4()), "open", True, (self.egress, rule("ingress", "IPv4", 17))
        )
        self.closed_sg = SecurityGroup(str(uuid.uuid4()), "closed", True, (self.egress,))
        self.fixture, self.driver = firewall_driver(self.host, backend)
        self.conf = self.fixture.conf

    def close(self) -> None:
        self.fixture.cleanUp()

    def add_vm(self, name: str, net: str, ip: str, mac: str, sg: SecurityGroup) -> VM:
        ns = self.make_netns("zvm")
        vm = VM(ns, port_uuid("c"), mac, ip, "fd00:5::1")
        veth = ("ip", "link", "add", vm.tap, "netns", self.host, "type", "veth")
        subprocess.run([*veth, "peer", "eth0", "netns", ns], check=True)
        nsrun(ns, "ip", "link", "set", "eth0", "address", mac)
        nsrun(ns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
        nsrun(ns, "ip", "link", "set", "eth0", "up")
        nsrun(ns, "ethtool", "-K", "eth0", "tx", "off", check=False)
        nsrun(self.host, "ethtool", "-K", vm.tap, "tx", "off", check=False)
        nsrun(
            self.host, "ip", "link", "set", vm.tap, "master", names.network_bridge(self.nets[net])
        )
        nsrun(self.host, "ip", "link", "set", vm.tap, "up")
        port = Port(
            id=vm.port_id,
            network_id=self.nets[net],
            mac_address=mac,
            fixed_ips=(FixedIP(None, ipaddress.ip_address(ip)),),
            host="host1",
            port_security_enabled=True,
            security_groups=(sg.id,),
        )
        self.ports[name] = port
        self.vms[name] = vm
        self.plans[name] = PortPlan(port, self.networks[0 if net == "a" else 1])
        return vm

    def state(self) -> DesiredState:
        return DesiredState.build(
            networks=self.networks,
            ports=list(self.ports.values()),
            security_groups=[self.open_sg, self.closed_sg],
        )

    def apply(self) -> None:
        out = self.driver.apply_ports(list(self.plans.values()), self.state())
        assert not out.failed, out.failed

    def entries(self, zone: int | None = None) -> str:
        zone_args = [] if zone is None else ["-w", str(zone)]
        return nsrun(self.host, "conntrack", "-L", "-p", "udp", *zone_args, check=False)


@pytest.fixture
def two(make_netns: Callable[[str], str], backend: str) -> Iterator[TwoNets]:
    t = TwoNets(make_netns, backend)
    yield t
    t.close()


def send_from(vm: VM, sport: int, dst: str, dport: int, count: int = 3) -> None:
    code = (
        "import socket,time\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
        f"s.bind(({vm.ip4!r},{sport}))\n"
        f"for _ in range({count}):\n"
        f"    s.sendto(b'spoof',({dst!r},{dport})); time.sleep(0.1)\n"
    )
    assert py(vm.ns, code).returncode == 0


def receiver(vm: VM, port: int, seconds: float) -> subprocess.Popen[str]:
    """Print ``GOT`` if a datagram reaches ``vm``'s UDP ``port`` within ``seconds``."""
    code = (
        "import socket\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        f"s.bind(({vm.ip4!r},{port})); s.settimeout({seconds}); print('READY',flush=True)\n"
        "try:\n    s.recvfrom(100); print('GOT',flush=True)\n"
        "except socket.timeout:\n    print('NONE',flush=True)\n"
    )
    proc = subprocess.Popen(
        ["ip", "netns", "exec", vm.ns, "python3", "-c", code], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    return proc


@pytest.mark.parametrize("zoned", [True, False], ids=["zones", "no-zones"])
def test_overlapping_networks_do_not_share_conntrack(two: TwoNets, zoned: bool) -> None:
    two.driver._ctz.enabled = zoned
    x = two.add_vm("x", "a", X_IP, "fa:16:3e:0a:00:10", two.closed_sg)
    y = two.add_vm("y", "a", Y_IP, "fa:16:3e:0a:00:20", two.open_sg)
    x2 = two.add_vm("x2", "b", X_IP, "fa:16:3e:0b:00:10", two.closed_sg)
    y2 = two.add_vm("y2", "b", Y_IP, "fa:16:3e:0b:00:20", two.open_sg)
    for a, b in ((x, y), (y, x), (x2, y2), (y2, x2)):
        nsrun(a.ns, "ip", "neigh", "replace", b.ip4, "lladdr", b.mac, "dev", "eth0")
    two.apply()
    zone_a = two.driver._ctz.zone_of(two.nets["a"])
    zone_b = two.driver._ctz.zone_of(two.nets["b"])
    assert zone_a != zone_b and 0 not in (zone_a, zone_b)

    # Net A: X (port P) -> Y (port Q), Y replies: an established entry X:P <-> Y:Q.
    echo = Listener(y, Q, udp=True)
    try:
        code = (
            "import socket\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(2)\n"
            f"s.bind(({X_IP!r},{P})); s.sendto(b'hi',({Y_IP!r},{Q}))\n"
            "assert s.recvfrom(10)[0]==b'hi'\n"
        )
        assert py(x.ns, code).returncode == 0, "UDP flow in net A did not work"
    finally:
        echo.stop()
    flow = f"sport={P} dport={Q}"
    if zoned:
        assert flow in two.entries(zone_a) and f"zone={zone_a}" in two.entries(zone_a)
        assert flow not in two.entries(zone_b)
    else:
        assert flow in two.entries() and "zone=" not in two.entries()

    # Net B: Y' sends with the 5-tuple of Y's replies; X' has no ingress rule.
    recv = receiver(x2, P, seconds=2.0)
    try:
        send_from(y2, Q, X_IP, P)
        out, _ = recv.communicate(timeout=10)
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait(timeout=5)
    assert out.split()[-1] == ("NONE" if zoned else "GOT")

    # A connection of net B's X' (zone B), then X' leaves: the cleanup by its address
    # deletes net B's entries only (without zones it hits net A's entry too).
    echo2 = Listener(y2, Q + 1, udp=True)
    try:
        code = (
            "import socket\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(2)\n"
            f"s.bind(({X_IP!r},{P + 1})); s.sendto(b'hi',({Y_IP!r},{Q + 1}))\n"
            "assert s.recvfrom(10)[0]==b'hi'\n"
        )
        assert py(x2.ns, code).returncode == 0, "UDP flow in net B did not work"
    finally:
        echo2.stop()
    flow_b = f"sport={P + 1} dport={Q + 1}"
    assert flow_b in two.entries(zone_b if zoned else None)
    out_rm = two.driver.remove_ports([two.ports["x2"].id])
    assert not out_rm.failed
    del two.plans["x2"], two.ports["x2"]
    deadline = time.monotonic() + 5
    while flow_b in two.entries() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert flow_b not in two.entries()
    if zoned:
        assert flow in two.entries(zone_a), "net B's cleanup deleted net A's entry"
    else:
        assert flow not in two.entries()


def test_zone_rules_follow_networks(two: TwoNets, backend: str) -> None:
    """One raw rule per network with filtered ports, removed with the last one."""
    two.add_vm("x", "a", X_IP, "fa:16:3e:0a:00:10", two.closed_sg)
    two.add_vm("x2", "b", X_IP, "fa:16:3e:0b:00:10", two.closed_sg)
    two.apply()
    bridges = {k: names.network_bridge(n) for k, n in two.nets.items()}
    zones = {k: two.driver._ctz.zone_of(n) for k, n in two.nets.items()}
    for family in ("iptables", "ip6tables"):
        saved = nsrun(two.host, f"{family}-{backend}-save", "-t", "raw")
        for k in ("a", "b"):
            assert f"-i {bridges[k]} " in saved and f"--zone {zones[k]}" in saved
    two.driver.remove_ports([two.ports["x2"].id])
    saved = nsrun(two.host, f"iptables-{backend}-save", "-t", "raw")
    assert f"-i {bridges['a']} " in saved and bridges["b"] not in saved
    two.driver.remove_ports([two.ports["x"].id])
    saved = nsrun(two.host, f"iptables-{backend}-save", "-t", "raw")
    assert "na-" not in saved
