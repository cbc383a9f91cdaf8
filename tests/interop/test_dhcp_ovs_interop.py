"""Guests on Open vSwitch hosts get DHCP from the stock neutron-dhcp-agent plugged by netagent.

Module-scoped scenario (tests build on each other in file order): two simulated hosts,
each with a private Open vSwitch (userspace datapath) and netagent with ``l2_driver =
openvswitch`` (:mod:`tests.interop.ovs_cloud`). host-a also runs the unmodified
``neutron-dhcp-agent`` with ``interface_driver = netagent`` and ``[netagent] l2_driver =
openvswitch``: the DHCP port's ``tap`` goes onto br-int with os-vif's external_ids and
netagent's OVS driver tags it like a VM port. The guests are plugged as os-vif plugs
``vif_type ovs`` and run ISC dhclient; one is on host-b, behind br-tun and VXLAN.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.common import ovs as ovs_helper
from tests.fullstack import harness
from tests.interop import cloud, dhcp, neutron_server, ovs_cloud
from tests.interop.api import NeutronApi

HOSTS = {"host-a": "198.18.0.1", "host-b": "198.18.0.2"}
TIMEOUT = 60
CIDR = "198.51.100.0/24"
GATEWAY = "198.51.100.1"


def _wait(what: str, probe: Any, timeout: float = TIMEOUT) -> Any:
    return neutron_server.wait_until(what, probe, timeout, 0.5)


def _figure(**values: Any) -> None:
    print(json.dumps({"test": "dhcp_ovs_interop", **values}))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dhcp-ovs")


@pytest.fixture(scope="module")
def fabric(
    neutron: neutron_server.NeutronServer, workdir: Path
) -> Iterator[ovs_cloud.OvsInteropFabric]:
    if not ovs_helper.available():
        pytest.skip("Open vSwitch is not installed (tools/setup-host.sh)")
    with ovs_cloud.running(neutron, workdir, HOSTS) as fab:
        yield fab


@pytest.fixture(scope="module")
def agent(
    neutron: neutron_server.NeutronServer,
    api: NeutronApi,
    fabric: ovs_cloud.OvsInteropFabric,
) -> Iterator[dhcp.DhcpAgent]:
    switch = fabric.switches["host-a"]
    ovs = f"[netagent]\nl2_driver = openvswitch\novsdb_connection = {switch.connection}\n"
    with dhcp.running_agent(neutron, api, fabric.hosts["host-a"], HOSTS, ovs, TIMEOUT) as agent:
        yield agent


@pytest.fixture(scope="module")
def network(api: NeutronApi, agent: dhcp.DhcpAgent) -> dict[str, Any]:
    net = api.create("network", name="interop-dhcp-ovs")
    agent.network_ids.add(net["id"])
    started = time.monotonic()
    subnet = api.create(
        "subnet",
        network_id=net["id"],
        cidr=CIDR,
        ip_version=4,
        enable_dhcp=True,
        gateway_ip=GATEWAY,
    )
    net["subnet_id"] = subnet["id"]
    net["subnet_created"] = started
    return net


@pytest.fixture(scope="module")
def dhcp_port(api: NeutronApi, network: dict[str, Any]) -> dict[str, Any]:
    def active() -> dict[str, Any] | None:
        ports = api.ports(network_id=network["id"], device_owner="network:dhcp")
        return ports[0] if ports and ports[0]["status"] == "ACTIVE" else None

    port: dict[str, Any] = _wait("DHCP port ACTIVE", active)
    _figure(subnet_to_dhcp_port_active_s=round(time.monotonic() - network["subnet_created"], 2))
    return port


def _ovs_get(switch: Any, table: str, record: str, column: str) -> str:
    return str(switch.vsctl("get", table, record, column)).strip()


def test_dhcp_port_is_on_br_int_and_tagged_like_a_vm_port(
    fabric: ovs_cloud.OvsInteropFabric, network: dict[str, Any], dhcp_port: dict[str, Any]
) -> None:
    switch = fabric.switches["host-a"]
    tap = "tap" + dhcp_port["id"][:11]
    assert dhcp_port["binding:host_id"] == "host-a"
    assert dhcp_port["binding:vif_type"] == "ovs"
    assert switch.vsctl("port-to-br", tap).strip() == "br-int"
    assert _ovs_get(switch, "Interface", tap, "external_ids:iface-id") == f'"{dhcp_port["id"]}"'
    assert (
        _ovs_get(switch, "Interface", tap, "external_ids:attached-mac")
        == f'"{dhcp_port["mac_address"]}"'
    )
    # netagent's OVS driver wired it: the network's local VLAN, not the dead one
    assert _ovs_get(switch, "Port", tap, "other_config:net_uuid") == f'"{network["id"]}"'
    assert 1 <= int(_ovs_get(switch, "Port", tap, "tag")) <= 4094
    inside = harness.links(f"qdhcp-{network['id']}")
    ns_end = "ns-" + dhcp_port["id"][:11]
    assert inside[ns_end]["address"] == dhcp_port["mac_address"]
    assert inside[ns_end]["mtu"] == network["mtu"] == 1450


@pytest.fixture(scope="module")
def guests(
    api: NeutronApi,
    fabric: ovs_cloud.OvsInteropFabric,
    network: dict[str, Any],
    dhcp_port: dict[str, Any],
    workdir: Path,
) -> Iterator[dict[str, tuple[harness.Vm, dhcp.Dhclient]]]:
    result: dict[str, tuple[harness.Vm, dhcp.Dhclient]] = {}
    try:
        for index, name in enumerate(HOSTS):
            port = api.compute_port(network["id"], name)
            assert port["binding:vif_type"] == "ovs"
            netns = f"{cloud.NETNS_PREFIX}{fabric.tag}-guest{index}"
            fabric.namespaces.append(netns)
            host = fabric.hosts[name]
            # no address and the default MTU: both must come from DHCP
            harness.vmctl.create_vm(
                vm_ns=netns,
                port_id=port["id"],
                mac=port["mac_address"],
                ips=[],
                host_ns=host.netns,
            )
            address = port["fixed_ips"][0]["ip_address"]
            vm = harness.Vm(
                f"guest{index}",
                netns,
                host,
                port["id"],
                port["mac_address"],
                address,
                network["id"],
            )
            fabric.plug_like_os_vif(vm, port["binding:vif_details"]["bridge_name"])
            result[name] = (vm, dhcp.Dhclient(netns, workdir))
        for vm, _ in result.values():
            _wait(
                f"port {vm.port_id} ACTIVE",
                lambda vm=vm: api.show("port", vm.port_id)["status"] == "ACTIVE",
            )
        yield result
    finally:
        for pid in dhcp.pids_in_namespaces([vm.netns for vm, _ in result.values()]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("host", list(HOSTS))
def test_guest_gets_its_lease_through_br_int(
    network: dict[str, Any], guests: dict[str, tuple[harness.Vm, dhcp.Dhclient]], host: str
) -> None:
    vm, client = guests[host]
    assert harness.links(vm.netns)["eth0"]["mtu"] == 1500
    started = time.monotonic()
    assert client.once() == 0, (client.dir / "dhclient.out").read_text()
    _figure(host=host, time_to_lease_s=round(time.monotonic() - started, 2))
    lease = client.leases()[-1]
    assert (lease["reason"], lease["new_ip_address"]) == ("BOUND", vm.ip)
    assert lease["new_routers"] == GATEWAY
    assert lease["new_interface_mtu"] == str(network["mtu"]) == "1450"
    assert harness.links(vm.netns)["eth0"]["mtu"] == 1450


def test_metadata_over_tcp_from_the_dhcp_namespace(
    network: dict[str, Any],
    guests: dict[str, tuple[harness.Vm, dhcp.Dhclient]],
    dhcp_port: dict[str, Any],
) -> None:
    # TCP both ways through br-int: haproxy's answers leave the ns- end, which must
    # compute its own checksums on the userspace datapath (else the guest drops them)
    vm, _ = guests["host-b"]
    status, body = dhcp.http_get(vm.netns, "http://169.254.169.254/latest/meta-data/")
    assert status == 200, body
    answer = json.loads(body)
    assert answer["network_id"] == network["id"]
    assert answer["forwarded_for"] == vm.ip


def test_deleting_the_subnet_removes_the_dhcp_port_from_br_int(
    api: NeutronApi,
    fabric: ovs_cloud.OvsInteropFabric,
    network: dict[str, Any],
    guests: dict[str, tuple[harness.Vm, dhcp.Dhclient]],
    dhcp_port: dict[str, Any],
) -> None:
    switch = fabric.switches["host-a"]
    host = fabric.hosts["host-a"]
    tap = "tap" + dhcp_port["id"][:11]
    assert tap in switch.vsctl("list-ports", "br-int").split()
    for vm, client in guests.values():
        client.stop()
        api.remove("port", vm.port_id)
    api.remove("subnet", network["subnet_id"])
    _wait(
        "DHCP port deleted",
        lambda: not api.ports(network_id=network["id"], device_owner="network:dhcp"),
    )
    _wait(f"{tap} off br-int", lambda: tap not in switch.vsctl("list-ports", "br-int").split())
    assert tap not in harness.links(host.netns)
