"""Routers, floating IPs and agents."""

from __future__ import annotations

import ipaddress

import pytest

from netagent.model import Agent, FloatingIP, ModelError, Router
from tests.unit.model import samples as s
from tests.unit.model.samples import DELETE, changed


def test_sync_router() -> None:
    router = Router.from_sync(s.sync_router())
    assert router.id == s.ROUTER and router.enable_snat
    assert router.gateway is not None
    assert router.gateway.port.id == s.GW_PORT and router.gateway.port.host == "net1"
    assert router.gateway.subnets[0].cidr == ipaddress.ip_network("203.0.113.0/24")
    assert router.gateway.subnets[0].network_id == s.EXT_NET
    assert router.gateway.mtu == 1500
    assert [rp.port.id for rp in router.interfaces] == [s.IF_PORT]
    assert router.interfaces[0].mtu == 1450
    assert router.routes[0].destination == ipaddress.ip_network("198.18.0.0/16")
    assert router.floating_ips[0].floating_ip_address == ipaddress.ip_address("203.0.113.20")
    assert router.external_network_id == s.EXT_NET
    assert [rp.port.id for rp in router.ports] == [s.GW_PORT, s.IF_PORT]


def test_sync_router_without_gateway_or_interfaces() -> None:
    data = s.sync_router()
    for key in ("gw_port", "_interfaces", "_floatingips", "external_gateway_info", "enable_snat"):
        del data[key]
    router = Router.from_sync(data)
    assert (router.gateway, router.interfaces, router.floating_ips, router.enable_snat) == (
        None,
        (),
        (),
        True,
    )


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("name", "r\n1", "name"),
        ("enable_snat", "no", "enable_snat"),
        ("gw_port", [], "gw_port"),
        ("gw_port.mac_address", "fa:16:3e:aa:bb", "gw_port.mac_address"),
        ("gw_port.subnets[0].cidr", "203.0.113.0/33", "gw_port.subnets[0].cidr"),
        ("gw_port.subnets[0].id", DELETE, "gw_port.subnets[0].id"),
        ("gw_port.network_id", s.NET, "external_gateway_info.network_id"),
        (
            "_interfaces[0].fixed_ips[0].ip_address",
            "192.0.2.1/24",
            "_interfaces[0].fixed_ips[0].ip_address",
        ),
        ("_interfaces[0].mtu", 40, "_interfaces[0].mtu"),
        ("routes[0].destination", "198.18.0.1/16", "routes[0].destination"),
        ("routes[0].nexthop", "fd00::1", "routes[0].nexthop"),
        ("_floatingips[0].port_id", DELETE, "_floatingips[0].port_id"),
        ("_floatingips[0].router_id", s.SG, "_floatingips[0].router_id"),
        ("ha", "false", "ha"),
    ],
)
def test_invalid_sync_router(path: str, value: object, field: str) -> None:
    with pytest.raises(ModelError) as info:
        Router.from_sync(changed(s.sync_router(), path, value))
    assert (info.value.kind, info.value.object_id, info.value.field) == ("router", s.ROUTER, field)


def test_sync_router_extra_subnets() -> None:
    data = s.sync_router()
    extra = {"id": s.NET, "cidr": "198.51.100.0/24", "gateway_ip": "198.51.100.1"}
    data["gw_port"]["extra_subnets"] = [extra]
    gateway = Router.from_sync(data).gateway
    assert gateway is not None
    assert [(x.id, str(x.cidr), x.network_id) for x in gateway.extra_subnets] == [
        (s.NET, "198.51.100.0/24", s.EXT_NET)
    ]
    assert Router.from_sync(s.sync_router()).interfaces[0].extra_subnets == ()


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"id": "x", "cidr": "198.51.100.0/24"}, "gw_port.extra_subnets[0].id"),
        ({"id": s.NET, "cidr": "198.51.100.1/24"}, "gw_port.extra_subnets[0].cidr"),
        ({"id": s.NET, "cidr": "198.51.100.0/24", "gateway_ip": "fd00::1"}, None),
        ("198.51.100.0/24", "gw_port.extra_subnets[0]"),
    ],
)
def test_invalid_extra_subnet(entry: object, field: str | None) -> None:
    data = s.sync_router()
    data["gw_port"]["extra_subnets"] = [entry]
    with pytest.raises(ModelError) as info:
        Router.from_sync(data)
    expected = field or "gw_port.extra_subnets[0].gateway_ip"
    assert (info.value.object_id, info.value.field) == (s.ROUTER, expected)


def test_extra_subnet_that_is_the_port_own_is_refused() -> None:
    data = s.sync_router()
    data["gw_port"]["extra_subnets"] = [dict(data["gw_port"]["subnets"][0])]
    with pytest.raises(ModelError) as info:
        Router.from_sync(data)
    assert info.value.field == "gw_port.extra_subnets[0].id"


def test_api_router() -> None:
    router = Router.from_api(s.api_router())
    assert (router.enable_snat, router.gateway, router.external_network_id) == (
        False,
        None,
        s.EXT_NET,
    )
    assert router.routes[0].nexthop == ipaddress.ip_address("192.0.2.254")


def test_floatingip() -> None:
    fip = FloatingIP.from_api(s.floatingip())
    assert fip.fixed_ip_address == ipaddress.ip_address("192.0.2.10")
    unassociated = FloatingIP.from_api(
        s.floatingip(port_id=None, fixed_ip_address=None, router_id=None)
    )
    assert (unassociated.port_id, unassociated.router_id) == (None, None)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("floating_ip_address", "203.0.113.0/24", "floating_ip_address"),
        ("fixed_ip_address", "fd00::1", "fixed_ip_address"),
        ("fixed_ip_address", None, "fixed_ip_address"),
        ("port_id", None, "port_id"),
        ("floating_network_id", DELETE, "floating_network_id"),
        ("status", "UP", "status"),
    ],
)
def test_invalid_floatingip(path: str, value: object, field: str) -> None:
    with pytest.raises(ModelError) as info:
        FloatingIP.from_api(changed(s.floatingip(), path, value))
    assert (info.value.kind, info.value.field) == ("floatingip", field)


def test_agent() -> None:
    agent = Agent.from_api(s.agent())
    assert agent == Agent("host-a", ipaddress.ip_address("198.18.0.1"), "Netagent agent")
    assert Agent.from_api({"host": "host-b"}).tunneling_ip is None


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("host", "host a", "host"),
        ("host", DELETE, "host"),
        ("configurations", "198.18.0.1", "configurations"),
        ("configurations.tunneling_ip", "198.18.0.256", "configurations.tunneling_ip"),
        ("agent_type", "Netagent\nagent", "agent_type"),
    ],
)
def test_invalid_agent(path: str, value: object, field: str) -> None:
    with pytest.raises(ModelError) as info:
        Agent.from_api(changed(s.agent(), path, value))
    assert (info.value.kind, info.value.field) == ("agent", field)
