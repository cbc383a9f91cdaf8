"""Unmodified Neutron 29 with ``service_plugins = trunk`` and netagent (issue 13 item 5).

Without netagent's trunk driver every neutron process exits at start with
``IncompatibleTrunkPluginConfiguration`` when netagent is the only mechanism driver. With
it, a server of this module's own (``neutron-trunk``: trunk plugin, ``mechanism_drivers =
netagent``) starts, one simulated host running the real ``netagent-agent`` binds and wires
two ports as usual, and a trunk whose parent would be netagent's is refused with 409 and
the reason. A second server (``neutron-trunk-ovs``: ``netagent,openvswitch``, so Open
vSwitch's trunk driver is loaded too) accepts a trunk on an unbound port; netagent then
refuses to bind that parent to its host (``binding_failed``) instead of wiring a trunk
without its subports. Both servers share the session's Keystone, like the routers module.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fullstack import harness
from tests.interop import cloud, neutron_server
from tests.interop.api import ApiError, NeutronApi
from tests.interop.reporter import StateReporter

HOST = "trunk1"
TUNNEL_IP = "198.18.0.21"
TIMEOUT = 60
NOT_IMPLEMENTED = "implement trunks (VLAN subports)"


def _server(
    neutron: neutron_server.NeutronServer,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    mechanism_drivers: str,
) -> Iterator[neutron_server.NeutronServer]:
    with neutron_server.second_server(
        neutron, tmp_path_factory.mktemp(name), name, "trunk", mechanism_drivers=mechanism_drivers
    ) as server:
        yield server


@pytest.fixture(scope="module")
def neutron_trunk(
    neutron: neutron_server.NeutronServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[neutron_server.NeutronServer]:
    """The trunk plugin with netagent as the only mechanism driver."""
    yield from _server(neutron, tmp_path_factory, "neutron-trunk", "netagent")


@pytest.fixture(scope="module")
def neutron_mixed(
    neutron: neutron_server.NeutronServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[neutron_server.NeutronServer]:
    """The trunk plugin with Open vSwitch's mechanism (and so trunk) driver loaded too."""
    yield from _server(neutron, tmp_path_factory, "neutron-trunk-ovs", "netagent,openvswitch")


@pytest.fixture(scope="module")
def api(neutron_trunk: neutron_server.NeutronServer) -> NeutronApi:
    return neutron_trunk.api()


@pytest.fixture(scope="module")
def fabric(
    neutron_trunk: neutron_server.NeutronServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[cloud.InteropFabric]:
    workdir = tmp_path_factory.mktemp("trunk-fabric")
    with cloud.running_fabric(neutron_trunk, workdir, {HOST: TUNNEL_IP}) as fab:
        yield fab


def _bound_port(api: NeutronApi, net: dict[str, Any], host: str) -> dict[str, Any]:
    return api.compute_port(net["id"], host)


@pytest.fixture(scope="module")
def network(api: NeutronApi, fabric: cloud.InteropFabric) -> dict[str, Any]:
    return api.plain_network("interop-trunk")


@pytest.fixture(scope="module")
def vms(
    api: NeutronApi, fabric: cloud.InteropFabric, network: dict[str, Any]
) -> tuple[harness.Vm, harness.Vm]:
    """Two bound ports on the host, and their VMs."""
    neutron_server.wait_until(
        "netagent alive",
        lambda: any(a["alive"] for a in api.agents(host=HOST, agent_type="Netagent agent")),
        TIMEOUT,
        0.5,
    )
    host = fabric.hosts[HOST]
    a, b = (
        fabric.add_neutron_vm(name, host, _bound_port(api, network, HOST), mtu=network["mtu"])
        for name in ("vm0", "vm1")
    )
    return a, b


def _refusal(api: NeutronApi, port_id: str) -> str:
    """Create a trunk on ``port_id``; the 409 message (fails if the trunk is accepted)."""
    with pytest.raises(ApiError) as refused:
        api.create("trunk", port_id=port_id)
    assert refused.value.status == 409, refused.value.body
    error = json.loads(refused.value.body)["NeutronError"]
    assert error["type"] == "TrunkNotSupported", error
    message: str = error["message"]
    assert message.startswith(f"Trunk on port {port_id} refused: "), message
    return message


def test_server_runs_with_the_trunk_plugin(
    neutron_trunk: neutron_server.NeutronServer, api: NeutronApi
) -> None:
    aliases = {ext["alias"] for ext in api.get("/v2.0/extensions")["extensions"]}
    assert {"trunk", "trunk-details"} <= aliases
    assert api.get("/v2.0/trunks")["trunks"] == []
    assert all(proc.poll() is None for proc in neutron_trunk.processes.values())


def test_netagent_ports_bind_wire_and_ping_as_usual(
    api: NeutronApi, fabric: cloud.InteropFabric, vms: tuple[harness.Vm, harness.Vm]
) -> None:
    a, b = vms
    for vm in vms:
        assert api.show("port", vm.port_id)["binding:vif_type"] == "tap"
    fabric.wait_wired(a, b, timeout=TIMEOUT)
    for vm in vms:
        neutron_server.wait_until(
            f"port {vm.port_id} ACTIVE",
            lambda vm=vm: api.show("port", vm.port_id)["status"] == "ACTIVE",
            TIMEOUT,
            0.5,
        )
    fabric.wait_ping(a, b)
    fabric.wait_ping(b, a)


def test_trunk_on_a_bound_netagent_port_is_refused(
    api: NeutronApi, fabric: cloud.InteropFabric, vms: tuple[harness.Vm, harness.Vm]
) -> None:
    a, b = vms
    message = _refusal(api, a.port_id)
    assert f"bound to host {HOST}, whose netagent agent does not {NOT_IMPLEMENTED}" in message
    assert api.get("/v2.0/trunks")["trunks"] == []
    assert api.show("port", a.port_id)["status"] == "ACTIVE"
    fabric.wait_ping(a, b)


def test_trunk_on_an_unbound_port_is_refused_when_netagent_is_the_only_driver(
    api: NeutronApi, network: dict[str, Any]
) -> None:
    port = api.create("port", network_id=network["id"])
    message = _refusal(api, port["id"])
    assert (
        f"netagent is the only trunk driver loaded and its agents do not {NOT_IMPLEMENTED}"
        in message
    )
    assert api.get("/v2.0/trunks")["trunks"] == []


def test_trunk_parent_accepted_elsewhere_is_not_bound_to_a_netagent_host(
    neutron_mixed: neutron_server.NeutronServer,
) -> None:
    mixed = neutron_mixed.api()
    host = f"trunk-{uuid.uuid4().hex[:8]}"
    rep = StateReporter(
        neutron_mixed.transport_url, host, {"devices": 0}, neutron_server.AGENT_REPORT_INTERVAL
    )
    rep.start()
    try:
        net = mixed.plain_network("interop-trunk")
        assert _bound_port(mixed, net, host)["binding:vif_type"] == "tap"
        _refusal(mixed, _bound_port(mixed, net, host)["id"])
        # unbound: Open vSwitch's driver might serve it on another host, so it is accepted
        parent = mixed.create("port", network_id=net["id"])
        trunk = mixed.create("trunk", port_id=parent["id"])
        bound = mixed.update(
            "port",
            parent["id"],
            device_owner="compute:nova",
            device_id=str(uuid.uuid4()),
            **{"binding:host_id": host},
        )
        assert bound["binding:vif_type"] == "binding_failed"
        assert mixed.show("trunk", trunk["id"])["status"] != "ACTIVE"
    finally:
        rep.close()
