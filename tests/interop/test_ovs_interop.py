"""Unmodified Neutron 29 binds ports on Open vSwitch hosts: ``vif_type`` ``ovs``.

Two simulated hosts, each with its own ovsdb-server/ovs-vswitchd in its namespace (as in
tests/fullstack/test_openvswitch.py: userspace datapath, tunnel address on ``br-phy``), run
``netagent-agent`` with ``[agent] source = neutron`` and ``l2_driver = openvswitch``. Ports
are created through the REST API; the "hypervisor" plugs each VM the way os-vif does for
``vif_type ovs`` (the tap into ``vif_details.bridge_name`` with ``iface-id``). Assertions
are on the server's view (binding, status) and on packets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.common import ovs as ovs_helper
from tests.interop import neutron_server, ovs_cloud
from tests.interop.api import NeutronApi

HOSTS = {"host-a": "198.18.0.1", "host-b": "198.18.0.2"}
STATUS_TIMEOUT = 60


@pytest.fixture(scope="module")
def fabric(
    neutron: neutron_server.NeutronServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ovs_cloud.OvsInteropFabric]:
    if not ovs_helper.available():
        pytest.skip("Open vSwitch is not installed (tools/setup-host.sh)")
    with ovs_cloud.running(neutron, tmp_path_factory.mktemp("ovs-fabric"), HOSTS) as fab:
        yield fab


def _wait_alive(api: NeutronApi, host: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        agents = api.agents(host=host, agent_type="Netagent agent")
        return agents[0] if agents and agents[0]["alive"] else None

    return neutron_server.wait_until(f"agent on {host} alive", probe, 30, 0.5)


def test_ovs_hosts_get_vif_type_ovs_ports_go_active_and_ping(
    api: NeutronApi, fabric: ovs_cloud.OvsInteropFabric
) -> None:
    for name, tunnel_ip in HOSTS.items():
        agent = _wait_alive(api, name)
        assert agent["configurations"]["l2_driver"] == "openvswitch"
        assert agent["configurations"]["tunneling_ip"] == tunnel_ip
    net = api.plain_network("interop-ovs")
    vms = []
    for index, name in enumerate(HOSTS):
        port = api.compute_port(net["id"], name)
        assert port["binding:vif_type"] == "ovs", port
        details = port["binding:vif_details"]
        assert details["bridge_name"] == "br-int"
        assert details["datapath_type"] == "netdev"
        assert details["ovs_hybrid_plug"] is False and details["port_filter"] is False
        vm = fabric.add_neutron_vm(f"vm{index}", fabric.hosts[name], port, mtu=net["mtu"])
        fabric.plug_like_os_vif(vm, details["bridge_name"])
        vms.append(vm)
    for vm in vms:
        neutron_server.wait_until(
            f"port {vm.port_id} ACTIVE",
            lambda vm=vm: api.show("port", vm.port_id)["status"] == "ACTIVE" or None,
            STATUS_TIMEOUT,
            0.5,
        )
    fabric.wait_ping(vms[0], vms[1], timeout=30)
    fabric.wait_ping(vms[1], vms[0], timeout=30)
