"""Routes in any table and policy rules, checked by the kernel's view and by traffic."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest

from netagent.linux import ip_lib, routing
from netagent.privileged.errors import EntryExists, EntryNotFound
from tests.functional.linux.helpers import ip_out, ping

net = ipaddress.ip_network
addr = ipaddress.ip_address


def _pair(make_netns: Callable[[str], str]) -> tuple[str, str]:
    """Router namespace ``r`` and a peer ``p`` reachable over 192.0.2.0/24."""
    r, p = make_netns("r"), make_netns("p")
    ip_lib.create_veth("r0", "p0", namespace=r, peer_namespace=p, up=True, peer_up=True)
    ip_lib.add_address("r0", ipaddress.ip_interface("192.0.2.1/24"), namespace=r)
    ip_lib.add_address("p0", ipaddress.ip_interface("192.0.2.2/24"), namespace=p)
    ip_lib.add_address("r0", ipaddress.ip_interface("fd00:2::1/64"), namespace=r, nodad=True)
    ip_lib.add_address("p0", ipaddress.ip_interface("fd00:2::2/64"), namespace=p, nodad=True)
    # the peer owns 203.0.113.10 and answers through the router
    ip_lib.create_bridge("lo1", namespace=p, up=True)
    ip_lib.add_address("lo1", ipaddress.ip_interface("203.0.113.10/32"), namespace=p)
    routing.add_route(net("0.0.0.0/0"), namespace=p, gateway=addr("192.0.2.1"))
    return r, p


def test_routes_in_tables(make_netns: Callable[[str], str]) -> None:
    r, _p = _pair(make_netns)
    routing.add_route(net("0.0.0.0/0"), namespace=r, table=100, gateway=addr("192.0.2.2"))
    routing.add_route(
        net("198.51.100.0/24"),
        namespace=r,
        table=100,
        gateway=addr("192.0.2.2"),
        metric=50,
        source=addr("192.0.2.1"),
    )
    routing.add_route(net("198.18.0.0/15"), namespace=r, table=100, device="r0")
    routing.add_route(net("203.0.113.0/24"), namespace=r, table=100, type="blackhole")
    routing.add_route(
        net("198.19.0.0/16"),
        namespace=r,
        table=70000,
        gateway=addr("198.19.0.1"),
        device="r0",
        onlink=True,
    )
    routing.add_route(net("fd00:9::/64"), namespace=r, table=100, gateway=addr("fd00:2::2"))
    routing.add_route(net("::/0"), namespace=r, table=100, device="r0", metric=10)
    text = ip_out(r, "route", "show", "table", "100")
    assert "default via 192.0.2.2 dev r0" in text
    assert "198.51.100.0/24 via 192.0.2.2 dev r0 proto static src 192.0.2.1 metric 50" in text
    assert "198.18.0.0/15 dev r0 proto static scope link" in text
    assert "blackhole 203.0.113.0/24" in text
    assert "198.19.0.1 dev r0 proto static onlink" in ip_out(r, "route", "show", "table", "70000")
    text6 = ip_out(r, "-6", "route", "show", "table", "100")
    assert "fd00:9::/64 via fd00:2::2 dev r0" in text6 and "default dev r0" in text6

    routes = {(str(x.destination), x.type) for x in routing.list_routes(namespace=r, table=100)}
    assert ("203.0.113.0/24", "blackhole") in routes and ("fd00:9::/64", "unicast") in routes
    default = next(
        x
        for x in routing.list_routes(namespace=r, table=100, family=4)
        if x.destination == net("0.0.0.0/0")
    )
    assert default.gateway == addr("192.0.2.2") and default.device == "r0"

    with pytest.raises(EntryExists):
        routing.add_route(net("203.0.113.0/24"), namespace=r, table=100, type="blackhole")
    routing.add_route(
        net("203.0.113.0/24"), namespace=r, table=100, type="unreachable", replace=True
    )
    routing.delete_route(net("203.0.113.0/24"), namespace=r, table=100, type="unreachable")
    routing.delete_route(net("198.51.100.0/24"), namespace=r, table=100, metric=50)
    with pytest.raises(EntryNotFound):
        routing.delete_route(net("198.51.100.0/24"), namespace=r, table=100, metric=50)
    left = {str(x.destination) for x in routing.list_routes(namespace=r, table=100, family=4)}
    assert left == {"0.0.0.0/0", "198.18.0.0/15"}


def test_rules_add_list_delete(netns: str) -> None:
    routing.add_rule(
        namespace=netns, priority=100, table=100, source=net("198.51.100.0/24"), iif="lo"
    )
    routing.add_rule(
        namespace=netns, priority=101, table=101, destination=net("203.0.113.0/24"), oif="lo"
    )
    routing.add_rule(namespace=netns, priority=102, table=102, fwmark=0x10, fwmask=0xFF)
    routing.add_rule(namespace=netns, priority=103, table=103, source=net("fd00:5::/64"))
    text = ip_out(netns, "rule", "show")
    assert "100:\tfrom 198.51.100.0/24 iif lo lookup 100" in text
    assert "101:\tfrom all to 203.0.113.0/24 oif lo lookup 101" in text
    assert "102:\tfrom all fwmark 0x10/0xff lookup 102" in text
    assert "103:\tfrom fd00:5::/64 lookup 103" in ip_out(netns, "-6", "rule", "show")
    rules = {x.priority: x for x in routing.list_rules(namespace=netns)}
    assert rules[100].source == net("198.51.100.0/24") and rules[100].iif == "lo"
    assert (rules[102].fwmark, rules[102].fwmask, rules[102].table) == (0x10, 0xFF, 102)
    assert 32766 in rules  # the kernel's main-table rule
    with pytest.raises(EntryExists):
        routing.add_rule(namespace=netns, priority=102, table=102, fwmark=0x10, fwmask=0xFF)
    routing.delete_rule(namespace=netns, priority=102, table=102, fwmark=0x10, fwmask=0xFF)
    with pytest.raises(EntryNotFound):
        routing.delete_rule(namespace=netns, priority=102, table=102, fwmark=0x10, fwmask=0xFF)
    assert 102 not in {x.priority for x in routing.list_rules(namespace=netns)}
    assert 103 in {x.priority for x in routing.list_rules(namespace=netns, family=6)}


def test_rule_steers_ping_to_other_table(make_netns: Callable[[str], str]) -> None:
    r, _p = _pair(make_netns)
    # main table: 203.0.113.0/24 is a blackhole; table 100 knows the way
    routing.add_route(net("203.0.113.0/24"), namespace=r, type="blackhole")
    routing.add_route(net("203.0.113.0/24"), namespace=r, table=100, gateway=addr("192.0.2.2"))
    assert not ping(r, "203.0.113.10", timeout=1)
    routing.add_rule(namespace=r, priority=1000, table=100, destination=net("203.0.113.0/24"))
    assert ping(r, "203.0.113.10")
    routing.delete_rule(namespace=r, priority=1000, table=100, destination=net("203.0.113.0/24"))
    assert not ping(r, "203.0.113.10", timeout=1)
