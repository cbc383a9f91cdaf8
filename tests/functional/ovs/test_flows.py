"""Flow bundles and cookies (netagent.ovs.flows over netagent.privileged.openflow, flow-mods
encoded by netagent.privileged.flowmod) against a private ovs-vswitchd; read back with
ovs-ofctl."""

from __future__ import annotations

from pathlib import Path

import pytest

from netagent.drivers.openvswitch import layout
from netagent.ovs.flows import COOKIE_MASK, COOKIE_PREFIX, Flow, FlowTable, OpenFlowError
from netagent.privileged.errors import InvalidArgument
from tests.common.ovs import PrivateOvs

OURS = f"0x{COOKIE_PREFIX:x}/0x{COOKIE_MASK:x}"
FOREIGN = "cookie=0x1234, table=7, priority=3 actions=drop"


@pytest.fixture
def bridge(ovs: PrivateOvs) -> str:
    ovs.vsctl(
        "add-br", "br-f", "--", "set", "bridge", "br-f", "datapath_type=netdev", "fail_mode=secure"
    )
    ovs.ofctl("add-flow", ovs.mgmt("br-f"), "cookie=0x1234,table=7,priority=3,actions=drop")
    return "br-f"


FLOWS = [Flow(0, 0, "", "drop"), Flow(0, 5, "in_port=1", "NORMAL"), Flow(9, 1, "", "drop")]


def test_sync_adds_then_sends_nothing_then_replaces_and_removes(
    ovs: PrivateOvs, bridge: str
) -> None:
    table = FlowTable(bridge, ovs.mgmt(bridge))
    result = table.sync(FLOWS, sweep=False)
    assert (result.added, result.deleted) == (3, 0)
    assert len(ovs.flows(bridge, OURS)) == 3
    assert table.sync(FLOWS, sweep=False).added == 0
    changed = [FLOWS[0], Flow(0, 5, "in_port=1", "drop")]  # same match, new actions
    result = table.sync(changed, sweep=False)
    assert (result.added, result.deleted) == (1, 2)
    flows = ovs.flows(bridge)
    assert FOREIGN in flows and len(flows) == 3
    assert any("priority=5,in_port=1 actions=drop" in f for f in flows)


def test_a_restarted_table_adopts_and_sweeps_only_when_told(ovs: PrivateOvs, bridge: str) -> None:
    FlowTable(bridge, ovs.mgmt(bridge)).sync(FLOWS, sweep=False)
    before = ovs.flows(bridge)
    fresh = FlowTable(bridge, ovs.mgmt(bridge))  # an agent restart
    result = fresh.sync(FLOWS[:2], sweep=False)  # partial picture: nothing removed
    assert (result.added, result.deleted) == (0, 0)
    assert ovs.flows(bridge) == before
    result = fresh.sync(FLOWS[:2], sweep=True)  # after a full sync: the stale one goes
    assert (result.added, result.deleted) == (0, 1)
    assert len(ovs.flows(bridge, OURS)) == 2 and FOREIGN in ovs.flows(bridge)


def test_a_bad_bundle_changes_nothing(ovs: PrivateOvs, bridge: str) -> None:
    table = FlowTable(bridge, ovs.mgmt(bridge))
    table.sync(FLOWS, sweep=False)
    before = ovs.flows(bridge)
    with pytest.raises(OpenFlowError):
        # the last flow-mod of the bundle is refused by ovs-vswitchd (table 254 is its own)
        table.sync([*FLOWS, Flow(3, 1, "", "drop"), Flow(254, 1, "", "drop")], sweep=False)
    assert ovs.flows(bridge) == before  # the good additions of the bundle are not in either


def test_a_staged_bundle_acts_only_when_committed(ovs: PrivateOvs, bridge: str) -> None:
    """The driver stages a pass's flows while its OVSDB transaction runs: until the
    commit the bridge holds none of them, a discarded bundle leaves nothing, and the
    table's record follows only what was committed."""
    table = FlowTable(bridge, ovs.mgmt(bridge))
    table.sync(FLOWS[:1], sweep=False)
    before = ovs.flows(bridge)
    staged = table.stage(FLOWS, sweep=False)
    assert ovs.flows(bridge) == before
    staged.discard()
    assert ovs.flows(bridge) == before
    assert table.stage(FLOWS, sweep=False).commit().added == 2  # the record is unchanged
    assert len(ovs.flows(bridge, OURS)) == 3
    staged = table.stage(FLOWS[:2], sweep=False)
    assert len(ovs.flows(bridge, OURS)) == 3
    assert staged.commit().deleted == 1
    assert len(ovs.flows(bridge, OURS)) == 2
    with pytest.raises(OpenFlowError):  # a refused line: nothing staged
        table.stage([*FLOWS, Flow(254, 1, "", "drop")], sweep=False)
    assert len(ovs.flows(bridge, OURS)) == 2


def test_a_prepared_bundle_reaches_the_bridge_only_when_sent(ovs: PrivateOvs, bridge: str) -> None:
    """The driver prepares a pass's bundles in its own thread and sends them from others:
    preparing opens no connection (a bad flow is refused before it), commit sends a
    bundle not sent yet, and a discarded bundle can be neither sent nor committed."""
    table = FlowTable(bridge, ovs.mgmt(bridge))
    table.sync(FLOWS[:1], sweep=False)
    before = ovs.flows(bridge)
    prepared = table.prepare(FLOWS, sweep=False)
    assert prepared.bundle._sock is None and ovs.flows(bridge) == before
    prepared.discard()
    for step in (prepared.send, prepared.commit):
        with pytest.raises(OpenFlowError, match="discarded"):
            step()
    assert ovs.flows(bridge) == before
    committed = table.prepare(FLOWS, sweep=False)
    assert committed.commit().added == 2  # sent by the commit
    assert len(ovs.flows(bridge, OURS)) == 3
    with pytest.raises(OpenFlowError, match="committed"):  # once only
        committed.commit()
    with pytest.raises(InvalidArgument):  # a line netagent never writes: nothing opened
        table.prepare([Flow(0, 1, "in_port=1", "controller")], sweep=False)


def test_canary_sees_a_vswitchd_restart(ovs: PrivateOvs, bridge: str) -> None:
    table = FlowTable(bridge, ovs.mgmt(bridge))
    table.sync(FLOWS, sweep=False)
    assert FlowTable.missing([table], FLOWS[2]) == []
    ovs.restart_vswitchd()
    ovs.vsctl("--timeout=20", "wait-until", "Bridge", bridge, "datapath_id!=[]")
    assert FlowTable.missing([table], FLOWS[2]) == [table]
    table.forget()
    assert table.sync(FLOWS, sweep=False).added == 3


def test_canary_asks_every_bridge_at_once(ovs: PrivateOvs, bridge: str) -> None:
    ovs.vsctl("add-br", "br-g", "--", "set", "bridge", "br-g", "datapath_type=netdev")
    with_canary, without = FlowTable(bridge, ovs.mgmt(bridge)), FlowTable("br-g", ovs.mgmt("br-g"))
    with_canary.sync(FLOWS, sweep=False)
    without.sync(FLOWS[:2], sweep=False)
    assert FlowTable.missing([with_canary, without], FLOWS[2]) == [without]
    # one bridge that cannot be asked makes the answer unknown, not "present"
    gone = FlowTable("br-x", ovs.mgmt("br-x"))
    with pytest.raises(OpenFlowError, match="br-x"):
        FlowTable.missing([with_canary, gone], FLOWS[2])


def test_cleanup_removes_only_netagent_flows(ovs: PrivateOvs, bridge: str) -> None:
    table = FlowTable(bridge, ovs.mgmt(bridge))
    table.sync(FLOWS, sweep=False)
    assert table.remove_all(dry_run=True) == 3 and len(ovs.flows(bridge)) == 4
    assert table.remove_all() == 3
    assert ovs.flows(bridge) == [FOREIGN]


def test_encoded_flows_are_the_flows_ovs_ofctl_writes(
    ovs: PrivateOvs, bridge: str, tmp_path: Path
) -> None:
    """Every kind of flow the driver writes (all network types, learn() included), once
    encoded by netagent and once by ovs-ofctl: the switch holds the same flows."""
    nets = [
        layout.NetworkFlows(1, "vxlan", 0x1234, peers=("198.18.0.2", "198.18.0.3")),
        layout.NetworkFlows(2, "flat", None, physical=("br-phys", 7, 8)),
        layout.NetworkFlows(3, "vlan", 100, physical=("br-phys", 7, 8)),
        layout.NetworkFlows(4, "vxlan", 5_000_000, peers=("198.18.0.9",)),
    ]
    flows = {
        flow.key: flow
        for flow in (
            layout.integration_flows([5, 6], 3, nets)
            + layout.tunnel_flows(1, 2, nets)
            + layout.physical_flows("br-phys", 8, nets)
        )
    }
    ovs.vsctl("add-br", "br-o", "--", "set", "bridge", "br-o", "datapath_type=netdev")
    ovs.vsctl("set", "bridge", "br-o", "fail_mode=secure")
    lines = tmp_path / "flows"
    lines.write_text("".join(f"{flow.line()}\n" for flow in flows.values()))
    ovs.ofctl("--bundle", "add-flows", ovs.mgmt("br-o"), str(lines))
    assert FlowTable(bridge, ovs.mgmt(bridge)).sync(flows.values(), sweep=False).added == len(
        flows
    )
    ours = ovs.flows(bridge, OURS)
    assert len(ours) == len(flows) and ours == ovs.flows("br-o")
    assert any("learn(table=20" in flow for flow in ours)


def test_a_switch_without_our_version_is_refused_before_anything_applies(
    ovs: PrivateOvs, bridge: str
) -> None:
    # the requests follow our hello without waiting for the switch's: its hello is
    # still checked, and the bundle sent behind it changes nothing
    ovs.vsctl("set", "bridge", bridge, "protocols=OpenFlow10")
    before = ovs.flows(bridge)
    table = FlowTable(bridge, ovs.mgmt(bridge))
    with pytest.raises(OpenFlowError, match="no OpenFlow version"):
        table.sync(FLOWS, sweep=False)
    with pytest.raises(OpenFlowError, match="no OpenFlow version"):
        FlowTable.missing([table], FLOWS[2])
    assert ovs.flows(bridge) == before
