"""Routes in any table and policy rules, checked by the kernel's view and by traffic."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest

from netagent.linux import ip_lib, routing
from netagent.privileged.errors import DeviceNotFound, EntryExists, EntryNotFound
from tests.functional.linux.helpers import apply_all, ip_out, ping

net = ipaddress.ip_network
addr = ipaddress.ip_address
apply = ip_lib.apply
AddRoute, DeleteRoute = ip_lib.AddRoute, ip_lib.DeleteRoute
AddRule, DeleteRule = ip_lib.AddRule, ip_lib.DeleteRule


def _pair(make_netns: Callable[[str], str]) -> tuple[str, str]:
    """Router namespace ``r`` and a peer ``p`` reachable over 192.0.2.0/24."""
    r, p = make_netns("r"), make_netns("p")
    apply_all(
        r,
        ip_lib.CreateVeth(name="r0", peer="p0", peer_namespace=p, up=True),
        ip_lib.AddAddress(device="r0", cidr="192.0.2.1/24"),
        ip_lib.AddAddress(device="r0", cidr="fd00:2::1/64", nodad=True),
    )
    apply_all(
        p,
        ip_lib.SetLink(name="p0", up=True),
        ip_lib.AddAddress(device="p0", cidr="192.0.2.2/24"),
        ip_lib.AddAddress(device="p0", cidr="fd00:2::2/64", nodad=True),
        # the peer owns 203.0.113.10 and answers through the router
        ip_lib.CreateBridge(name="lo1", up=True),
        ip_lib.AddAddress(device="lo1", cidr="203.0.113.10/32"),
        AddRoute(destination="0.0.0.0/0", gateway="192.0.2.1"),
    )
    return r, p


def test_routes_in_tables(make_netns: Callable[[str], str]) -> None:
    r, _p = _pair(make_netns)
    apply_all(
        r,
        AddRoute(destination="0.0.0.0/0", table=100, gateway="192.0.2.2"),
        AddRoute(
            destination="198.51.100.0/24",
            table=100,
            gateway="192.0.2.2",
            metric=50,
            source="192.0.2.1",
        ),
        AddRoute(destination="198.18.0.0/15", table=100, device="r0"),
        AddRoute(destination="203.0.113.0/24", table=100, type="blackhole"),
        AddRoute(
            destination="198.19.0.0/16",
            table=70000,
            gateway="198.19.0.1",
            device="r0",
            onlink=True,
        ),
        AddRoute(destination="fd00:9::/64", table=100, gateway="fd00:2::2"),
        AddRoute(destination="::/0", table=100, device="r0", metric=10),
    )
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
        apply(AddRoute(destination="203.0.113.0/24", table=100, type="blackhole"), namespace=r)
    replace = AddRoute(destination="203.0.113.0/24", table=100, type="unreachable", replace=True)
    apply(replace, namespace=r)
    apply(DeleteRoute(destination="203.0.113.0/24", table=100, type="unreachable"), namespace=r)
    apply(DeleteRoute(destination="198.51.100.0/24", table=100, metric=50), namespace=r)
    with pytest.raises(EntryNotFound):
        apply(DeleteRoute(destination="198.51.100.0/24", table=100, metric=50), namespace=r)
    with pytest.raises(DeviceNotFound):
        apply(AddRoute(destination="198.51.100.0/24", device="nosuchdev"), namespace=r)
    # a scope-link route is deleted too (as ``ip route del`` does it: any scope)
    apply(DeleteRoute(destination="198.18.0.0/15", table=100, device="r0"), namespace=r)
    left = {str(x.destination) for x in routing.list_routes(namespace=r, table=100, family=4)}
    assert left == {"0.0.0.0/0"}
    # who added a route: the kernel (connected) or a tool (static); the local table's
    # routes are skipped when asked
    main = routing.list_routes(namespace=r, family=4, local=False)
    protocols = {str(x.destination): x.protocol for x in main if x.table == routing.MAIN_TABLE}
    assert protocols["192.0.2.0/24"] == routing.PROTO_KERNEL
    assert {x.table for x in main} == {routing.MAIN_TABLE, 100, 70000}


def test_rules_add_list_delete(netns: str) -> None:
    apply_all(
        netns,
        AddRule(priority=100, table=100, source="198.51.100.0/24", iif="lo"),
        AddRule(priority=101, table=101, destination="203.0.113.0/24", oif="lo"),
        AddRule(priority=102, table=102, fwmark=0x10, fwmask=0xFF),
        AddRule(family=6, priority=103, table=103, source="fd00:5::/64"),
    )
    text = ip_out(netns, "rule", "show")
    assert "100:\tfrom 198.51.100.0/24 iif lo lookup 100" in text
    assert "101:\tfrom all to 203.0.113.0/24 oif lo lookup 101" in text
    assert "102:\tfrom all fwmark 0x10/0xff lookup 102" in text
    assert "103:\tfrom fd00:5::/64 lookup 103" in ip_out(netns, "-6", "rule", "show")
    rules = {x.priority: x for x in routing.list_rules(namespace=netns)}
    assert rules[100].source == net("198.51.100.0/24") and rules[100].iif == "lo"
    assert (rules[102].fwmark, rules[102].fwmask, rules[102].table) == (0x10, 0xFF, 102)
    assert 32766 in rules  # the kernel's main-table rule
    delete = DeleteRule(priority=102, table=102, fwmark=0x10, fwmask=0xFF)
    with pytest.raises(EntryExists):
        apply(AddRule(priority=102, table=102, fwmark=0x10, fwmask=0xFF), namespace=netns)
    apply(delete, namespace=netns)
    with pytest.raises(EntryNotFound):
        apply(delete, namespace=netns)
    assert 102 not in {x.priority for x in routing.list_rules(namespace=netns)}
    assert 103 in {x.priority for x in routing.list_rules(namespace=netns, family=6)}


def test_rule_steers_ping_to_other_table(make_netns: Callable[[str], str]) -> None:
    r, _p = _pair(make_netns)
    # main table: 203.0.113.0/24 is a blackhole; table 100 knows the way
    apply_all(
        r,
        AddRoute(destination="203.0.113.0/24", type="blackhole"),
        AddRoute(destination="203.0.113.0/24", table=100, gateway="192.0.2.2"),
    )
    assert not ping(r, "203.0.113.10", timeout=1)
    rule = AddRule(priority=1000, table=100, destination="203.0.113.0/24")
    apply(rule, namespace=r)
    assert ping(r, "203.0.113.10")
    apply(DeleteRule(priority=1000, table=100, destination="203.0.113.0/24"), namespace=r)
    assert not ping(r, "203.0.113.10", timeout=1)
