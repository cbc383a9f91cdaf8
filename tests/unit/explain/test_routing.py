"""``explain`` through a router: the small topology plus a second network and a router on
host-b with a gateway, a floating IP and an extra route."""

from __future__ import annotations

from typing import Any

import pytest

from netagent.explain import snapshot, trace
from netagent.model.network import Network
from netagent.model.port import Port
from netagent.model.router import Router
from netagent.model.state import DesiredState
from tests.unit.explain import topology as t

NET2 = "55555555-5555-4555-8555-555555555555"
EXT = "66666666-6666-4666-8666-666666666666"
ROUTER = "77777777-7777-4777-8777-777777777777"
VM5 = "e5000000-0000-4000-8000-000000000005"
QR1 = "f1000000-0000-4000-8000-0000000000f1"
QR2 = "f2000000-0000-4000-8000-0000000000f2"
QG = "f3000000-0000-4000-8000-0000000000f3"
FIP = "203.0.113.20"


def _rport(pid: str, net: str, address: str, cidr: str, gateway: str) -> dict[str, Any]:
    return {
        "id": pid,
        "network_id": net,
        "mac_address": f"fa:16:3e:00:01:{pid[1]}0",
        "fixed_ips": [{"subnet_id": net, "ip_address": address}],
        "binding:host_id": "host-b",
        "device_owner": "network:router_gateway" if net == EXT else "network:router_interface",
        "device_id": ROUTER,
        "subnets": [{"id": net, "cidr": cidr, "gateway_ip": gateway}],
    }


def _router(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": ROUTER,
        "gw_port": _rport(QG, EXT, "203.0.113.10", "203.0.113.0/24", "203.0.113.1"),
        "_interfaces": [
            _rport(QR1, t.NET, "192.0.2.1", "192.0.2.0/24", "192.0.2.1"),
            _rport(QR2, NET2, "198.51.100.1", "198.51.100.0/24", "198.51.100.1"),
        ],
        "routes": [{"destination": "198.19.0.0/16", "nexthop": "198.51.100.254"}],
        "_floatingips": [
            {
                "id": "88888888-8888-4888-8888-888888888888",
                "floating_ip_address": FIP,
                "fixed_ip_address": "192.0.2.30",
                "port_id": t.VM3,
                "router_id": ROUTER,
                "floating_network_id": EXT,
            }
        ],
    }
    doc.update(changes)
    return doc


def _snap(router: dict[str, Any] | None = None) -> snapshot.Snapshot:
    base = t.state()
    vm5 = Port.from_api(
        {
            "id": VM5,
            "network_id": NET2,
            "mac_address": "fa:16:3e:00:00:05",
            "fixed_ips": [{"subnet_id": NET2, "ip_address": "198.51.100.10"}],
            "binding:host_id": "host-a",
            "security_groups": [t.WEB],
        }
    )
    parsed = Router.from_sync(router or _router())
    net2 = Network.from_api(
        {"id": NET2, "provider:network_type": "vxlan", "provider:segmentation_id": 1002}
    )
    ports = [*base.ports.values(), vm5, *(rp.port for rp in parsed.ports)]
    state = DesiredState.build(
        networks=[*base.networks.values(), net2],
        ports=ports,
        security_groups=base.security_groups.values(),
        agents=base.agents.values(),
        routers=[parsed],
    )
    nets = [
        (nid, "vxlan", vni, state.tunnel_peers(nid, "host-a"))
        for nid, vni in ((t.NET, 1001), (NET2, 1002))
    ]
    planned = [p.id for p in state.ports.values() if p.host == "host-a"]
    doc = snapshot.document("host-a", nets, state, planned)
    fw = {"backend": "nft", "mark": 0x1000000, "excluded": {}, "bad_groups": {}}
    return snapshot.parse(doc, fw)


def _explain(snap: snapshot.Snapshot | None = None, **kw: Any) -> trace.Explanation:
    return trace.explain(snap or _snap(), trace.Query(**kw), None)


def _router_steps(exp: trace.Explanation) -> list[str]:
    return [h.detail for h in exp.path if h.kind == "router"]


def test_the_router_round_trips_through_the_status_document() -> None:
    snap = _snap()
    router = snap.routers[ROUTER]
    assert [rp.port.id for rp in router.interfaces] == [QR1, QR2]
    assert router.gateway is not None and router.gateway.port.id == QG
    assert str(router.floating_ips[0].floating_ip_address) == FIP


def test_outbound_is_snatted_to_the_gateway_address() -> None:
    exp = _explain(source=t.VM1, destination="198.18.5.5", protocol="tcp", port=22)
    assert exp.verdict == "pass", exp.where
    assert "SNAT 192.0.2.10 -> 203.0.113.10" in _router_steps(exp)
    assert exp.where.startswith(f"left router {ROUTER} on host-b by its gateway")
    hops = [(h.host, h.kind) for h in exp.path]
    # the router is on host-b: over the tunnel first
    assert hops.index(("host-a", "vxlan")) < hops.index(("host-b", "router"))
    gateway = next(h for h in exp.path if h.kind == "gateway")
    assert "via 203.0.113.1" in gateway.detail and "203.0.113.10" in gateway.detail


def test_a_port_with_a_floating_ip_leaves_as_the_floating_ip() -> None:
    exp = _explain(source=t.VM3, destination="198.18.5.5", protocol="icmp")
    assert f"SNAT 192.0.2.30 -> {FIP}" in _router_steps(exp)


def test_between_internal_networks_nothing_is_translated_and_ingress_is_checked() -> None:
    # VM5 is in WEB: tcp 80-90 from 192.0.2.0/28 only
    allowed = _explain(source=t.VM1, destination="198.51.100.10", protocol="tcp", port=80)
    assert allowed.verdict == "pass", allowed.where
    assert "no address translation" in _router_steps(allowed)
    assert allowed.destination_port is None or allowed.destination_port == VM5
    assert allowed.checks[-1].name == "ingress security group"
    assert allowed.checks[-1].rule_id == t.R_WEB
    assert allowed.path[-1].name == "tape5000000-00"
    denied = _explain(source=t.VM3, destination="198.51.100.10", protocol="tcp", port=80)
    assert denied.verdict == "drop"  # 192.0.2.30 is outside 192.0.2.0/28
    assert denied.checks[-1].reason.startswith("default deny")


def test_extra_route_goes_to_its_nexthop_untranslated() -> None:
    exp = _explain(source=t.VM1, destination="198.19.1.1", protocol="udp", port=53)
    steps = _router_steps(exp)
    assert "route 198.19.0.0/16 via 198.51.100.254 (main table)" in steps
    assert exp.verdict == "pass"
    assert "no port with 198.19.1.1" in exp.where


def test_no_gateway_means_no_route_outside() -> None:
    snap = _snap(_router(gw_port=None, _floatingips=[]))
    exp = _explain(snap, source=t.VM1, destination="198.18.5.5", protocol="tcp", port=22)
    assert exp.verdict == "drop"
    assert exp.where == f"router {ROUTER} has no route to 198.18.5.5"


def test_own_subnet_is_not_routed() -> None:
    exp = _explain(source=t.VM1, destination="192.0.2.99", protocol="udp", port=53)
    assert exp.verdict == "drop"
    assert not _router_steps(exp)


@pytest.mark.parametrize("bad", [{"cidr": "not a cidr"}, {"gateway_ip": "2001:db8::1"}])
def test_a_bad_router_in_the_document_is_refused(bad: dict[str, Any]) -> None:
    doc = snapshot.document("host-a", [], DesiredState.build(), [])
    router = _router()
    router["_interfaces"][0]["subnets"][0].update(bad)
    doc["routers"] = [router]
    with pytest.raises(ValueError, match="invalid explain document"):
        snapshot.parse(doc, {})


def test_router_ports_are_not_filtered_as_the_driver_does() -> None:
    # the snapshot carries device_owner: the driver leaves router ports unfiltered
    exp = _explain(source=t.VM1, destination="192.0.2.1", protocol="tcp", port=22)
    assert exp.verdict == "pass"
    assert exp.checks[-1].reason == "port security disabled: not filtered", exp.checks[-1]
