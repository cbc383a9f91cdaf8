"""Fixtures for the firewall driver's functional tests: a host namespace with a bridge
and "VM" namespaces attached by veth pairs whose host side is named ``tap<11 chars>``.

Addresses: 198.51.100.0/24 and fd00:5::/64 inside the test's own namespaces only. The
driver runs in-process against the host namespace (``netns=``); every tool it runs enters
that namespace through ``nsenter``, and sysctls are written from a setns'ed thread.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from netagent.conf import iptables as iptables_conf
from netagent.drivers.base import PortPlan
from netagent.drivers.iptables_firewall import IptablesFirewallDriver
from netagent.model import (
    AllowedAddressPair,
    DesiredState,
    FixedIP,
    Network,
    NetworkType,
    Port,
    SecurityGroup,
    SecurityGroupRule,
)
from netagent.model.secgroup import Direction, EtherType
from tests.functional.conftest import nsrun

NET_ID = "5a0b6c1d-0000-4000-8000-000000000001"
SUBNET4 = "198.51.100.0/24"
SUBNET6 = "fd00:5::/64"
#: the MAC of :func:`stale_neighbour`'s entries, which no VM has
STALE_MAC = "02:00:00:00:00:99"


def py(ns: str, code: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet inside a namespace (bounded in time)."""
    return subprocess.run(
        ["ip", "netns", "exec", ns, "python3", "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclasses.dataclass
class VM:
    """A VM namespace, its port and its addresses."""

    ns: str
    port_id: str
    mac: str
    ip4: str
    ip6: str
    dev: str = "eth0"

    @property
    def tap(self) -> str:
        return "tap" + self.port_id[:11]


def firewall_driver(
    host: str, backend: str
) -> tuple[config_fixture.Config, IptablesFirewallDriver]:
    """An initialized iptables firewall driver for namespace ``host`` (``backend``, no
    verification timer) and its configuration fixture, which the caller cleans up."""
    conf = cfg.ConfigOpts()
    iptables_conf.register_opts(conf)
    fixture = config_fixture.Config(conf)
    fixture.setUp()
    fixture.config(group="iptables", backend=backend, verify_interval=0)
    driver = IptablesFirewallDriver(conf, netns=host)
    driver.initialize()
    return fixture, driver


def port_uuid(digit: str) -> str:
    """A port id whose tap name starts with ``digit`` (so tests cover buckets)."""
    rest = uuid.uuid4().hex
    return f"{digit}{rest[1:8]}-{rest[8:12]}-4{rest[13:16]}-8{rest[17:20]}-{rest[20:32]}"


def sg_id() -> str:
    return str(uuid.uuid4())


def rule(
    direction: str,
    ethertype: str = "IPv4",
    protocol: int | None = None,
    ports: tuple[int, int] | None = None,
    remote_prefix: str | None = None,
    remote_group: str | None = None,
    icmp: tuple[int, int | None] | None = None,
) -> SecurityGroupRule:
    return SecurityGroupRule(
        id=None,
        security_group_id=None,
        direction=Direction(direction),
        ethertype=EtherType(ethertype),
        protocol=protocol,
        port_range_min=ports[0] if ports else None,
        port_range_max=ports[1] if ports else None,
        icmp_type=icmp[0] if icmp else None,
        icmp_code=icmp[1] if icmp else None,
        remote_ip_prefix=ipaddress.ip_network(remote_prefix) if remote_prefix else None,
        remote_group_id=remote_group,
    )


EGRESS_ALL = (rule("egress", "IPv4"), rule("egress", "IPv6"))


class Topology:
    """Host namespace + bridge; VMs added with :meth:`add_vm`; a driver in the host."""

    def __init__(self, make_netns: Callable[[str], str], backend: str) -> None:
        self.make_netns = make_netns
        self.backend = backend
        self.host = make_netns("fwhost")
        self.bridge = "brq" + uuid.uuid4().hex[:11]
        nsrun(self.host, "ip", "link", "add", self.bridge, "type", "bridge")
        nsrun(self.host, "ip", "link", "set", self.bridge, "up")
        self.network = Network(NET_ID, "net", NetworkType.FLAT, None, "physnet1", 1500)
        self.vms: list[VM] = []
        self.groups: dict[str, SecurityGroup] = {}
        self.ports: dict[str, Port] = {}
        self.remote_ports: list[Port] = []
        self._next = 10
        self.fixture, self.driver = firewall_driver(self.host, backend)
        self.conf = self.fixture.conf

    def close(self) -> None:
        self.fixture.cleanUp()

    def add_vm(self, digit: str = "a", enslave: bool = True) -> VM:
        self._next += 1
        n = self._next
        ns = self.make_netns("vm")
        port_id = port_uuid(digit)
        mac = f"fa:16:3e:00:00:{n:02x}"
        vm = VM(ns, port_id, mac, f"198.51.100.{n}", f"fd00:5::{n:x}")
        subprocess.run(
            [
                "ip",
                "link",
                "add",
                vm.tap,
                "netns",
                self.host,
                "type",
                "veth",
                "peer",
                "eth0",
                "netns",
                ns,
            ],
            check=True,
        )
        nsrun(ns, "ip", "link", "set", "eth0", "address", mac)
        nsrun(ns, "ip", "addr", "add", f"{vm.ip4}/24", "dev", "eth0")
        nsrun(ns, "ip", "addr", "add", f"{vm.ip6}/64", "dev", "eth0", "nodad")
        nsrun(ns, "ip", "link", "set", "eth0", "up")
        # veth offloads leave TCP/UDP checksums partial across namespaces.
        nsrun(ns, "ethtool", "-K", "eth0", "tx", "off", check=False)
        nsrun(self.host, "ethtool", "-K", vm.tap, "tx", "off", check=False)
        if enslave:
            self.enslave(vm)
        self.vms.append(vm)
        return vm

    def enslave(self, vm: VM) -> None:
        nsrun(self.host, "ip", "link", "set", vm.tap, "master", self.bridge)
        nsrun(self.host, "ip", "link", "set", vm.tap, "up")

    def port(
        self,
        vm: VM,
        groups: tuple[str, ...] = (),
        security: bool = True,
        pairs: tuple[AllowedAddressPair, ...] = (),
    ) -> Port:
        port = Port(
            id=vm.port_id,
            network_id=NET_ID,
            mac_address=vm.mac,
            fixed_ips=(
                FixedIP(None, ipaddress.ip_address(vm.ip4)),
                FixedIP(None, ipaddress.ip_address(vm.ip6)),
            ),
            host="host1",
            port_security_enabled=security,
            security_groups=groups if security else (),
            allowed_address_pairs=pairs,
        )
        self.ports[port.id] = port
        return port

    def group(
        self, *rules: SecurityGroupRule, gid: str | None = None, stateful: bool = True
    ) -> str:
        gid = gid or sg_id()
        self.groups[gid] = SecurityGroup(gid, "sg", stateful, tuple(rules))
        return gid

    def state(self) -> DesiredState:
        return DesiredState.build(
            networks=[self.network],
            ports=[*self.ports.values(), *self.remote_ports],
            security_groups=self.groups.values(),
        )

    def apply(self, *vms: VM) -> tuple[set[str], dict[str, str]]:
        targets = vms or tuple(self.vms)
        plans = [PortPlan(self.ports[v.port_id], self.network) for v in targets]
        out = self.driver.apply_ports(plans, self.state())
        return out.succeeded, out.failed


@pytest.fixture(params=["nft", "legacy"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def topo(make_netns: Callable[[str], str], backend: str) -> Iterator[Topology]:
    t = Topology(make_netns, backend)
    yield t
    t.close()


# -- traffic helpers ---------------------------------------------------------------------


def _neigh(address: str) -> list[str]:
    return ["ip", "-6", "neigh"] if ipaddress.ip_address(address).version == 6 else ["ip", "neigh"]


def stale_neighbour(vm: VM, address: str) -> None:
    """Give ``vm`` a stale entry for ``address`` (``STALE_MAC``) that an ARP/ND message
    carrying a link-layer address overrides."""
    nsrun(
        vm.ns,
        *_neigh(address),
        "replace",
        address,
        "lladdr",
        STALE_MAC,
        "dev",
        "eth0",
        "nud",
        "stale",
    )


def neigh_mac(vm: VM, address: str) -> str:
    """The MAC ``vm``'s neighbour table has for ``address`` ("" if none)."""
    parts = nsrun(vm.ns, *_neigh(address), "show", address, "dev", "eth0").split()
    return parts[parts.index("lladdr") + 1] if "lladdr" in parts else ""


def ping(src: VM, dst: str, count: int = 1, wait: float = 1.0) -> bool:
    proc = subprocess.run(
        ["ip", "netns", "exec", src.ns, "ping", "-c", str(count), "-W", str(wait), dst],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return proc.returncode == 0


def eventually_ping(src: VM, dst: str, tries: int = 15) -> bool:
    """Ping until it answers (neighbour discovery and DAD take a moment)."""
    for _ in range(tries):
        if ping(src, dst, wait=0.5):
            return True
        time.sleep(0.2)
    return False


class Listener:
    """A TCP and UDP echo server in a VM namespace (stopped by PID)."""

    def __init__(self, vm: VM, port: int, family: int = 4, udp: bool = False) -> None:
        addr = vm.ip4 if family == 4 else vm.ip6
        fam = "socket.AF_INET" if family == 4 else "socket.AF_INET6"
        kind = "socket.SOCK_DGRAM" if udp else "socket.SOCK_STREAM"
        if udp:
            body = "while time.time()-t<90:\n    d,a=s.recvfrom(2048); s.sendto(d,a)\n"
        else:
            body = (
                "s.listen(16)\n"
                "import threading\n"
                "def echo(c):\n"
                "    c.settimeout(60)\n"
                "    try:\n"
                "        while True:\n"
                "            d=c.recv(2048)\n"
                "            if not d: break\n"
                "            c.sendall(d)\n"
                "    except OSError: pass\n"
                "while time.time()-t<90:\n"
                "    c,_=s.accept(); threading.Thread(target=echo,args=(c,),daemon=True).start()\n"
            )
        code = (
            "import socket,time\n"
            f"s=socket.socket({fam},{kind})\n"
            "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
            f"s.bind(({addr!r},{port})); t=time.time()\n" + body
        )
        self.proc = subprocess.Popen(["ip", "netns", "exec", vm.ns, "python3", "-c", code])
        flag = "-lun" if udp else "-ltn"
        for _ in range(100):
            if f":{port} " in nsrun(vm.ns, "ss", flag):
                return
            time.sleep(0.05)
        raise AssertionError("listener did not start")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=5)


@pytest.fixture
def listen() -> Iterator[Callable[..., Listener]]:
    started: list[Listener] = []

    def start(vm: VM, port: int, family: int = 4, udp: bool = False) -> Listener:
        listener = Listener(vm, port, family, udp)
        started.append(listener)
        return listener

    yield start
    for listener in started:
        listener.stop()


def tcp_ok(src: VM, addr: str, port: int, timeout: float = 1.0) -> bool:
    fam = "socket.AF_INET6" if ":" in addr else "socket.AF_INET"
    code = (
        "import socket\n"
        f"s=socket.socket({fam}); s.settimeout({timeout})\n"
        f"s.connect(({addr!r},{port})); s.sendall(b'x'); assert s.recv(10)==b'x'\n"
    )
    return py(src.ns, code, timeout=10).returncode == 0


def udp_ok(src: VM, addr: str, port: int, timeout: float = 1.0) -> bool:
    fam = "socket.AF_INET6" if ":" in addr else "socket.AF_INET"
    code = (
        "import socket\n"
        f"s=socket.socket({fam},socket.SOCK_DGRAM); s.settimeout({timeout})\n"
        f"s.sendto(b'x',({addr!r},{port})); assert s.recvfrom(10)[0]==b'x'\n"
    )
    return py(src.ns, code, timeout=10).returncode == 0


def counter_sniffer(vm: VM, seconds: float, proto: int = 0) -> subprocess.Popen[str]:
    """Count frames arriving on the VM's eth0 for ``seconds`` (prints raw frames as hex)."""
    code = (
        "import socket,time\n"
        "s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW,socket.htons(3))\n"
        f"s.bind(('eth0',0)); s.settimeout(0.2); end=time.time()+{seconds}\n"
        "while time.time()<end:\n"
        "    try: d,a=s.recvfrom(4096)\n"
        "    except socket.timeout: continue\n"
        "    if a[2]==socket.PACKET_OUTGOING: continue\n"
        "    print(d.hex(), flush=True)\n"
    )
    return subprocess.Popen(
        ["ip", "netns", "exec", vm.ns, "python3", "-c", code],
        stdout=subprocess.PIPE,
        text=True,
    )
