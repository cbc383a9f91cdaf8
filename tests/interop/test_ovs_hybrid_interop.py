"""Unmodified Neutron 29 binds ports on Open vSwitch hosts running the iptables firewall
with the hybrid plug, and its security groups filter real packets there.

Two simulated hosts with a private Open vSwitch each (as in test_ovs_interop.py) run
``netagent-agent`` with ``l2_driver = openvswitch`` and ``firewall_driver = iptables``.
The server binds ``vif_type ovs`` with ``ovs_hybrid_plug`` and ``port_filter`` true; the
"hypervisor" plugs each VM as os-vif does then (tap in ``qbr<port>``, veth ``qvb``/``qvo``,
``qvo`` on br-int with the iface-id). Two compute ports, one per host, sit in a security
group created through the API (Neutron's default egress rules, no ingress rule):

* ICMP between the VMs is blocked, as no rule allows it;
* an ingress ICMP rule added through the API lets the pings pass;
* deleting it stops them again.

Module-scoped scenario; the tests run in file order and build on each other's state.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.common import ovs as ovs_helper
from tests.fullstack import harness
from tests.interop import neutron_server, ovs_cloud, sg_checks
from tests.interop.api import NeutronApi

HOSTS = {"hy-host-a": "198.18.0.41", "hy-host-b": "198.18.0.42"}


@pytest.fixture(scope="module")
def fabric(
    neutron: neutron_server.NeutronServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ovs_cloud.OvsInteropFabric]:
    if not ovs_helper.available():
        pytest.skip("Open vSwitch is not installed (tools/setup-host.sh)")
    with ovs_cloud.running(
        neutron, tmp_path_factory.mktemp("hybrid-fabric"), HOSTS, firewall_driver="iptables"
    ) as fab:
        yield fab


@pytest.fixture(scope="module")
def group(api: NeutronApi) -> dict[str, Any]:
    """A fresh group: Neutron's default egress rules, no ingress rule."""
    created = api.create("security_group", name=f"interop-hybrid-{uuid.uuid4().hex[:6]}")
    assert all(r["direction"] == "egress" for r in created["security_group_rules"]), created
    return created


@pytest.fixture(scope="module")
def vms(
    api: NeutronApi, fabric: ovs_cloud.OvsInteropFabric, group: dict[str, Any]
) -> dict[str, harness.Vm]:
    """One compute port in ``group`` per host, bound for the hybrid plug, plugged as
    os-vif does it, and ACTIVE."""
    for name in HOSTS:
        sg_checks.wait_alive_with_iptables(api, name)
    net = api.plain_network("interop-hybrid", "203.0.113.0/24")
    result = {}
    for index, (name, host) in enumerate(fabric.hosts.items()):
        port = api.compute_port(net["id"], name, security_groups=[group["id"]])
        assert port["binding:vif_type"] == "ovs", port
        details = port["binding:vif_details"]
        assert details["ovs_hybrid_plug"] is True and details["port_filter"] is True, details
        vm = fabric.add_neutron_vm(f"hyvm{index}", host, port, mtu=net["mtu"])
        fabric.plug_like_os_vif(vm, details["bridge_name"], hybrid=True)
        result[name] = vm
    for vm in result.values():
        sg_checks.wait_status(api, vm.port_id, "ACTIVE")
    return result


def test_icmp_blocked_without_an_ingress_rule(vms: dict[str, harness.Vm]) -> None:
    a, b = vms["hy-host-a"], vms["hy-host-b"]
    sg_checks.assert_blocked(a, b)
    sg_checks.assert_blocked(b, a)


def test_rule_added_through_the_api_lets_icmp_pass(
    api: NeutronApi,
    fabric: ovs_cloud.OvsInteropFabric,
    vms: dict[str, harness.Vm],
    group: dict[str, Any],
) -> None:
    a, b = vms["hy-host-a"], vms["hy-host-b"]
    rule = api.create(
        "security_group_rule",
        security_group_id=group["id"],
        direction="ingress",
        ethertype="IPv4",
        protocol="icmp",
    )
    group["icmp_rule_id"] = rule["id"]
    fabric.wait_ping(a, b, timeout=sg_checks.CHANGE_TIMEOUT)
    fabric.wait_ping(b, a, timeout=sg_checks.CHANGE_TIMEOUT)


def test_rule_deleted_through_the_api_stops_icmp(
    api: NeutronApi,
    fabric: ovs_cloud.OvsInteropFabric,
    vms: dict[str, harness.Vm],
    group: dict[str, Any],
) -> None:
    a, b = vms["hy-host-a"], vms["hy-host-b"]
    rule_id = group.get("icmp_rule_id")
    assert rule_id, "the rule of the previous test is missing"
    api.remove("security_group_rule", rule_id)
    sg_checks.wait_blocked(a, b)
    sg_checks.wait_blocked(b, a)
