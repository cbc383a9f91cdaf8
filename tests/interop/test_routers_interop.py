"""Unmodified Neutron 29 drives netagent's routers (issue 11): router create with a
gateway, interface add, floating IP create / associate / disassociate, all through the
REST API, checked on the server's view (L3 agent, port and floating IP statuses) and with
real packets.

One simulated host (``net1``) runs ``netagent-agent`` with ``source = neutron``, the Linux
bridge driver and ``l3_driver = namespace``, in the machine's mount namespace (its router
namespaces must be usable from outside). An "upstream" namespace (203.0.113.1) sits on the
flat external network behind the host's ``ext0``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.common.traffic import ask, whoami_server
from tests.fullstack import harness
from tests.interop import cloud, neutron_server
from tests.interop.api import NeutronApi

HOST = "net1"
TUNNEL_IP = "198.18.0.11"
UPSTREAM = "203.0.113.1"
TIMEOUT = 60


class RouterHostFabric(cloud.InteropFabric):
    """One host with the namespace L3 driver and an upstream on the external network."""

    def write_agent_config(self, host: harness.Host) -> None:
        super().write_agent_config(host)
        with host.config_file.open("a") as config:
            config.write(f"physical_interface_mappings = {neutron_server.PHYSNET}:ext0\n")


@pytest.fixture(scope="module")
def neutron_l3(
    neutron: neutron_server.NeutronServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[neutron_server.NeutronServer]:
    """A second server of this module only, with the L3 router plugin.

    The session's server runs without it: with it, the L2 tier's kill-and-restart test
    lost pings (3 runs of 3; 0 of 1 without), not yet understood. It shares the session's
    Keystone (as service user ``neutron-l3``, outside the catalog), and depends on the
    session's server so that the shared virtualenv is held for the session.
    """
    with neutron_server.second_server(
        neutron, tmp_path_factory.mktemp("neutron-l3"), "neutron-l3", service_plugins="router"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def api(neutron_l3: neutron_server.NeutronServer) -> NeutronApi:
    return neutron_l3.api()


@pytest.fixture(scope="module")
def fabric(
    neutron_l3: neutron_server.NeutronServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RouterHostFabric]:
    for name in cloud.leftover_namespaces():
        harness.run("ip", "netns", "delete", name, check=False)
    fab = RouterHostFabric(tmp_path_factory.mktemp("routers"), neutron_l3, l3_driver="namespace")
    try:
        fab.start()
        host = fab.add_host(HOST, TUNNEL_IP)
        fab.upstream = fab._netns("up")
        harness.ip(
            host.netns,
            "link",
            "add",
            "ext0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            fab.upstream,
        )
        harness.ip(host.netns, "link", "set", "ext0", "up")
        harness.ip(fab.upstream, "addr", "add", f"{UPSTREAM}/24", "dev", "eth0")
        harness.ip(fab.upstream, "link", "set", "eth0", "up")
        fab.start_neutron_agents()
        yield fab
    finally:
        print(fab.diagnostics())
        fab.close()


@pytest.fixture(scope="module")
def topology(api: NeutronApi, fabric: RouterHostFabric) -> dict[str, Any]:
    """External and internal networks, a router with a gateway and an interface."""
    neutron_server.wait_until(
        "L3 agent alive",
        lambda: any(a["alive"] for a in api.agents(host=HOST, agent_type="L3 agent")),
        TIMEOUT,
        0.5,
    )
    ext = api.create(
        "network",
        name="ext",
        **{
            "router:external": True,
            "provider:network_type": "flat",
            "provider:physical_network": neutron_server.PHYSNET,
        },
    )
    ext_subnet = api.create(
        "subnet",
        network_id=ext["id"],
        cidr="203.0.113.0/24",
        ip_version=4,
        enable_dhcp=False,
        gateway_ip=UPSTREAM,
        allocation_pools=[{"start": "203.0.113.10", "end": "203.0.113.50"}],
    )
    net = api.create("network", name="tenant")
    subnet = api.create(
        "subnet",
        network_id=net["id"],
        cidr="192.0.2.0/24",
        ip_version=4,
        enable_dhcp=False,
        gateway_ip="192.0.2.1",
    )
    router = api.create("router", name="r1", external_gateway_info={"network_id": ext["id"]})
    api.request(
        "PUT", f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": subnet["id"]}
    )
    port = api.compute_port(net["id"], HOST)
    vm = fabric.add_neutron_vm("vm1", fabric.hosts[HOST], port, mtu=net["mtu"])
    harness.ip(vm.netns, "route", "add", "default", "via", "192.0.2.1")
    return {
        "ext": ext,
        "ext_subnet": ext_subnet,
        "router": api.show("router", router["id"]),
        "port": port,
        "vm": vm,
    }


def _router_ports(api: NeutronApi, router_id: str) -> list[dict[str, Any]]:
    return api.ports(device_id=router_id)


def test_router_ports_become_active_and_snat_works(
    api: NeutronApi, fabric: RouterHostFabric, topology: dict[str, Any]
) -> None:
    router = topology["router"]
    agents = api.get(f"/v2.0/routers/{router['id']}/l3-agents")["agents"]
    assert [a["host"] for a in agents] == [HOST]

    def all_active() -> bool:
        ports = _router_ports(api, router["id"])
        return len(ports) == 2 and all(p["status"] == "ACTIVE" for p in ports)

    neutron_server.wait_until("router ports ACTIVE", all_active, TIMEOUT, 0.5)
    neutron_server.wait_until(
        "VM port ACTIVE",
        lambda: api.show("port", topology["port"]["id"])["status"] == "ACTIVE",
        TIMEOUT,
        0.5,
    )
    gateway_ip = router["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]
    with whoami_server(fabric.upstream, "up"):
        harness.wait_for(
            "SNAT to the gateway address",
            lambda: ask(topology["vm"].netns, UPSTREAM) == f"up {gateway_ip}",
            timeout=TIMEOUT,
        )


def test_floating_ip_associate_and_disassociate(
    api: NeutronApi, fabric: RouterHostFabric, topology: dict[str, Any]
) -> None:
    fip = api.create(
        "floatingip", floating_network_id=topology["ext"]["id"], port_id=topology["port"]["id"]
    )
    address = fip["floating_ip_address"]
    neutron_server.wait_until(
        "floating IP ACTIVE",
        lambda: api.show("floatingip", fip["id"])["status"] == "ACTIVE",
        TIMEOUT,
        0.5,
    )
    vm = topology["vm"]
    with whoami_server(vm.netns, "vm1"):
        harness.wait_for(
            "upstream reaches the VM through its floating IP",
            lambda: ask(fabric.upstream, address) == f"vm1 {UPSTREAM}",
            timeout=TIMEOUT,
        )
    with whoami_server(fabric.upstream, "up"):
        assert ask(vm.netns, UPSTREAM) == f"up {address}"
    api.update("floatingip", fip["id"], port_id=None)
    neutron_server.wait_until(
        "floating IP DOWN",
        lambda: api.show("floatingip", fip["id"])["status"] == "DOWN",
        TIMEOUT,
        0.5,
    )
    with whoami_server(vm.netns, "vm1"):
        harness.wait_for(
            "floating IP no longer reaches the VM",
            lambda: ask(fabric.upstream, address) == "",
            timeout=TIMEOUT,
        )
