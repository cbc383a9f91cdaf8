"""Security-group semantics with real packets, both iptables backends."""

from __future__ import annotations

from collections.abc import Callable

from tests.functional.firewall.conftest import (
    EGRESS_ALL,
    Listener,
    Topology,
    eventually_ping,
    ping,
    rule,
    tcp_ok,
    udp_ok,
)


def test_default_deny_ingress_and_allowed_protocols(
    topo: Topology, listen: Callable[..., Listener]
) -> None:
    a, b = topo.add_vm("1"), topo.add_vm("2")
    open_ = topo.group(
        *EGRESS_ALL,
        rule("ingress", "IPv4", 6, (22, 22)),
        rule("ingress", "IPv4", 17, (53, 53)),
        rule("ingress", "IPv4", 1, icmp=(8, None)),
        rule("ingress", "IPv6", 6, (22, 22)),
        rule("ingress", "IPv6", 58, icmp=(128, None)),
    )
    closed = topo.group(*EGRESS_ALL)
    topo.port(a, (closed,))
    topo.port(b, (open_,))
    ok, failed = topo.apply()
    assert not failed and ok == {a.port_id, b.port_id}
    for port in (22, 23):
        listen(b, port)
        listen(b, port, family=6)
        listen(a, port)
    listen(b, 53, udp=True)
    listen(b, 54, udp=True)
    assert eventually_ping(a, b.ip4)
    assert eventually_ping(a, b.ip6)
    assert tcp_ok(a, b.ip4, 22)
    assert tcp_ok(a, b.ip6, 22)
    assert udp_ok(a, b.ip4, 53)
    # not allowed: other ports, and anything towards a (default deny ingress)
    assert not tcp_ok(a, b.ip4, 23)
    assert not tcp_ok(a, b.ip6, 23)
    assert not udp_ok(a, b.ip4, 54)
    assert not ping(b, a.ip4)
    assert not ping(b, a.ip6)
    assert not tcp_ok(b, a.ip4, 22)


def test_egress_only_what_rules_allow(topo: Topology, listen: Callable[..., Listener]) -> None:
    a, b = topo.add_vm("3"), topo.add_vm("4")
    everything_in = topo.group(rule("ingress", "IPv4"), rule("ingress", "IPv6"))
    restricted = topo.group(rule("egress", "IPv4", 6, (80, 80)))
    topo.port(a, (restricted,))
    topo.port(b, (everything_in,))
    assert not topo.apply()[1]
    listen(b, 80)
    listen(b, 81)
    assert tcp_ok(a, b.ip4, 80)
    assert not tcp_ok(a, b.ip4, 81)
    assert not ping(a, b.ip4)
    assert not ping(a, b.ip6)
