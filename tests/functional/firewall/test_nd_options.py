"""Neighbour discovery link-layer address options from a VM: only the port's own MACs.

The attacker VM ``a`` sends, from its own MAC and its own IPv6 address (everything the
older checks look at is legitimate), neighbour discovery messages whose source/target
link-layer address option names another VM's MAC (``c``). Without the option check the
victim ``b`` caches that MAC for ``a``'s address. Each attack is also sent with ``a``'s
own MAC in the option (the control), which must arrive and be learnt: the assertions on
the attack can fail.

Figures (frames seen by the victim out of those sent, and the MAC the victim caches)
are printed so that a run with ``-s`` documents before/after.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

import pytest

from netagent.model import AllowedAddressPair
from tests.common import frames
from tests.functional.firewall.conftest import (
    EGRESS_ALL,
    VM,
    Topology,
    eventually_ping,
    neigh_mac,
    nsrun,
    rule,
    stale_neighbour,
)

REPEAT = 3
PAIR_IP6 = "fd00:5::c8"
PAIR_MAC = "fa:16:3e:aa:bb:cc"
ALL_NODES = "ff02::1"
ALL_ROUTERS = "ff02::2"


def _setup(topo: Topology, pairs: tuple[AllowedAddressPair, ...] = ()) -> tuple[VM, VM, VM]:
    a, b, c = topo.add_vm("1"), topo.add_vm("2"), topo.add_vm("3")
    everything = topo.group(*EGRESS_ALL, rule("ingress", "IPv4"), rule("ingress", "IPv6"))
    topo.port(a, (everything,), pairs=pairs)
    topo.port(b, (everything,))
    topo.port(c, (everything,))
    assert not topo.apply()[1]
    assert eventually_ping(a, b.ip6)
    return a, b, c


def _deliver(src: VM, dst: VM, eth_src: str, eth_dst: str, packet: bytes) -> tuple[int, str]:
    """Send ``packet`` REPEAT times from ``src``; frames ``dst`` saw, and the MAC ``dst``
    then caches for the packet's IPv6 source."""
    source = str(ipaddress.IPv6Address(packet[8:24]))
    stale_neighbour(dst, source)
    frame = frames.ethernet(eth_dst, eth_src, frames.ETH_IPV6, packet)
    with frames.Capture(dst.ns, "eth0", packet) as capture:
        frames.send(src.ns, "eth0", [frame], repeat=REPEAT)
        seen = capture.count()
    return seen, neigh_mac(dst, source)


# Each builder: (attacker, victim, MAC in the option) -> (Ethernet destination, packet).
Build = Callable[[VM, VM, str], tuple[str, bytes]]


def _na(a: VM, b: VM, mac: str) -> tuple[str, bytes]:
    message = frames.neighbour_advert(a.ip6, frames.nd_option(2, mac))
    return frames.ipv6_multicast_mac(ALL_NODES), frames.icmp6(a.ip6, ALL_NODES, message)


def _ns(a: VM, b: VM, mac: str) -> tuple[str, bytes]:
    message = frames.neighbour_solicit(b.ip6, frames.nd_option(1, mac))
    return b.mac, frames.icmp6(a.ip6, b.ip6, message)


def _rs(a: VM, b: VM, mac: str) -> tuple[str, bytes]:
    message = frames.router_solicit(frames.nd_option(1, mac))
    return frames.ipv6_multicast_mac(ALL_ROUTERS), frames.icmp6(a.ip6, ALL_ROUTERS, message)


def _ns_second_option(a: VM, b: VM, mac: str) -> tuple[str, bytes]:
    options = frames.ND_NONCE + frames.nd_option(1, mac)
    return b.mac, frames.icmp6(a.ip6, b.ip6, frames.neighbour_solicit(b.ip6, options))


def _ns_hop_by_hop(a: VM, b: VM, mac: str) -> tuple[str, bytes]:
    message = frames.neighbour_solicit(b.ip6, frames.nd_option(1, mac))
    return b.mac, frames.icmp6(a.ip6, b.ip6, message, hop_by_hop=True)


#: attack name -> (forged message builder, the honest message of the same kind)
ATTACKS: dict[str, tuple[Build, Build]] = {
    "na-target-lladdr": (_na, _na),
    "ns-source-lladdr": (_ns, _ns),
    "rs-source-lladdr": (_rs, _rs),
    "ns-lladdr-second-option": (_ns_second_option, _ns),
    "ns-lladdr-after-hop-by-hop": (_ns_hop_by_hop, _ns),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_nd_lladdr_option_only_own_mac(topo: Topology, attack: str) -> None:
    a, b, c = _setup(topo)
    if attack.startswith("rs"):
        # a Linux router learns the source link-layer address of router solicitations
        nsrun(b.ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    forged, honest = ATTACKS[attack]
    eth_dst, packet = forged(a, b, c.mac)
    seen, cached = _deliver(a, b, a.mac, eth_dst, packet)
    print(f"\n[{topo.backend}] {attack}: forged {seen}/{REPEAT} seen, victim caches {cached}")
    assert cached != c.mac
    assert seen == 0
    eth_dst, packet = honest(a, b, a.mac)
    seen, cached = _deliver(a, b, a.mac, eth_dst, packet)
    print(f"[{topo.backend}] {attack}: control {seen}/{REPEAT} seen, victim caches {cached}")
    assert seen == REPEAT
    assert cached == a.mac


def test_nd_lladdr_option_pair_mac_only_for_pair_address(topo: Topology) -> None:
    """An address pair's MAC is advertised for the pair's address only, not the port's."""
    pair = AllowedAddressPair(ipaddress.ip_network(f"{PAIR_IP6}/128"), PAIR_MAC)
    a, b, _ = _setup(topo, (pair,))
    results = {}
    for name, source, eth_src in (
        ("pair", PAIR_IP6, PAIR_MAC),
        ("fixed-ip", a.ip6, a.mac),
    ):
        message = frames.neighbour_advert(source, frames.nd_option(2, PAIR_MAC))
        packet = frames.icmp6(source, ALL_NODES, message)
        results[f"na-{name}"] = _deliver(
            a, b, eth_src, frames.ipv6_multicast_mac(ALL_NODES), packet
        )
        message = frames.neighbour_solicit(b.ip6, frames.nd_option(1, PAIR_MAC))
        packet = frames.icmp6(source, b.ip6, message)
        results[f"ns-{name}"] = _deliver(a, b, eth_src, b.mac, packet)
    print(f"\n[{topo.backend}] pair MAC: {results}")
    for kind in ("na", "ns"):
        assert results[f"{kind}-pair"] == (REPEAT, PAIR_MAC)
        seen, cached = results[f"{kind}-fixed-ip"]
        assert seen == 0 and cached != PAIR_MAC


def _dad_failed(vm: VM, address: str) -> bool:
    for _ in range(50):
        out = nsrun(vm.ns, "ip", "-6", "addr", "show", "dev", "eth0", "to", f"{address}/128")
        if "dadfailed" in out:
            return True
        if "tentative" not in out:
            return False
        time.sleep(0.1)
    return False


def test_real_stack_neighbour_discovery_passes(topo: Topology) -> None:
    """What Linux itself sends goes through: NS/NA with link-layer options (the ping in
    the setup) and DAD probes from :: with a nonce option (RFC 7527, enhanced_dad on):
    ``a`` takes ``b``'s address, ``b`` must see the probe and defend it."""
    a, b, _ = _setup(topo)
    assert nsrun(a.ns, "sysctl", "-n", "net.ipv6.conf.eth0.enhanced_dad").strip() == "1"
    nsrun(a.ns, "ip", "-6", "addr", "add", f"{b.ip6}/64", "dev", "eth0")
    assert _dad_failed(a, b.ip6)
