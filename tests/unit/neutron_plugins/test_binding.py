"""The netagent mechanism driver's decisions (no Neutron needed)."""

from __future__ import annotations

from typing import Any

import pytest

from netagent.neutron_plugins import binding


def _agent(**confs: Any) -> dict[str, Any]:
    return {"agent_type": "Netagent agent", "host": "cmp1", "configurations": confs}


def test_allowed_types_without_agent_are_everything_supported() -> None:
    assert binding.allowed_network_types() == ["flat", "vlan", "vxlan"]


def test_agent_without_tunnel_types_key_may_take_vxlan() -> None:
    assert "vxlan" in binding.allowed_network_types(_agent())


@pytest.mark.parametrize(
    ("tunnel_types", "expected"),
    [([], ["flat", "vlan"]), (["vxlan"], ["flat", "vlan", "vxlan"]), (["gre"], ["flat", "vlan"])],
)
def test_reported_tunnel_types_limit_vxlan(tunnel_types: list[str], expected: list[str]) -> None:
    assert binding.allowed_network_types(_agent(tunnel_types=tunnel_types)) == expected


def test_mappings_come_from_interface_mappings() -> None:
    agent = _agent(interface_mappings={"physnet1": "eth1"}, bridge_mappings={"x": "br"})
    assert binding.mappings(agent) == {"physnet1": "eth1"}


@pytest.mark.parametrize(
    "agent",
    [
        {},
        {"configurations": None},
        {"configurations": "garbage"},
        _agent(interface_mappings=["physnet1"]),
        _agent(),
    ],
)
def test_missing_or_malformed_mappings_are_empty(agent: dict[str, Any]) -> None:
    assert binding.mappings(agent) == {}


def test_non_string_mapping_entries_are_dropped() -> None:
    agent = _agent(interface_mappings={"physnet1": "eth1", "p2": 3, 4: "eth4"})
    assert binding.mappings(agent) == {"physnet1": "eth1"}


@pytest.mark.parametrize(
    ("confs", "expected"),
    [
        ({"firewall_driver": "iptables"}, True),
        ({"firewall_driver": "openvswitch"}, True),
        ({"firewall_driver": "noop"}, False),
        ({"firewall_driver": " NOOP "}, False),
        ({"firewall_driver": ""}, False),
        ({"firewall_driver": None}, False),
        ({}, False),
    ],
)
def test_port_filter_follows_reported_firewall(confs: dict[str, Any], expected: bool) -> None:
    assert binding.port_filter(_agent(**confs)) is expected


def test_vif_details_sets_port_filter_per_agent_without_mutating_base() -> None:
    base = {"port_filter": False, "connectivity": "l2"}
    details = binding.vif_details(base, _agent(firewall_driver="iptables"))
    assert details == {"port_filter": True, "connectivity": "l2"}
    assert base["port_filter"] is False


def test_vif_details_adds_connectivity_if_missing() -> None:
    assert binding.vif_details({}, None) == {"port_filter": False, "connectivity": "l2"}


def test_openvswitch_agents_bind_ovs_with_their_bridge_and_bridge_mappings() -> None:
    agent = _agent(
        l2_driver="openvswitch",
        integration_bridge="br-int2",
        datapath_type="netdev",
        firewall_driver="iptables",
        bridge_mappings={"physnet1": "br-ex"},
        interface_mappings={"physnet2": "eth2"},
    )
    assert binding.vif_type(agent) == "ovs"
    assert binding.vif_type(_agent(l2_driver="linuxbridge")) == "tap"
    assert binding.mappings(agent) == {"physnet1": "br-ex"}
    details = binding.vif_details({"port_filter": True}, agent)
    assert details == {
        "port_filter": True,
        "connectivity": "l2",
        "bridge_name": "br-int2",
        "datapath_type": "netdev",
        "ovs_hybrid_plug": True,
    }
    odd = _agent(l2_driver="openvswitch", integration_bridge=7, datapath_type="dpdk;x")
    assert binding.vif_details({}, odd)["bridge_name"] == "br-int"
    assert binding.vif_details({}, odd)["datapath_type"] == "system"


@pytest.mark.parametrize(
    ("firewall", "hybrid"),
    [("iptables", True), (" IPTables ", True), ("noop", False), ("openvswitch", False),
     (None, False), (7, False)],
)  # fmt: skip
def test_openvswitch_hybrid_plug_and_port_filter_only_with_the_iptables_firewall(
    firewall: object, hybrid: bool
) -> None:
    """os-vif puts a port behind qbr only for the firewall that filters there; a port
    plugged straight into OVS is never claimed filtered (whatever firewall is reported)."""
    agent = _agent(l2_driver="openvswitch", firewall_driver=firewall)
    details = binding.vif_details({"port_filter": True}, agent)
    assert details["ovs_hybrid_plug"] is hybrid
    assert details["port_filter"] is hybrid
    # Linux bridge agents: no hybrid plug key, the filter follows the firewall
    lb = binding.vif_details({}, _agent(l2_driver="linuxbridge", firewall_driver=firewall))
    assert "ovs_hybrid_plug" not in lb


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        ({"trunk_details": {"trunk_id": "t1", "sub_ports": []}}, True),
        ({}, False),
        ({"trunk_details": None}, False),
        ({"trunk_details": {"trunk_id": ""}}, False),
        ({"trunk_details": "t1"}, False),
    ],
)
def test_trunk_parent_is_told_by_trunk_details(port: dict[str, Any], expected: bool) -> None:
    assert binding.is_trunk_parent(port) is expected


def test_trunk_on_a_port_bound_to_a_netagent_host_is_refused() -> None:
    reason = binding.trunk_refusal("cmp1", True, ["openvswitch"])
    assert reason is not None and "cmp1" in reason and "does not implement trunks" in reason


def test_trunk_on_a_port_bound_elsewhere_is_left_to_its_driver() -> None:
    assert binding.trunk_refusal("cmp1", False, ["openvswitch"]) is None
    assert binding.trunk_refusal("cmp1", False, []) is None


def test_unbound_trunk_parent_is_refused_only_when_netagent_is_the_only_trunk_driver() -> None:
    reason = binding.trunk_refusal("", False, [])
    assert reason is not None and "only trunk driver" in reason
    assert binding.trunk_refusal("", False, ["openvswitch"]) is None
