"""The openvswitch driver's pure parts: option parsing, socket paths, flows and cookies."""

from __future__ import annotations

import pytest

from netagent.drivers.openvswitch import layout, plumbing
from netagent.drivers.openvswitch.driver import mgmt_target, parse_bridge_mappings
from netagent.ovs import ovsdb as db
from netagent.ovs.flows import COOKIE_MASK, COOKIE_PREFIX, Flow
from netagent.privileged import flowmod, openflow
from netagent.privileged.errors import InvalidArgument

NETS = [
    layout.NetworkFlows(1, "vxlan", 1001, peers=("198.18.0.2", "198.18.0.3")),
    layout.NetworkFlows(2, "vxlan", 1002, peers=("198.18.0.2",)),
    layout.NetworkFlows(3, "flat", None, physical=("br-ex", 7, 1)),
    layout.NetworkFlows(4, "vlan", 100, physical=("br-ex", 7, 1)),
]


def test_bridge_mappings() -> None:
    assert parse_bridge_mappings(["physnet1:br-ex", " p2 : br-p2 "]) == {
        "physnet1": "br-ex",
        "p2": "br-p2",
    }
    for bad in (["physnet1"], ["a:br-ex", "b:br-ex"], ["a:x", "a:y"], ["a:br-twelve-ch"]):
        with pytest.raises(ValueError):
            parse_bridge_mappings(bad)


def test_mgmt_socket_next_to_the_database_socket() -> None:
    assert mgmt_target("unix:/run/openvswitch/db.sock", "br-int") == (
        "unix:/run/openvswitch/br-int.mgmt"
    )
    assert mgmt_target("unix:/tmp/x/db.sock", "br-tun") == "unix:/tmp/x/br-tun.mgmt"


def test_every_bridge_has_unique_matches_and_encodable_lines() -> None:
    for flows in (
        layout.integration_flows([5, 6, 5], 2, NETS),
        layout.tunnel_flows(1, 2, NETS),
        layout.physical_flows("br-ex", 1, NETS),
    ):
        keys = [f.key for f in flows]
        assert len(keys) == len(set(keys))
        assert layout.CANARY in flows
        for flow in flows:
            assert flowmod.flow_mod(flow.line(), 1)


def test_tunnel_flows_take_each_vni_only_from_its_peers() -> None:
    flows = {str(f) for f in layout.tunnel_flows(1, 2, NETS)}
    assert (
        "table=4,priority=1,tun_id=0x3e9,tun_src=198.18.0.3,actions=mod_vlan_vid:1,resubmit(,10)"
        in flows
    )
    assert not any("tun_id=0x3ea,tun_src=198.18.0.3" in f for f in flows)
    assert (
        "table=22,priority=1,dl_vlan=1,actions=strip_vlan,set_tunnel:0x3e9,"
        "set_field:198.18.0.2->tun_dst,output:2,set_field:198.18.0.3->tun_dst,output:2"
    ) in flows


def test_physical_flows_translate_local_vlans() -> None:
    phys = {str(f) for f in layout.physical_flows("br-ex", 1, NETS)}
    assert "table=0,priority=4,in_port=1,dl_vlan=3,actions=strip_vlan,NORMAL" in phys
    assert "table=0,priority=4,in_port=1,dl_vlan=4,actions=mod_vlan_vid:100,NORMAL" in phys
    integ = {str(f) for f in layout.integration_flows([], None, NETS)}
    assert (
        "table=0,priority=20,in_port=7,vlan_tci=0x0000/0x1fff,actions=mod_vlan_vid:3,NORMAL"
        in integ
    )
    assert "table=0,priority=20,in_port=7,dl_vlan=100,actions=mod_vlan_vid:4,NORMAL" in integ


def test_cookies_are_netagent_owned_stable_and_distinct() -> None:
    a, b = Flow(0, 1, "in_port=1", "NORMAL"), Flow(0, 1, "in_port=1", "drop")
    assert a.cookie & COOKIE_MASK == COOKIE_PREFIX
    assert a.cookie == Flow(0, 1, "in_port=1", "NORMAL").cookie != b.cookie
    assert a.line() == f"cookie={a.cookie:#x},table=0,priority=1,in_port=1,actions=NORMAL"


def test_peers_exclude_this_host() -> None:
    assert layout.peers_of(
        {"b": "198.18.0.2", "a": "198.18.0.1", "c": "198.18.0.2"}, "198.18.0.1"
    ) == ("198.18.0.2",)


def test_openflow_refuses_bad_targets_and_lines() -> None:
    with pytest.raises(InvalidArgument):
        openflow.bundle("tcp:198.18.0.1:6653", ["table=0,actions=drop"])
    with pytest.raises(InvalidArgument):
        openflow.bundle("unix:/run/openvswitch/br-int.mgmt", ["table=0,actions=drop\nx"])
    with pytest.raises(InvalidArgument):  # refused before anything is sent
        openflow.bundle("unix:/nonexistent/br-int.mgmt", ["table=0,actions=controller"])


def test_snapshot_follows_tag_and_key_changes() -> None:
    iface = db.Interface(
        name="tap1",
        port="tap1",
        bridge="br-int",
        type="",
        ofport=5,
        tag=None,
        options={},
        external_ids={"iface-id": "p1"},
        port_external_ids={},
        port_other_config={"keep": "x"},
    )
    state = db.OvsdbState(bridges={"br-int": {}}, datapath_types={}, interfaces={"tap1": iface})
    tagged = plumbing.with_port_changes(state, [db.SetPortTag("tap1", 7, {"net_uuid": "n"})])
    assert tagged.interfaces["tap1"].tag == 7
    assert tagged.interfaces["tap1"].port_other_config == {"keep": "x", "net_uuid": "n"}
    assert state.interfaces["tap1"].tag is None  # the old snapshot is unchanged
    detached = plumbing.with_port_changes(tagged, plumbing.detach(tagged.interfaces["tap1"]))
    assert detached.interfaces["tap1"].tag == 4095
    assert detached.interfaces["tap1"].port_other_config == {"keep": "x"}
    assert detached.interfaces["tap1"].ofport == 5


def test_attach_interface_checks_names_and_external_ids() -> None:
    ids = {"iface-id": "3f1c2a9e-7b44-4c1d-9e0a-55aa66bb77cc", "attached-mac": "fa:16:3e:00:00:01"}
    assert db.AttachInterface("br-int", "tap3f1c2a9e-7b", ids).external_ids == ids
    with pytest.raises(InvalidArgument):
        db.AttachInterface("br-int", "tap3f1c2a9e-7b-too-long", ids)
    with pytest.raises(InvalidArgument):  # no quoting games in an OVSDB value
        db.AttachInterface("br-int", "tap1", {"iface-id": 'x", other="y'})


def test_vm_device_behind_a_hybrid_plug_port_is_its_tap() -> None:
    """sweep() keeps br-int ports whose VM device is wanted: for os-vif's hybrid plug
    the port is qvo<port[:11]>, the device the agent knows is tap<port[:11]>."""
    assert plumbing.vm_device("qvo3f1c2a8e-5d") == "tap3f1c2a8e-5d"
    assert plumbing.vm_device("tap3f1c2a8e-5d") == "tap3f1c2a8e-5d"
    assert plumbing.vm_device("qr-3f1c2a8e-5d") == "qr-3f1c2a8e-5d"
