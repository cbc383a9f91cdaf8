"""Every spoof class attempted from a VM, blocked; an allowed address pair makes it legal."""

from __future__ import annotations

import ipaddress
import subprocess
import time

import pytest

from netagent.model import AllowedAddressPair
from tests.functional.firewall.conftest import (
    EGRESS_ALL,
    VM,
    Topology,
    counter_sniffer,
    eventually_ping,
    neigh_mac,
    nsrun,
    py,
    rule,
    stale_neighbour,
)

FOREIGN4 = "198.51.100.200"
FOREIGN6 = "fd00:5::c8"
FOREIGN_MAC = "fa:16:3e:aa:bb:cc"


def _setup(topo: Topology, pairs: tuple[AllowedAddressPair, ...] = ()) -> tuple[VM, VM]:
    a, b = topo.add_vm("1"), topo.add_vm("2")
    everything = topo.group(*EGRESS_ALL, rule("ingress", "IPv4"), rule("ingress", "IPv6"))
    topo.port(a, (everything,), pairs=pairs)
    topo.port(b, (everything,))
    assert not topo.apply()[1]
    assert eventually_ping(a, b.ip4)
    assert eventually_ping(a, b.ip6)
    return a, b


def _ping_from(src: VM, dst: str, source: str) -> bool:
    proc = subprocess.run(
        ["ip", "netns", "exec", src.ns, "ping", "-c", "2", "-W", "1", "-I", source, dst],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return proc.returncode == 0


@pytest.mark.parametrize("allowed", [False, True])
def test_foreign_source_ip(topo: Topology, allowed: bool) -> None:
    pairs = (
        (
            AllowedAddressPair(ipaddress.ip_network(f"{FOREIGN4}/32")),
            AllowedAddressPair(ipaddress.ip_network("fd00:5::c0/124")),
        )
        if allowed
        else ()
    )
    a, b = _setup(topo, pairs)
    nsrun(a.ns, "ip", "addr", "add", f"{FOREIGN4}/24", "dev", "eth0")
    nsrun(a.ns, "ip", "addr", "add", f"{FOREIGN6}/64", "dev", "eth0", "nodad")
    assert _ping_from(a, b.ip4, FOREIGN4) is allowed
    assert _ping_from(a, b.ip6, FOREIGN6) is allowed


@pytest.mark.parametrize("allowed", [False, True])
def test_foreign_source_mac(topo: Topology, allowed: bool) -> None:
    pairs = (
        (AllowedAddressPair(ipaddress.ip_network(f"{FOREIGN4}/32"), FOREIGN_MAC),)
        if allowed
        else ()
    )
    a, b = _setup(topo, pairs)
    nsrun(a.ns, "ip", "link", "set", "eth0", "address", FOREIGN_MAC)
    nsrun(a.ns, "ip", "addr", "add", f"{FOREIGN4}/24", "dev", "eth0")
    nsrun(b.ns, "ip", "neigh", "flush", "dev", "eth0")
    assert _ping_from(a, b.ip4, FOREIGN4) is allowed
    # the port's own address with the foreign MAC is never legitimate
    assert not _ping_from(a, b.ip4, a.ip4)


def _arping_reply(vm: VM, sender_ip: str, sender_mac: str | None = None) -> None:
    """A gratuitous ARP reply (thomas habets' arping: -U -P; -s forges the sender MAC)."""
    argv = ["arping", "-q", "-U", "-P", "-c", "3", "-w", "3", "-i", "eth0", "-S", sender_ip]
    if sender_mac:
        argv += ["-s", sender_mac, "-p"]
    nsrun(vm.ns, *argv, sender_ip, check=False, timeout=10)


@pytest.mark.parametrize("allowed", [False, True])
def test_forged_arp_reply(topo: Topology, allowed: bool) -> None:
    pairs = (AllowedAddressPair(ipaddress.ip_network(f"{FOREIGN4}/32")),) if allowed else ()
    a, b = _setup(topo, pairs)
    for address in (FOREIGN4, a.ip4):
        stale_neighbour(b, address)
    time.sleep(1.2)  # past the neighbour entries' locktime
    _arping_reply(a, FOREIGN4)
    assert (neigh_mac(b, FOREIGN4) == a.mac) is allowed
    # the port's own IP with a forged sender MAC is never accepted
    _arping_reply(a, a.ip4, FOREIGN_MAC)
    assert neigh_mac(b, a.ip4) != FOREIGN_MAC
    _arping_reply(a, a.ip4)
    assert neigh_mac(b, a.ip4) == a.mac  # the check above could have failed


def _receive_udp(vm: VM, port: int, seconds: float) -> subprocess.Popen[str]:
    code = (
        "import socket\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
        f"s.bind(('0.0.0.0',{port})); s.settimeout({seconds})\n"
        "try:\n"
        "    print(s.recvfrom(2048)[0].hex(), flush=True)\n"
        "except socket.timeout:\n"
        "    print('none', flush=True)\n"
    )
    return subprocess.Popen(
        ["ip", "netns", "exec", vm.ns, "python3", "-c", code], stdout=subprocess.PIPE, text=True
    )


def _dhcp_offer(vm: VM) -> None:
    code = (
        "import socket\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        "s.setsockopt(socket.SOL_SOCKET,socket.SO_BROADCAST,1)\n"
        "s.setsockopt(socket.SOL_SOCKET,socket.SO_BINDTODEVICE,b'eth0')\n"
        "s.bind(('0.0.0.0',67))\n"
        "offer=bytes([2,1,6,0])+bytes(232)+bytes([99,130,83,99,53,1,2,255])\n"
        "for _ in range(3): s.sendto(offer,('255.255.255.255',68))\n"
    )
    assert py(vm.ns, code).returncode == 0


@pytest.mark.parametrize("security", [True, False])
def test_dhcp_offer_from_vm(topo: Topology, security: bool) -> None:
    a, b = topo.add_vm("3"), topo.add_vm("4")
    everything = topo.group(*EGRESS_ALL, rule("ingress", "IPv4"), rule("ingress", "IPv6"))
    topo.port(a, (everything,), security=security)
    topo.port(b, (everything,))
    assert not topo.apply()[1]
    assert eventually_ping(a, b.ip4)
    rx = _receive_udp(b, 68, 3)
    time.sleep(0.5)
    _dhcp_offer(a)
    out, _ = rx.communicate(timeout=10)
    # blocked from a port with port security; a port without it is not filtered at all
    assert (out.strip() != "none") is (not security), out


def _listen_icmpv6(vm: VM, icmp_type: int, seconds: float) -> subprocess.Popen[str]:
    code = (
        "import socket,time\n"
        "s=socket.socket(socket.AF_INET6,socket.SOCK_RAW,socket.IPPROTO_ICMPV6)\n"
        f"s.settimeout(0.3); end=time.time()+{seconds}; got='none'\n"
        "while time.time()<end:\n"
        "    try: d,a=s.recvfrom(2048)\n"
        "    except socket.timeout: continue\n"
        f"    if d[0]=={icmp_type}: got=d.hex(); break\n"
        "print(got, flush=True)\n"
    )
    return subprocess.Popen(
        ["ip", "netns", "exec", vm.ns, "python3", "-c", code], stdout=subprocess.PIPE, text=True
    )


def _send_icmpv6(vm: VM, payload_hex: str, dst: str = "ff02::1") -> None:
    code = (
        "import socket\n"
        "s=socket.socket(socket.AF_INET6,socket.SOCK_RAW,socket.IPPROTO_ICMPV6)\n"
        "s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_MULTICAST_HOPS,255)\n"
        "s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_UNICAST_HOPS,255)\n"
        "idx=socket.if_nametoindex('eth0')\n"
        f"for _ in range(3): s.sendto(bytes.fromhex({payload_hex!r}),({dst!r},0,0,idx))\n"
    )
    proc = py(vm.ns, code)
    assert proc.returncode == 0, proc.stderr


def test_router_advertisement_from_vm_blocked(topo: Topology) -> None:
    a, b = _setup(topo)
    ra = "86000000" + "40000708" + "00000000" + "00000000"  # type 134, lifetime 1800
    rx = _listen_icmpv6(b, 134, 3)
    time.sleep(0.5)
    _send_icmpv6(a, ra)
    out, _ = rx.communicate(timeout=10)
    assert out.strip() == "none"


def test_router_advertisement_passes_without_port_security(topo: Topology) -> None:
    a, b = topo.add_vm("5"), topo.add_vm("6")
    everything = topo.group(*EGRESS_ALL, rule("ingress", "IPv4"), rule("ingress", "IPv6"))
    topo.port(a, security=False)
    topo.port(b, (everything,))
    assert not topo.apply()[1]
    assert eventually_ping(a, b.ip6)
    rx = _listen_icmpv6(b, 134, 3)
    time.sleep(0.5)
    _send_icmpv6(a, "86000000" + "40000708" + "00000000" + "00000000")
    out, _ = rx.communicate(timeout=10)
    assert out.strip() != "none"


@pytest.mark.parametrize("allowed", [False, True])
def test_neighbour_advertisement_only_for_own_addresses(topo: Topology, allowed: bool) -> None:
    pairs = (AllowedAddressPair(ipaddress.ip_network(f"{FOREIGN6}/128")),) if allowed else ()
    a, b = _setup(topo, pairs)
    stale_neighbour(b, FOREIGN6)
    time.sleep(1.2)  # past the neighbour entry's locktime
    target = ipaddress.IPv6Address(FOREIGN6).packed.hex()
    mac = a.mac.replace(":", "")
    # NA, flags override (0x20), target, option 2 (target link-layer address)
    na = "88000000" + "20000000" + target + "0201" + mac
    _send_icmpv6(a, na)
    time.sleep(0.5)
    assert (neigh_mac(b, FOREIGN6) == a.mac) is allowed


def _arp_probe(vm: VM, sender_mac: str, target_ip: str) -> None:
    """An ARP probe (RFC 5227: sender IP 0.0.0.0) from the VM's own Ethernet source,
    with ``sender_mac`` in the ARP sender hardware address field."""
    sha = sender_mac.replace(":", "")
    frame = (
        "ffffffffffff" + vm.mac.replace(":", "") + "0806"
        "0001080006040001"
        + sha
        + "00000000"
        + "000000000000"
        + ipaddress.IPv4Address(target_ip).packed.hex()
    )
    code = (
        "import socket\n"
        "s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n"
        "s.bind(('eth0',0))\n"
        f"for _ in range(3): s.send(bytes.fromhex({frame!r}))\n"
    )
    proc = py(vm.ns, code)
    assert proc.returncode == 0, proc.stderr


def _probes_seen(frames: str, sender_mac: str, target_ip: str) -> int:
    sha = sender_mac.replace(":", "")
    tpa = ipaddress.IPv4Address(target_ip).packed.hex()
    return sum(
        1
        for line in frames.split()
        if line[24:28] == "0806" and line[44:56] == sha and line[76:84] == tpa
    )


def test_arp_probe_only_with_own_mac(topo: Topology) -> None:
    """A probe from 0.0.0.0 with another VM's MAC as ARP sender would teach neighbours
    (and switches that snoop ARP) that MAC; only the port's own MAC passes."""
    a, b = _setup(topo)
    target = "198.51.100.77"
    rx = counter_sniffer(b, 3)
    time.sleep(0.5)
    _arp_probe(a, b.mac, target)
    _arp_probe(a, FOREIGN_MAC, target)
    _arp_probe(a, a.mac, target)
    out, _ = rx.communicate(timeout=10)
    assert _probes_seen(out, b.mac, target) == 0
    assert _probes_seen(out, FOREIGN_MAC, target) == 0
    assert _probes_seen(out, a.mac, target) == 3  # the check above could have failed
