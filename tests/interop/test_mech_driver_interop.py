"""The netagent ML2 mechanism driver inside a real neutron-server (REST API + RPC only).

Agents here are :class:`tests.interop.reporter.StateReporter` stand-ins that send only
state reports, so binding is tested on its own; the real agent is in
test_neutron_interop.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.interop import neutron_server
from tests.interop.api import NeutronApi
from tests.interop.reporter import StateReporter


@pytest.fixture
def api(neutron: neutron_server.NeutronServer) -> NeutronApi:
    return neutron.api()


@pytest.fixture
def reporters(neutron: neutron_server.NeutronServer) -> Iterator[list[StateReporter]]:
    started: list[StateReporter] = []
    yield started
    for rep in started:
        rep.close()


def _reporter(
    neutron: neutron_server.NeutronServer, started: list[StateReporter], **confs: Any
) -> StateReporter:
    host = f"adhoc-{uuid.uuid4().hex[:8]}"
    rep = StateReporter(
        neutron.transport_url, host, {"devices": 0, **confs}, neutron_server.AGENT_REPORT_INTERVAL
    )
    started.append(rep)
    rep.start()
    return rep


@pytest.fixture
def vxlan_net(api: NeutronApi) -> Iterator[dict[str, Any]]:
    net = api.create("network", name="interop-vxlan")
    api.create("subnet", network_id=net["id"], cidr="192.0.2.0/24", ip_version=4)
    yield net
    for port in api.ports(network_id=net["id"]):
        api.remove("port", port["id"])
    api.remove("network", net["id"])


def _port(api: NeutronApi, net: dict[str, Any], host: str) -> dict[str, Any]:
    return api.compute_port(net["id"], host)


def test_reporting_agent_is_alive_with_its_configurations(
    neutron: neutron_server.NeutronServer, api: NeutronApi, reporters: list[StateReporter]
) -> None:
    rep = _reporter(neutron, reporters, interface_mappings={"physnet1": "eth1"})
    assert rep.replies == ["new"]
    (agent,) = api.agents(host=rep.host)
    assert agent["agent_type"] == "Netagent agent"
    assert agent["binary"] == "netagent-agent"
    assert agent["alive"] is True
    assert agent["configurations"]["interface_mappings"] == {"physnet1": "eth1"}


def test_vxlan_port_is_bound_with_tap(
    neutron: neutron_server.NeutronServer,
    api: NeutronApi,
    reporters: list[StateReporter],
    vxlan_net: dict[str, Any],
) -> None:
    assert vxlan_net["provider:network_type"] == "vxlan"
    filtering = _reporter(neutron, reporters, firewall_driver="iptables", tunnel_types=["vxlan"])
    plain = _reporter(neutron, reporters, firewall_driver="noop")
    port = _port(api, vxlan_net, filtering.host)
    assert port["binding:vif_type"] == "tap"
    assert port["binding:vif_details"] == {
        "bound_drivers": {"0": "netagent"},
        "connectivity": "l2",
        "port_filter": True,
    }
    assert port["status"] == "DOWN"
    port = _port(api, vxlan_net, plain.host)
    assert port["binding:vif_type"] == "tap"
    assert port["binding:vif_details"]["port_filter"] is False


def test_no_binding_without_a_matching_agent(
    neutron: neutron_server.NeutronServer,
    api: NeutronApi,
    reporters: list[StateReporter],
    vxlan_net: dict[str, Any],
) -> None:
    no_vxlan = _reporter(neutron, reporters, tunnel_types=[])
    assert _port(api, vxlan_net, no_vxlan.host)["binding:vif_type"] == "binding_failed"
    assert _port(api, vxlan_net, "no-such-host")["binding:vif_type"] == "binding_failed"


def test_flat_port_needs_the_physnet_in_interface_mappings(
    neutron: neutron_server.NeutronServer, api: NeutronApi, reporters: list[StateReporter]
) -> None:
    mapped = _reporter(neutron, reporters, interface_mappings={"physnet1": "eth1"})
    unmapped = _reporter(neutron, reporters, interface_mappings={"physnet9": "eth9"})
    net = api.create(
        "network",
        name="interop-flat",
        **{"provider:network_type": "flat", "provider:physical_network": "physnet1"},
    )
    try:
        api.create("subnet", network_id=net["id"], cidr="198.51.100.0/24", ip_version=4)
        assert _port(api, net, mapped.host)["binding:vif_type"] == "tap"
        assert _port(api, net, unmapped.host)["binding:vif_type"] == "binding_failed"
    finally:
        for port in api.ports(network_id=net["id"]):
            api.remove("port", port["id"])
        api.remove("network", net["id"])


def test_dead_agent_gets_no_binding_until_it_reports_again(
    neutron: neutron_server.NeutronServer,
    api: NeutronApi,
    reporters: list[StateReporter],
    vxlan_net: dict[str, Any],
) -> None:
    rep = _reporter(neutron, reporters)
    rep.stop()
    neutron_server.wait_until(
        "the agent declared dead",
        lambda: api.agents(host=rep.host)[0]["alive"] is False,
        timeout=neutron_server.AGENT_DOWN_TIME + 15,
        interval=1,
    )
    port = _port(api, vxlan_net, rep.host)
    assert port["binding:vif_type"] == "binding_failed"
    assert rep.report() == "revived"
    # ML2 retries failed bindings on revival only for 'Open vSwitch agent' (§7): a new
    # binding attempt (admin PUT of binding:host_id, same value) binds it.
    time.sleep(0.5)
    port = api.update("port", port["id"], **{"binding:host_id": rep.host})
    assert port["binding:vif_type"] == "tap"
