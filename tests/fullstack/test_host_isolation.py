"""Issue 17 item 1 end to end: a VM cannot reach its host's own IP stack through its
network's bridge, so it cannot inject frames into another VXLAN network by sending a
VXLAN datagram to the host's tunnel endpoint (locally, or through the tunnel to another
host), nor reach any other host service over IPv4 or IPv6.

Before the guard, the injected frame reached the other tenant's VM (3/3), and a UDP
socket of the host received the VM's datagrams. Each negative assertion has a control:
the same VXLAN datagram sent by a real VTEP (another host on the underlay) is delivered,
and the same host listener answers the underlay, so "nothing arrived" means "refused".
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest

from tests.common import frames
from tests.fullstack import harness
from tests.fullstack.harness import Fabric, Host, Vm, wait_for

FIREWALLS = {
    "noop": "",
    "iptables-nft": "[agent]\nfirewall_driver = iptables\n[iptables]\nbackend = nft\n",
    "iptables-legacy": "[agent]\nfirewall_driver = iptables\n[iptables]\nbackend = legacy\n",
}
VNI_ATTACKER = 1100
VNI_VICTIM = 1200
HOST_PORT = 5555
HOST_A_V6 = "fd00:18::1"
HOST_B_V6 = "fd00:18::2"


def _mac_of(netns: str, device: str) -> str:
    out = harness.ip(netns, "-j", "link", "show", device).stdout
    return str(json.loads(out)[0]["address"])


def _send_from_host(host: Host, address: str, port: int, payload: bytes) -> None:
    family = "AF_INET6" if ":" in address else "AF_INET"
    code = (
        "import socket,sys\n"
        f"s=socket.socket(socket.{family},socket.SOCK_DGRAM)\n"
        f"[s.sendto(bytes.fromhex(sys.argv[1]),({address!r},{port})) for _ in range(3)]\n"
    )
    harness.run("ip", "netns", "exec", host.netns, "python3", "-c", code, payload.hex())


def _inject(attacker: Vm, dst_mac: str, packet: bytes, ethertype: int) -> None:
    frame = frames.ethernet(dst_mac, attacker.mac, ethertype, packet)
    frames.send(attacker.netns, "eth0", [frame])


@pytest.fixture(params=sorted(FIREWALLS))
def cloud(fabric: Fabric, request: pytest.FixtureRequest) -> dict[str, object]:
    host_a = fabric.add_host("host-a", "198.18.0.1")
    host_b = fabric.add_host("host-b", "198.18.0.2")
    harness.ip(host_a.netns, "addr", "add", f"{HOST_A_V6}/64", "dev", "eth-ul", "nodad")
    harness.ip(host_b.netns, "addr", "add", f"{HOST_B_V6}/64", "dev", "eth-ul", "nodad")
    net_x = fabric.add_network(VNI_ATTACKER)
    net_y = fabric.add_network(VNI_VICTIM)
    attacker = fabric.add_vm("attacker", host_a, net_x, "192.0.2.10/24")
    remote_attacker = fabric.add_vm("rattacker", host_b, net_x, "192.0.2.11/24")
    victim = fabric.add_vm("victim", host_a, net_y, "192.0.2.20/24")
    fabric.write_state()
    for host in (host_a, host_b):
        host.write_config(fabric.state_file, FIREWALLS[request.param])
        host.start_agent()
    fabric.wait_wired(attacker, remote_attacker, victim)
    wait_for(
        "agents converged",
        lambda: all(h.status().returncode == 0 for h in (host_a, host_b)),
        timeout=30,
    )
    return {
        "host_a": host_a,
        "host_b": host_b,
        "attacker": attacker,
        "remote_attacker": remote_attacker,
        "victim": victim,
        "bridge_a": "brq" + net_x[:11],
    }


def _injected_frame(magic: bytes) -> bytes:
    """What the attacker wants delivered into the victim's network: a broadcast frame."""
    inner = frames.ethernet(
        "ff:ff:ff:ff:ff:ff", "fa:16:3e:66:66:66", frames.ETH_EXPERIMENTAL, magic * 4
    )
    return frames.vxlan(VNI_VICTIM, inner)


def _victim_receives(victim: Vm, send: Callable[[bytes], None]) -> int:
    magic = os.urandom(8)
    with frames.Capture(victim.netns, "eth0", magic) as capture:
        send(magic)
        return capture.count()


def test_vm_cannot_inject_into_another_vxlan_network(cloud: dict[str, object]) -> None:
    host_a, host_b = cloud["host_a"], cloud["host_b"]
    attacker, remote, victim = cloud["attacker"], cloud["remote_attacker"], cloud["victim"]
    assert isinstance(host_a, Host) and isinstance(host_b, Host)
    assert isinstance(attacker, Vm) and isinstance(remote, Vm) and isinstance(victim, Vm)
    bridge_mac = _mac_of(host_a.netns, str(cloud["bridge_a"]))

    # control: a real VTEP's datagram for the victim's VNI is delivered
    control = _victim_receives(
        victim,
        lambda magic: _send_from_host(
            host_b, host_a.tunnel_ip, frames.VXLAN_PORT, _injected_frame(magic)
        ),
    )
    assert control >= 1, "the control VXLAN datagram from host-b did not arrive"

    def datagram(src: str) -> Callable[[bytes], bytes]:
        return lambda magic: frames.udp4(
            src, host_a.tunnel_ip, 40000, frames.VXLAN_PORT, _injected_frame(magic)
        )

    local = datagram(attacker.address)
    assert (
        _victim_receives(
            victim, lambda m: _inject(attacker, bridge_mac, local(m), frames.ETH_IPV4)
        )
        == 0
    ), "a VM injected a frame into another VXLAN network through its host"

    tunnelled = datagram(remote.address)
    assert (
        _victim_receives(
            victim, lambda m: _inject(remote, bridge_mac, tunnelled(m), frames.ETH_IPV4)
        )
        == 0
    ), "a VM on another host injected a frame through the tunnel into another network"


@pytest.mark.parametrize(
    ("listen", "target", "underlay_source"),
    [("0.0.0.0", "198.18.0.1", "198.18.0.2"), ("::", HOST_A_V6, HOST_B_V6)],
    ids=["ipv4", "ipv6"],
)
def test_vm_cannot_reach_host_services(
    cloud: dict[str, object], listen: str, target: str, underlay_source: str
) -> None:
    host_a, host_b, attacker = cloud["host_a"], cloud["host_b"], cloud["attacker"]
    assert isinstance(host_a, Host) and isinstance(host_b, Host) and isinstance(attacker, Vm)
    bridge_mac = _mac_of(host_a.netns, str(cloud["bridge_a"]))
    magic = os.urandom(8)

    with frames.UdpListener(host_a.netns, listen, HOST_PORT, magic) as listener:
        _send_from_host(host_b, target, HOST_PORT, magic)
        assert listener.count() >= 1, "the host listener did not hear the underlay"

    with frames.UdpListener(host_a.netns, listen, HOST_PORT, magic) as listener:
        if ":" in target:
            packet = frames.udp6(frames.link_local(attacker.mac), target, 40000, HOST_PORT, magic)
            _inject(attacker, bridge_mac, packet, frames.ETH_IPV6)
        else:
            packet = frames.udp4(attacker.address, target, 40000, HOST_PORT, magic)
            _inject(attacker, bridge_mac, packet, frames.ETH_IPV4)
        assert listener.count() == 0, f"a VM reached a host service on {target}"


@pytest.mark.parametrize(
    "tamper",
    [
        [["-F", "na-INPUT"]],
        [["-D", "INPUT", "-j", "na-INPUT"]],
        [["-I", "INPUT", "1", "-j", "ACCEPT"]],
    ],
    ids=["flush-chain", "delete-jump", "accept-before-jump"],
)
@pytest.mark.parametrize("cloud", ["noop"], indirect=True)
def test_tampered_host_guard_is_rewritten(
    cloud: dict[str, object], tamper: list[list[str]]
) -> None:
    host_a, attacker, victim = cloud["host_a"], cloud["attacker"], cloud["victim"]
    assert isinstance(host_a, Host) and isinstance(attacker, Vm) and isinstance(victim, Vm)
    bridge_mac = _mac_of(host_a.netns, str(cloud["bridge_a"]))
    saved = harness.run("ip", "netns", "exec", host_a.netns, "ebtables-nft-save", "-t", "filter")
    for args in tamper:
        harness.run("ip", "netns", "exec", host_a.netns, "ebtables-nft", "-t", "filter", *args)

    def guard_back() -> bool:
        now = harness.run("ip", "netns", "exec", host_a.netns, "ebtables-nft-save", "-t", "filter")
        return _rules_of(now.stdout) == _rules_of(saved.stdout)

    wait_for("host guard rewritten", guard_back, timeout=10, interval=0.2)
    local = lambda magic: frames.udp4(  # noqa: E731
        attacker.address, host_a.tunnel_ip, 40000, frames.VXLAN_PORT, _injected_frame(magic)
    )
    received = _victim_receives(
        victim, lambda m: _inject(attacker, bridge_mac, local(m), frames.ETH_IPV4)
    )
    assert received == 0, "the injection passed after the guard was tampered with"
    log = host_a.log_file.read_text()
    assert "na-INPUT" in log and "changed behind netagent's back" in log


def _rules_of(save: str) -> tuple[str | None, list[str]]:
    """The first rule of INPUT and the guard chain's rules (a foreign rule after the
    jump is someone else's and stays)."""
    lines = save.splitlines()
    first = next((line for line in lines if line.startswith("-A INPUT ")), None)
    return first, [line for line in lines if line.startswith("-A na-INPUT ")]
