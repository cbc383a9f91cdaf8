"""The ML2 driver class against Neutron's base class (skipped without Neutron), and the
entry points of both drivers."""

from __future__ import annotations

import ast
import configparser
import importlib
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]


def test_interface_driver_entry_point_is_declared() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    group = cfg["entry_points"]["neutron.interface_drivers"]
    assert group.strip() == (
        "netagent = netagent.neutron_plugins.interface:NetagentInterfaceDriver"
    )


def _agent(**confs: Any) -> dict[str, Any]:
    return {
        "agent_type": "Netagent agent",
        "host": "cmp1",
        "alive": True,
        "configurations": confs,
    }


def test_entry_point_is_declared() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    group = cfg["entry_points"]["neutron.ml2.mechanism_drivers"]
    assert group.strip() == "netagent = netagent.neutron_plugins.ml2:NetagentMechanismDriver"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_agent_side_never_imports_neutron_or_the_plugins() -> None:
    for path in (REPO / "netagent").rglob("*.py"):
        if "neutron_plugins" in path.relative_to(REPO / "netagent").parts:
            continue
        for name in _imports(path):
            top = name.split(".")[0]
            assert top not in ("neutron", "neutron_lib"), (path, name)
            assert not name.startswith("netagent.neutron_plugins"), (path, name)


@pytest.mark.parametrize("module", ["binding", "plugging", "veth"])
def test_decision_and_kernel_modules_do_not_need_neutron(module: str) -> None:
    code = (
        f"import sys, netagent.neutron_plugins.{module}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('neutron', 'neutron_lib')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


class _Context:
    """The few members of ML2's PortContext that bind_port uses."""

    def __init__(self, agents: list[dict[str, Any]], segments: list[dict[str, Any]]) -> None:
        self.current = {"id": "p1", "binding:vnic_type": "normal", "fixed_ips": []}
        self.segments_to_bind = segments
        self.host = "cmp1"
        self.network = types.SimpleNamespace(current={"id": "n1"})
        self._agents = agents
        self.bound: tuple[str, str, dict[str, Any]] | None = None

    def host_agents(self, agent_type: str) -> list[dict[str, Any]]:
        return [a for a in self._agents if a["agent_type"] == agent_type]

    def set_binding(self, segment_id: str, vif_type: str, details: dict[str, Any]) -> None:
        self.bound = (segment_id, vif_type, details)


@pytest.fixture
def driver() -> Any:
    pytest.importorskip("neutron.plugins.ml2.drivers.mech_agent")
    mech_driver = importlib.import_module("netagent.neutron_plugins.ml2")
    return mech_driver.NetagentMechanismDriver()


def _segment(network_type: str, physnet: str | None = None) -> dict[str, Any]:
    return {
        "id": f"seg-{network_type}",
        "network_id": "n1",
        "network_type": network_type,
        "physical_network": physnet,
        "segmentation_id": 1001 if network_type == "vxlan" else None,
    }


def test_driver_identity(driver: Any) -> None:
    assert driver.agent_type == "Netagent agent"
    assert driver.vif_type == "tap"
    assert driver.supported_vnic_types == ["normal"]
    assert driver.connectivity == "l2"
    assert driver.vif_details == {"port_filter": False, "connectivity": "l2"}


def test_binds_vxlan_with_tap_and_port_filter(driver: Any) -> None:
    ctx = _Context([_agent(firewall_driver="iptables")], [_segment("vxlan")])
    driver.bind_port(ctx)
    assert ctx.bound == ("seg-vxlan", "tap", {"port_filter": True, "connectivity": "l2"})


def test_flat_needs_physnet_in_interface_mappings(driver: Any) -> None:
    ctx = _Context(
        [_agent(interface_mappings={"physnet2": "eth2"})], [_segment("flat", "physnet1")]
    )
    driver.bind_port(ctx)
    assert ctx.bound is None
    ctx = _Context(
        [_agent(interface_mappings={"physnet1": "eth1"})], [_segment("flat", "physnet1")]
    )
    driver.bind_port(ctx)
    assert ctx.bound is not None and ctx.bound[0] == "seg-flat"


def test_dead_agent_or_other_type_is_not_bound(driver: Any) -> None:
    dead = dict(_agent(), alive=False)
    other = dict(_agent(), agent_type="Open vSwitch agent")
    for agents in ([dead], [other]):
        ctx = _Context(agents, [_segment("vxlan")])
        driver.bind_port(ctx)
        assert ctx.bound is None


def test_dhcp_port_is_bound_to_a_live_agent(driver: Any) -> None:
    ctx = _Context([_agent(firewall_driver="iptables")], [_segment("vxlan")])
    ctx.current["device_owner"] = "network:dhcp"
    driver.bind_port(ctx)
    assert ctx.bound == ("seg-vxlan", "tap", {"port_filter": True, "connectivity": "l2"})
    ctx = _Context([dict(_agent(), alive=False)], [_segment("vxlan")])
    ctx.current["device_owner"] = "network:dhcp"
    driver.bind_port(ctx)
    assert ctx.bound is None


def test_other_vnic_type_is_not_bound(driver: Any) -> None:
    ctx = _Context([_agent()], [_segment("vxlan")])
    ctx.current["binding:vnic_type"] = "direct"
    driver.bind_port(ctx)
    assert ctx.bound is None


def test_openvswitch_host_gets_vif_type_ovs_and_bridge_mappings(driver: Any) -> None:
    ovs = _agent(
        l2_driver="openvswitch",
        firewall_driver="iptables",
        integration_bridge="br-int",
        datapath_type="netdev",
        bridge_mappings={"physnet1": "br-ex"},
        interface_mappings={"physnet2": "eth2"},
    )
    ctx = _Context([ovs], [_segment("vxlan")])
    driver.bind_port(ctx)
    assert ctx.bound == (
        "seg-vxlan",
        "ovs",
        {
            "port_filter": True,  # hybrid plug: iptables filters on the qbr bridge
            "connectivity": "l2",
            "bridge_name": "br-int",
            "datapath_type": "netdev",
            "ovs_hybrid_plug": True,
        },
    )
    for physnet, bound in (("physnet1", True), ("physnet2", False)):
        ctx = _Context([ovs], [_segment("flat", physnet)])
        driver.bind_port(ctx)
        assert (ctx.bound is not None) is bound


def test_trunk_parent_port_is_not_bound(driver: Any) -> None:
    ctx = _Context([_agent()], [_segment("vxlan")])
    ctx.current["trunk_details"] = {"trunk_id": "t1", "sub_ports": []}
    driver.bind_port(ctx)
    assert ctx.bound is None
    del ctx.current["trunk_details"]
    driver.bind_port(ctx)
    assert ctx.bound is not None
