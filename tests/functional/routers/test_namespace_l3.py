"""The namespace L3 driver against the real kernel, checked with real packets, on both
iptables backends (see topology.py for the layout)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from tests.common.traffic import ask, neigh_mac, received, udp_socket, whoami_server
from tests.functional.routers.topology import Bed, ip, ping, reach, sh

EXT1 = "203.0.113.1"
GW_A = "203.0.113.10"
FIP_A = "203.0.113.20"
FIP_A2 = "203.0.113.21"
EXT2 = "198.51.100.1"
GW_B = "198.51.100.10"
FIP_B = "198.51.100.20"
FAR = "198.19.0.1"


@pytest.fixture(params=["nft", "legacy"])
def bed(request: pytest.FixtureRequest, make_netns: Callable[[str], str]) -> Iterator[Bed]:
    b = Bed(make_netns, request.param)
    try:
        yield b
    finally:
        b.close()


def _basic(bed: Bed, snat: bool = True) -> tuple[str, object, object]:
    ext1 = bed.upstream("e1", f"{EXT1}/24")
    sub_a = bed.subnet(bed.ext, "203.0.113.0/24", EXT1)
    net = bed.network()
    sub = bed.subnet(net, "192.0.2.0/24", "192.0.2.1")
    router = bed.router(gateway=((sub_a, GW_A),), interfaces=((net, sub),), enable_snat=snat)
    return ext1, (net, sub), router


def test_snat_and_floating_ip(bed: Bed) -> None:
    ext1, (net, sub), router = _basic(bed)
    vm1, _ = bed.vm(net, sub, "192.0.2.10")
    vm2, port2 = bed.vm(net, sub, "192.0.2.11")
    bed.floating(router, FIP_A, port2)
    bed.apply()
    # a VM without a floating IP reaches the outside as the gateway address
    with whoami_server(ext1, "ext"):
        assert ask(vm1, EXT1) == f"ext {GW_A}"
        # with a floating IP: as its floating IP
        assert ask(vm2, EXT1) == f"ext {FIP_A}"
    # the outside reaches the VM through its floating IP, untranslated source
    with whoami_server(vm2, "vm2"):
        assert ask(ext1, FIP_A) == f"vm2 {EXT1}"
        # hairpin: a VM reaches another VM through the floating IP
        assert ask(vm1, FIP_A) == f"vm2 {GW_A}"
    # and the upstream learnt the floating IP at the gateway port's MAC
    qg = bed.routers[router.id].gateway
    assert qg is not None
    assert neigh_mac(ext1, FIP_A) == qg.port.mac_address
    # nothing changes when applied again (no device, address, route, rule or chain)
    before = ip(f"qrouter-{router.id}", "-d", "-j", "link", "show")
    bed.apply()
    assert ip(f"qrouter-{router.id}", "-d", "-j", "link", "show") == before


def _mtu(ns: str, device: str) -> int:
    return int(json.loads(ip(ns, "-j", "link", "show", device))[0]["mtu"])


def _big_ping(ns: str, address: str, payload: int) -> str:
    """One ping with ``payload`` bytes and DF set: ping's output and error text."""
    ping_df = ("ping", "-n", "-c", "1", "-W", "2", "-M", "do", "-s", str(payload))
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, *ping_df, address],
        capture_output=True,
        text=True,
        timeout=15,
    )
    return proc.stdout + proc.stderr


def test_network_mtu_change_reaches_the_router_ports(bed: Bed) -> None:
    ext1, (net, sub), router = _basic(bed)
    vm, port = bed.vm(net, sub, "192.0.2.10")
    bed.floating(router, FIP_A, port)
    bed.apply()
    reach(ext1, FIP_A)
    assert " 0% packet loss" in _big_ping(ext1, FIP_A, 1450 - 28)
    # the tenant network's MTU goes down to 1400 (the VM learns it from DHCP)
    bed.set_mtu(net, 1400)
    ip(vm, "link", "set", "eth0", "mtu", "1400")
    bed.apply()
    qr = bed.routers[router.id].interfaces[0].port
    assert _mtu(f"qrouter-{router.id}", f"qr-{qr.id[:11]}") == 1400
    assert _mtu(bed.host, qr.device_name) == 1400
    # a packet too big for the tenant network now: the router says so (path MTU
    # discovery works); with the old MTU on qr- it went out and vanished in the bridge
    assert "mtu = 1400" in _big_ping(ext1, FIP_A, 1450 - 28)
    assert " 0% packet loss" in _big_ping(ext1, FIP_A, 1400 - 28)


def test_a_new_router_announces_its_addresses_once_wired(bed: Bed) -> None:
    ext1, (net, sub), router = _basic(bed)
    sh("ip", "netns", "exec", ext1, "sysctl", "-qw", "net.ipv4.conf.eth0.arp_accept=1")
    _, port = bed.vm(net, sub, "192.0.2.10")
    bed.floating(router, FIP_A, port)
    state = bed.state()
    assert not bed.l3.apply_routers(list(state.routers.values()), state).failed
    time.sleep(0.5)  # the announcements find no carrier: the host ends are not wired yet
    bed.apply()  # now the L2 driver wires them
    bed.l3.announcer.wait_idle()
    qg = bed.routers[router.id].gateway
    assert qg is not None
    # learnt from the announcements alone: nothing else was sent to the upstream
    assert neigh_mac(ext1, GW_A) == qg.port.mac_address
    assert neigh_mac(ext1, FIP_A) == qg.port.mac_address


def test_no_snat_between_internal_subnets_and_when_disabled(bed: Bed) -> None:
    ext1 = bed.upstream("e1", f"{EXT1}/24")
    sub_a = bed.subnet(bed.ext, "203.0.113.0/24", EXT1)
    net1, net2 = bed.network(), bed.network()
    sub1 = bed.subnet(net1, "192.0.2.0/26", "192.0.2.1")
    sub2 = bed.subnet(net2, "192.0.2.64/26", "192.0.2.65")
    bed.router(
        gateway=((sub_a, GW_A),), interfaces=((net1, sub1), (net2, sub2)), enable_snat=False
    )
    vm1, _ = bed.vm(net1, sub1, "192.0.2.10")
    vm2, _ = bed.vm(net2, sub2, "192.0.2.70")
    bed.apply()
    with whoami_server(vm2, "vm2"):
        assert ask(vm1, "192.0.2.70") == "vm2 192.0.2.10"
    # SNAT off: the packet leaves untranslated; the upstream has no route back
    with whoami_server(ext1, "ext"):
        assert ask(vm1, EXT1) == ""
    ip(ext1, "route", "add", "192.0.2.0/24", "via", GW_A)
    with whoami_server(ext1, "ext"):
        assert ask(vm1, EXT1) == "ext 192.0.2.10"


def test_extra_route(bed: Bed) -> None:
    ext1, (net, sub), router = _basic(bed)
    inner, _ = bed.vm(net, sub, "192.0.2.20")
    ip(inner, "addr", "add", "198.19.5.1/32", "dev", "lo")
    ip(inner, "route", "add", "198.19.0.0/16", "via", "192.0.2.1")
    bed.apply()
    assert not ping(ext1, "198.19.5.1")
    ip(ext1, "route", "add", "198.19.5.0/24", "via", GW_A)
    assert not ping(ext1, "198.19.5.1")  # the router has no route there yet
    bed.routers[router.id] = type(router)(
        **{
            **{f: getattr(router, f) for f in router.__dataclass_fields__},
            "routes": bed.router_routes(("198.19.5.0/24", "192.0.2.20")),
        }
    )
    bed.apply()
    assert ping(ext1, "198.19.5.1")


FAR_HOST = "198.51.100.5"


# the route table is the same on both backends: once is enough
@pytest.mark.parametrize("bed", ["nft"], indirect=True)
def test_extra_subnets_of_the_external_network_are_on_link(bed: Bed) -> None:
    _, (net, sub), router = _basic(bed)
    vm1, _ = bed.vm(net, sub, "192.0.2.10")
    vm2, port2 = bed.vm(net, sub, "192.0.2.11")
    bed.floating(router, FIP_A, port2)
    # a host of another subnet of the external network, on the same segment; it reaches
    # the router's subnet on-link and has no gateway
    far = bed.upstream("e3", f"{FAR_HOST}/24", extra_routes=("203.0.113.0/24 dev eth0",))
    bed.apply()
    reach(vm1, EXT1)
    # without the on-link route the router sends it to the upstream gateway: lost
    assert not ping(vm1, FAR_HOST, count=1)
    bed.set_extra_subnets(router, bed.subnet(bed.ext, "198.51.100.0/24", None))
    bed.apply()
    with whoami_server(far, "far"):
        assert ask(vm1, FAR_HOST) == f"far {GW_A}"  # the main table, SNAT
        assert ask(vm2, FAR_HOST) == f"far {FIP_A}"  # the floating IP's policy table
    qg = bed.routers[router.id].gateway
    assert qg is not None
    # the far host was reached directly (it learnt the router's addresses on-link)
    assert neigh_mac(far, GW_A) == qg.port.mac_address
    assert neigh_mac(far, FIP_A) == qg.port.mac_address
    # the subnet goes from the external network: its routes go, nothing else changes
    before = ip(f"qrouter-{router.id}", "-d", "-j", "link", "show")
    bed.set_extra_subnets(router)
    bed.apply()
    for table in ("main", "1000"):
        assert "198.51.100.0/24" not in ip(f"qrouter-{router.id}", "route", "show", "table", table)
    assert ip(f"qrouter-{router.id}", "-d", "-j", "link", "show") == before


def test_bad_extra_route_fails_alone(bed: Bed) -> None:
    _, _, good = _basic(bed)
    net2 = bed.network()
    sub2 = bed.subnet(net2, "192.0.2.128/25", "192.0.2.129")
    bad = bed.router(interfaces=((net2, sub2),), routes=(("198.19.0.0/16", "203.0.113.99"),))
    state = bed.state()
    out = bed.l3.apply_routers([state.routers[good.id], state.routers[bad.id]], state)
    assert out.succeeded == {good.id}
    assert "nexthop 203.0.113.99" in out.failed[bad.id]


def test_overlapping_routers_stay_isolated(bed: Bed) -> None:
    ext1 = bed.upstream("e1", f"{EXT1}/24")
    sub_a = bed.subnet(bed.ext, "203.0.113.0/24", EXT1)
    vms = {}
    for tag, gw, fip in (("a", GW_A, FIP_A), ("b", "203.0.113.11", FIP_A2)):
        net = bed.network()
        sub = bed.subnet(net, "192.0.2.0/24", "192.0.2.1")
        router = bed.router(gateway=((sub_a, gw),), interfaces=((net, sub),))
        ns, port = bed.vm(net, sub, "192.0.2.10")
        bed.floating(router, fip, port)
        vms[tag] = (ns, router)
    bed.apply()
    with whoami_server(vms["a"][0], "a"), whoami_server(vms["b"][0], "b"):
        assert ask(ext1, FIP_A) == f"a {EXT1}"
        assert ask(ext1, FIP_A2) == f"b {EXT1}"
    with whoami_server(ext1, "ext"):
        assert ask(vms["a"][0], EXT1) == f"ext {FIP_A}"
        assert ask(vms["b"][0], EXT1) == f"ext {FIP_A2}"


def test_floating_ip_moves_and_upstream_arp_follows(bed: Bed) -> None:
    ext1 = bed.upstream("e1", f"{EXT1}/24")
    sub_a = bed.subnet(bed.ext, "203.0.113.0/24", EXT1)
    setup = {}
    for tag, gw in (("a", GW_A), ("b", "203.0.113.11")):
        net = bed.network()
        sub = bed.subnet(net, "192.0.2.0/24", "192.0.2.1")
        router = bed.router(gateway=((sub_a, gw),), interfaces=((net, sub),))
        ns, port = bed.vm(net, sub, "192.0.2.10")
        setup[tag] = (ns, router, port)
    fip = bed.floating(setup["a"][1], FIP_A, setup["a"][2])
    bed.apply()
    with whoami_server(setup["a"][0], "a"):
        assert ask(ext1, FIP_A) == f"a {EXT1}"
    mac_a = bed.routers[setup["a"][1].id].gateway.port.mac_address  # type: ignore[union-attr]
    mac_b = bed.routers[setup["b"][1].id].gateway.port.mac_address  # type: ignore[union-attr]
    assert neigh_mac(ext1, FIP_A) == mac_a
    bed.move(fip, setup["b"][1], setup["b"][2])
    bed.apply()
    bed.l3.announcer.wait_idle()
    # the upstream's cache follows the gratuitous ARP, without asking
    assert neigh_mac(ext1, FIP_A) == mac_b
    with whoami_server(setup["b"][0], "b"):
        assert ask(ext1, FIP_A) == f"b {EXT1}"


def test_floating_ip_moved_inside_a_router_drops_the_old_flows(bed: Bed) -> None:
    ext1, (net, sub), router = _basic(bed)
    vm_a, port_a = bed.vm(net, sub, "192.0.2.10")
    vm_b, port_b = bed.vm(net, sub, "192.0.2.11")
    fip = bed.floating(router, FIP_A, port_a)
    bed.apply()
    rx_a, rx_b = udp_socket(vm_a, port=6000), udp_socket(vm_b, port=6000)
    tx = udp_socket(ext1, port=7000)  # one 5-tuple: one conntrack entry
    try:
        tx.sendto(b"1", (FIP_A, 6000))
        assert received(rx_a) == [b"1"]
        bed.move(fip, router, port_b)
        bed.apply()
        tx.sendto(b"2", (FIP_A, 6000))
        # without deleting the flow's conntrack entry, "2" would still be DNATed to vm_a
        assert received(rx_b) == [b"2"]
        assert received(rx_a) == []
    finally:
        for sock in (rx_a, rx_b, tx):
            sock.close()


def test_ipv6_is_routed_untranslated(bed: Bed) -> None:
    ext1 = bed.upstream("e1", f"{EXT1}/24")
    ip(ext1, "addr", "add", "fd00:e::1/64", "dev", "eth0", "nodad")
    ip(ext1, "-6", "route", "add", "fd00:1::/64", "via", "fd00:e::10")
    sub_a = bed.subnet(bed.ext, "203.0.113.0/24", EXT1)
    sub_a6 = bed.subnet(bed.ext, "fd00:e::/64", "fd00:e::1")
    net = bed.network(mtu=1450)
    sub = bed.subnet(net, "192.0.2.0/24", "192.0.2.1")
    sub6 = bed.subnet(net, "fd00:1::/64", "fd00:1::1")
    router = bed.router(gateway=((sub_a, GW_A), (sub_a6, "fd00:e::10")), interfaces=((net, sub),))
    # the interface port also gets the IPv6 subnet's gateway address
    rp = router.interfaces[0]
    dual = bed.port(
        net,
        (sub, "192.0.2.1"),
        (sub6, "fd00:1::1"),
        owner="network:router_interface",
        device_id=router.id,
    )
    del bed.ports[rp.port.id]
    bed.routers[router.id] = dataclasses.replace(
        router, interfaces=(dataclasses.replace(rp, port=dual, subnets=(sub, sub6)),)
    )
    vm, _ = bed.vm(net, sub, "192.0.2.10", v6=(sub6, "fd00:1::10"))
    bed.apply()
    reach(vm, "fd00:e::1", look_in=(f"qrouter-{router.id}", ext1))
    with whoami_server(ext1, "ext", family=6):
        # not translated: the upstream sees the VM's own address
        assert ask(vm, "fd00:e::1", family=6) == "ext fd00:1::10"
    routes = ip(f"qrouter-{router.id}", "-6", "route", "show", "default")
    assert "via fd00:e::1" in routes


def test_two_external_subnets_reply_through_their_own_gateway(bed: Bed) -> None:
    # far host FAR sits behind ext1; ext2 forwards what it gets to ext1
    ext1 = bed.upstream("e1", f"{EXT1}/24", (f"{'198.51.100.0/24'} dev eth0",))
    ip(ext1, "addr", "add", f"{FAR}/32", "dev", "lo")
    ext2 = bed.upstream("e2", f"{EXT2}/24", (f"{FAR}/32 dev eth0",))
    sh("ip", "netns", "exec", ext2, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    for ns in (ext1, ext2):
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=0")
    sub_a = bed.subnet(bed.ext, "203.0.113.0/24", EXT1)
    sub_b = bed.subnet(bed.ext, "198.51.100.0/24", EXT2)
    net = bed.network()
    sub = bed.subnet(net, "192.0.2.0/24", "192.0.2.1")
    router = bed.router(gateway=((sub_a, GW_A), (sub_b, GW_B)), interfaces=((net, sub),))
    vm_a, port_a = bed.vm(net, sub, "192.0.2.10")
    vm_b, port_b = bed.vm(net, sub, "192.0.2.11")
    bed.floating(router, FIP_A, port_a)
    bed.floating(router, FIP_B, port_b)
    bed.apply()

    def forwarded() -> int:
        stats = json.loads(ip(ext2, "-s", "-j", "link", "show", "eth0"))[0]["stats64"]
        return int(stats["tx"]["packets"])

    start = forwarded()
    with whoami_server(vm_a, "a"):
        assert ask(ext1, FIP_A, source=FAR) == f"a {FAR}"
    assert forwarded() - start < 3  # replies from subnet A's floating IP go to ext1 directly
    start = forwarded()
    with whoami_server(vm_b, "b"):
        assert ask(ext1, FIP_B, source=FAR) == f"b {FAR}"
    # replies from subnet B's floating IP went through subnet B's gateway (ext2)
    assert forwarded() - start >= 3
