"""ARP suppression on VXLAN networks (``[linuxbridge] arp_responder``): the bridge answers
ARP for remote ports itself.

The driver sets ``neigh_suppress`` on the ``nvx-`` port, keeps permanent neighbour entries
for remote ports' IPv4 addresses on the ``brq`` bridge and static bridge FDB entries for
their MACs on the ``nvx-`` port. Checked with iproute2 read-backs and with real ARP: a VM
namespace's request for a remote port's address is answered locally and never leaves
through the VXLAN device; a request for an unknown address still does.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from netagent.drivers.base import NetworkPlan, PortPlan
from netagent.drivers.linuxbridge import LinuxBridgeDriver
from tests.functional.drivers.helpers import (
    PEER_B,
    PEER_C,
    ZERO,
    Monitor,
    add_tap,
    brq,
    fdb,
    links,
    network,
    port,
    remote,
    sh,
)

TCPDUMP = ("tcpdump", "-lnec", "20", "-i")


@pytest.fixture
def make_driver(
    make_driver: Callable[..., LinuxBridgeDriver],
) -> Callable[..., LinuxBridgeDriver]:
    """Drivers with ``arp_responder`` on unless a test says otherwise."""

    def factory(**overrides: object) -> LinuxBridgeDriver:
        return make_driver(**{"arp_responder": True, **overrides})

    return factory


@pytest.fixture
def driver(make_driver: Callable[..., LinuxBridgeDriver]) -> LinuxBridgeDriver:
    return make_driver()


MAC1, MAC2, MAC3 = "fa:16:3e:00:01:01", "fa:16:3e:00:01:02", "fa:16:3e:00:01:03"


def neigh_suppress(netns: str, device: str) -> bool | None:
    out = subprocess.run(
        ["bridge", "-n", netns, "-d", "-j", "link", "show", "dev", device],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    entries = json.loads(out or "[]")
    return entries[0].get("neigh_suppress") if entries else None


def arp_entries(netns: str, device: str) -> dict[str, str]:
    """Permanent neighbour entries of ``device``: address -> MAC (IPv4 and IPv6)."""
    out = sh(netns, "-j", "neigh", "show", "dev", device, "nud", "permanent")
    return {e["dst"]: e["lladdr"] for e in json.loads(out or "[]")}


def static_bridge_fdb(netns: str, device: str) -> set[str]:
    """MACs with a ``master static`` entry on ``device``."""
    out = subprocess.run(
        ["bridge", "-n", netns, "-j", "fdb", "show", "dev", device],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        e["mac"] for e in json.loads(out or "[]") if "master" in e and e.get("state") == "static"
    }


def test_flag_and_entries_converge(driver: LinuxBridgeDriver, host: str) -> None:
    net = network(vni=9001)
    vx, bridge = "nvx-9001", brq(net)
    plan = NetworkPlan(
        net,
        {"host-b": PEER_B, "host-c": PEER_C},
        (
            remote(MAC1, PEER_B, "192.0.2.11", "fd00::11"),
            remote(MAC2, PEER_C, "192.0.2.12", "192.0.2.22"),
        ),
    )
    assert not driver.ensure_networks([plan]).failed
    assert neigh_suppress(host, vx) is True
    # IPv4 only: the bridge has IPv6 disabled, so there is no ND table to answer from.
    assert arp_entries(host, bridge) == {
        "192.0.2.11": MAC1,
        "192.0.2.12": MAC2,
        "192.0.2.22": MAC2,
    }
    assert static_bridge_fdb(host, vx) == {MAC1, MAC2}
    assert driver.describe()["networks"][net.id]["suppressed_arp"] == 3

    # A port with a lower MAC joins: the bridge keeps its MAC, so the kernel does not
    # flush the bridge's neighbour entries (it does on every MAC change).
    bridge_mac = links(host)[bridge]["address"]
    low = port(net)
    add_tap(host, low)
    sh(host, "link", "set", low.device_name, "address", "00:00:00:00:00:01")
    assert not driver.plug_ports([PortPlan(low, net)]).failed
    assert links(host)[bridge]["address"] == bridge_mac
    assert len(arp_entries(host, bridge)) == 3

    # MAC1 leaves; MAC2 moves to host-b and loses .22; .12 is taken over by a new MAC3.
    plan = NetworkPlan(
        net,
        {"host-b": PEER_B},
        (remote(MAC2, PEER_B, "192.0.2.13"), remote(MAC3, PEER_B, "192.0.2.12")),
    )
    assert not driver.ensure_networks([plan]).failed
    assert arp_entries(host, bridge) == {"192.0.2.12": MAC3, "192.0.2.13": MAC2}
    assert static_bridge_fdb(host, vx) == {MAC2, MAC3}
    assert fdb(host, vx) == {(ZERO, str(PEER_B)), (MAC2, str(PEER_B)), (MAC3, str(PEER_B))}

    # Out-of-band damage is repaired: flag off, an entry deleted, one changed, one added.
    subprocess.run(["bridge", "-n", host, "link", "set", "dev", vx, "neigh_suppress", "off"])
    sh(host, "neigh", "del", "192.0.2.13", "dev", bridge)
    sh(host, "neigh", "replace", "192.0.2.12", "lladdr", MAC1, "dev", bridge, "nud", "permanent")
    sh(host, "neigh", "add", "192.0.2.99", "lladdr", MAC1, "dev", bridge, "nud", "permanent")
    subprocess.run(["bridge", "-n", host, "fdb", "del", MAC3, "dev", vx, "master"], check=True)
    assert not driver.ensure_networks([plan]).failed
    assert neigh_suppress(host, vx) is True
    assert arp_entries(host, bridge) == {"192.0.2.12": MAC3, "192.0.2.13": MAC2}
    assert static_bridge_fdb(host, vx) == {MAC2, MAC3}

    # No remote ports: no entries; the flag stays (nothing to answer, everything floods).
    assert not driver.ensure_networks([NetworkPlan(net, {})]).failed
    assert arp_entries(host, bridge) == {} and static_bridge_fdb(host, vx) == set()
    assert neigh_suppress(host, vx) is True

    # Entries go with their devices on cleanup.
    assert not driver.ensure_networks([plan]).failed
    driver.cleanup()
    assert bridge not in links(host) and vx not in links(host)
    assert json.loads(sh(host, "-j", "neigh", "show", "nud", "permanent") or "[]") == []


@contextmanager
def capture_arp(netns: str, device: str) -> Iterator[list[str]]:
    """ARP frames seen on ``device`` while the block runs (bounded: 20 frames, 10 s)."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, "timeout", "10", *TCPDUMP, device, "arp"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    try:
        assert proc.stderr is not None
        # "listening on ..." (after a "verbose output suppressed" line): capture armed
        lines = [proc.stderr.readline() for _ in range(2)]
        assert any("listening" in line for line in lines), lines
        yield seen
        time.sleep(1.0)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
        seen.extend(line for line in out.splitlines() if line.strip())


def arping(vm: str, target: str) -> str:
    """One bounded ARP request from the VM's eth0; the replies' sender MACs, lowercase."""
    proc = subprocess.run(
        ["ip", "netns", "exec", vm, "arping", "-c", "1", "-w", "2", "-I", "eth0", target],
        capture_output=True,
        text=True,
        timeout=15,
    )
    return proc.stdout.lower()


def test_vm_arp_answered_by_bridge_not_flooded(
    driver: LinuxBridgeDriver, host: str, make_netns: Callable[[str], str]
) -> None:
    net = network(vni=9002)
    vx = "nvx-9002"
    local = port(net)
    vm = make_netns("vm")
    # The VM: eth0 in its namespace, its tap in the host's, as a hypervisor leaves them.
    sh(host, "link", "add", local.device_name, "type", "veth", "peer", "name", "eth0", "netns", vm)
    sh(host, "link", "set", local.device_name, "up")
    subprocess.run(
        ["ip", "netns", "exec", vm, "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1"],
        check=True,
    )
    sh(vm, "link", "set", "eth0", "address", local.mac_address, "up")
    sh(vm, "addr", "add", "192.0.2.1/24", "dev", "eth0")
    plan = NetworkPlan(net, {"host-b": PEER_B}, (remote(MAC1, PEER_B, "192.0.2.11"),))
    assert not driver.ensure_networks([plan]).failed
    assert not driver.plug_ports([PortPlan(local, net)]).failed

    with capture_arp(host, vx) as known:
        answer = arping(vm, "192.0.2.11")
    assert MAC1 in answer, answer  # answered, with the remote port's MAC
    assert known == [], f"ARP for a remote port left through {vx}: {known}"

    with capture_arp(host, vx) as unknown:
        arping(vm, "192.0.2.77")
    assert any("who-has 192.0.2.77" in line for line in unknown), unknown

    # The price, and why arp_responder is off by default: the kernel keeps gratuitous ARP
    # (a VIP announcing its move) off suppressing ports, so remote VMs do not hear it.
    with capture_arp(host, vx) as announced:
        subprocess.run(
            ["ip", "netns", "exec", vm, "arping", "-U", "-c", "1", "-I", "eth0", "192.0.2.1"],
            capture_output=True,
            timeout=15,
            check=False,
        )
    assert not any("tell 192.0.2.1," in line for line in announced), announced


def test_rerun_with_suppression_changes_nothing(
    make_driver: Callable[..., LinuxBridgeDriver], host: str
) -> None:
    # test_linuxbridge.py::test_rerun_changes_nothing covers this too; here with several
    # addresses per port and a learned entry the bridge must leave alone.
    net = network(vni=9003)
    plan = NetworkPlan(
        net,
        {"host-b": PEER_B, "host-c": PEER_C},
        (
            remote(MAC1, PEER_B, "192.0.2.11", "192.0.2.21"),
            remote(MAC2, PEER_C, "192.0.2.12"),
        ),
    )
    assert not make_driver().ensure_networks([plan]).failed
    # a dynamic (learned-like) entry on the port is not netagent's: never touched
    subprocess.run(
        ["bridge", "-n", host, "fdb", "add", MAC3, "dev", "nvx-9003", "master", "dynamic"],
        check=True,
    )
    second = make_driver()
    monitor = Monitor(host)
    try:
        assert not second.ensure_networks([plan]).failed
    finally:
        events = monitor.stop()
    assert events == "", f"re-run changed the kernel:\n{events}"
    assert static_bridge_fdb(host, "nvx-9003") == {MAC1, MAC2}


def test_off_by_default_and_turning_it_off_removes_entries(
    make_driver: Callable[..., LinuxBridgeDriver], host: str, make_netns: Callable[[str], str]
) -> None:
    net = network(vni=9004)
    vx, bridge = "nvx-9004", brq(net)
    plan = NetworkPlan(net, {"host-b": PEER_B}, (remote(MAC1, PEER_B, "192.0.2.11"),))
    assert not make_driver().ensure_networks([plan]).failed
    assert neigh_suppress(host, vx) is True and arp_entries(host, bridge)

    # the default: no suppression, none of netagent's entries, ARP for remote ports and
    # gratuitous ARP (a moving VIP) cross the tunnel
    off = make_driver(arp_responder=False)
    assert not off.ensure_networks([plan]).failed
    assert neigh_suppress(host, vx) is False
    assert arp_entries(host, bridge) == {}
    assert static_bridge_fdb(host, vx) == set()
    local = port(net)
    vm = make_netns("vm")
    sh(host, "link", "add", local.device_name, "type", "veth", "peer", "name", "eth0", "netns", vm)
    sh(host, "link", "set", local.device_name, "up")
    sh(vm, "link", "set", "eth0", "address", local.mac_address, "up")
    sh(vm, "addr", "add", "192.0.2.1/24", "dev", "eth0")
    assert not off.plug_ports([PortPlan(local, net)]).failed
    with capture_arp(host, vx) as seen:
        arping(vm, "192.0.2.11")
        subprocess.run(
            ["ip", "netns", "exec", vm, "arping", "-U", "-c", "1", "-I", "eth0", "192.0.2.1"],
            capture_output=True,
            timeout=15,
            check=False,
        )
    assert any("who-has 192.0.2.11" in line for line in seen), seen
    garp = [line for line in seen if "who-has 192.0.2.1 " in line and "tell 192.0.2.1," in line]
    assert garp, seen
