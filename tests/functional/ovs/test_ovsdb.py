"""Each OVSDB operation of netagent.privileged.ovsdb, through netagent.ovs.ovsdb, against a
private ovsdb-server/ovs-vswitchd; read back with ovs-vsctl."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator

import pytest

from netagent.ovs import ovsdb as db
from netagent.privileged.errors import InvalidArgument
from tests.common.ovs import PrivateOvs


@pytest.fixture
def conn(ovs: PrivateOvs) -> Iterator[db.Ovsdb]:
    ovsdb = db.Ovsdb(ovs.connection, 10)
    yield ovsdb
    ovsdb.close()


def _get(ovs: PrivateOvs, *args: str) -> str:
    return ovs.vsctl("get", *args).strip().strip('"')


def test_bridge_created_then_merged_not_replaced(conn: db.Ovsdb, ovs: PrivateOvs) -> None:
    conn.apply([db.EnsureBridge("br-x", "netdev", external_ids={"netagent": "owned"})])
    assert _get(ovs, "Bridge", "br-x", "datapath_type") == "netdev"
    assert _get(ovs, "Bridge", "br-x", "fail_mode") == "secure"
    ovs.vsctl("set", "Bridge", "br-x", "external_ids:other=kept")
    conn.apply([db.EnsureBridge("br-x", "netdev", external_ids={"netagent": "owned"})])
    assert _get(ovs, "Bridge", "br-x", "external_ids:other") == "kept"
    state = conn.snapshot()
    assert state.bridges["br-x"] == {"netagent": "owned", "other": "kept"}
    assert state.fail_modes["br-x"] == "secure"


def test_ports_patch_vxlan_tag_and_keys(conn: db.Ovsdb, ovs: PrivateOvs) -> None:
    conn.apply(
        [
            db.EnsureBridge("br-a", "netdev"),
            db.EnsureBridge("br-b", "netdev"),
            db.EnsurePort("br-a", "pa", "patch", {"peer": "pb"}, {"netagent": "owned"}),
            db.EnsurePort("br-b", "pb", "patch", {"peer": "pa"}, {"netagent": "owned"}),
            db.EnsurePort(
                "br-b",
                "vx",
                "vxlan",
                {"remote_ip": "flow", "key": "flow", "local_ip": "198.18.0.1"},
            ),
        ]
    )  # one transaction: the patch ports exist together, each has an ofport after it
    state = conn.snapshot()
    assert state.interfaces["pa"].bridge == "br-a" and state.interfaces["pa"].ofport
    assert state.interfaces["pb"].options == {"peer": "pa"}
    assert state.interfaces["pa"].port_external_ids == {"netagent": "owned"}
    assert state.interfaces["vx"].options["remote_ip"] == "flow"
    # an existing interface's options converge (may_exist alone would leave them)
    conn.apply([db.EnsurePort("br-b", "vx", "vxlan", {"local_ip": "198.18.0.9"})])
    assert _get(ovs, "Interface", "vx", "options:local_ip") == "198.18.0.9"
    assert _get(ovs, "Interface", "vx", "options:key") == "flow"

    ovs.vsctl(
        "add-port",
        "br-a",
        "vm0",
        "--",
        "set",
        "Interface",
        "vm0",
        "type=internal",
        "external_ids:iface-id=p-1",
        "external_ids:attached-mac=fa:16:3e:00:00:01",
    )
    conn.apply([db.SetPortTag("vm0", 7, {"net_uuid": "n-1"})])
    assert _get(ovs, "Port", "vm0", "tag") == "7"
    found = conn.snapshot().by_iface_id("br-a")
    assert found["p-1"].tag == 7 and found["p-1"].port_other_config == {"net_uuid": "n-1"}
    assert found["p-1"].external_ids["attached-mac"] == "fa:16:3e:00:00:01"
    # another tool's key survives; netagent's own key is replaced (mutations, no verify)
    ovs.vsctl("set", "Port", "vm0", "other_config:theirs=keep")
    conn.apply([db.SetPortTag("vm0", 8, {"net_uuid": "n-2"})])
    assert _get(ovs, "Port", "vm0", "tag") == "8"
    assert _get(ovs, "Port", "vm0", "other_config:net_uuid") == "n-2"
    assert _get(ovs, "Port", "vm0", "other_config:theirs") == "keep"
    conn.apply([db.SetPortTag("vm0", 4095), db.RemovePortKeys("vm0", ("net_uuid", "theirs"))])
    assert _get(ovs, "Port", "vm0", "tag") == "4095"
    assert _get(ovs, "Port", "vm0", "other_config") == "{}"
    # a port that is gone: removing its keys is nothing, tagging it fails the transaction
    conn.apply([db.RemovePortKeys("gone0", ("net_uuid",))])
    with pytest.raises(db.OvsdbError):
        conn.apply([db.SetPortTag("vm0", 9), db.SetPortTag("gone0", 9)])
    assert _get(ovs, "Port", "vm0", "tag") == "4095"

    # a port created in the same transaction is tagged too (it has no uuid before it)
    conn.apply(
        [db.EnsurePort("br-a", "new0", "internal"), db.SetPortTag("new0", 5, {"net_uuid": "n-5"})]
    )
    assert _get(ovs, "Port", "new0", "tag") == "5"
    assert _get(ovs, "Port", "new0", "other_config:net_uuid") == "n-5"
    conn.apply([db.DeletePort("br-a", "new0")])

    conn.apply([db.DeletePort("br-a", "pa"), db.DeletePort("br-b", "pb"), db.DeleteBridge("br-b")])
    assert ovs.vsctl("list-br").split() == ["br-a"]
    assert ovs.vsctl("list-ports", "br-a").split() == ["vm0"]


def test_transaction_is_all_or_nothing(conn: db.Ovsdb, ovs: PrivateOvs) -> None:
    with pytest.raises(db.OvsdbError):
        conn.apply([db.EnsureBridge("br-ok", "netdev"), db.EnsurePort("br-no-such", "p1")])
    assert "br-ok" not in ovs.vsctl("list-br").split()


def test_bad_values_refused_before_the_database() -> None:
    with pytest.raises(InvalidArgument):
        db.EnsureBridge("br;rm -rf", "netdev")
    with pytest.raises(InvalidArgument):
        db.SetPortTag("tap1", 4096)
    with pytest.raises(InvalidArgument):
        db.EnsurePort("br-int", "p", "geneve")
    with pytest.raises(InvalidArgument):
        db.EnsurePort("br-int", "p", "patch", {"peer": "a b"})


def test_interface_monitor_reports_iface_ids(ovs: PrivateOvs) -> None:
    seen: queue.Queue[str] = queue.Queue()
    conn = db.Ovsdb(ovs.connection, 10)
    conn.on_interface = seen.put
    try:
        conn.apply([db.EnsureBridge("br-m", "netdev")])

        def drain(wait: float = 1.0) -> set[str]:
            found = set()
            try:
                found.add(seen.get(timeout=wait))
                while True:
                    found.add(seen.get(timeout=0.3))
            except queue.Empty:
                return found

        drain(0.3)
        ovs.vsctl(
            "add-port",
            "br-m",
            "vm0",
            "--",
            "set",
            "Interface",
            "vm0",
            "type=internal",
            "external_ids:iface-id=port-1",
        )
        assert "port-1" in drain()
        ovs.vsctl("set", "Port", "vm0", "tag=9")  # Port table: not reported
        assert drain(0.5) == set()
        ovs.vsctl("set", "Interface", "vm0", "external_ids:iface-id=port-2")
        assert drain() == {"port-1", "port-2"}  # the old id and the new one
        ovs.vsctl("del-port", "br-m", "vm0")
        assert "port-2" in drain()
    finally:
        conn.close()


def test_snapshots_follow_every_change_made_by_others(conn: db.Ovsdb, ovs: PrivateOvs) -> None:
    """Snapshots convert only the rows changed since the last one: each change made
    behind netagent's back (another client) shows in the next snapshot, and a reconnect
    to a restarted ovsdb-server keeps the snapshot whole."""
    conn.apply([db.EnsureBridge("br-s", "netdev")])
    for name in ("s0", "s1"):
        ovs.vsctl(
            "add-port", "br-s", name, "--", "set", "Interface", name, "type=internal",
            f"external_ids:iface-id=id-{name}",
        )  # fmt: skip

    def settled(check: Callable[[db.OvsdbState], bool]) -> db.OvsdbState:
        deadline = time.monotonic() + 10
        while True:
            state = conn.snapshot()
            if check(state) or time.monotonic() > deadline:
                return state
            time.sleep(0.05)

    state = settled(lambda s: {"s0", "s1"} <= s.interfaces.keys())
    assert state.interfaces["s0"].bridge == "br-s" and state.interfaces["s0"].tag is None
    unchanged = state.interfaces["s1"]
    ovs.vsctl("set", "Port", "s0", "tag=7", "other_config:k=v")
    state = settled(lambda s: s.interfaces["s0"].tag == 7)
    assert state.interfaces["s0"].port_other_config == {"k": "v"}
    assert state.interfaces["s1"] is unchanged  # not converted again
    ovs.vsctl("set", "Interface", "s1", "external_ids:iface-id=id-moved")
    state = settled(lambda s: s.interfaces["s1"].external_ids.get("iface-id") == "id-moved")
    assert state.by_iface_id("br-s").keys() == {"id-s0", "id-moved"}
    ovs.vsctl("del-port", "br-s", "s0")
    state = settled(lambda s: "s0" not in s.interfaces)
    assert "s0" not in state.interfaces and "s1" in state.interfaces

    ovs.restart_ovsdb()
    ovs.vsctl("add-port", "br-s", "s2", "--", "set", "Interface", "s2", "type=internal")
    state = settled(lambda s: "s2" in s.interfaces)
    assert {"s1", "s2"} <= state.interfaces.keys() and "s0" not in state.interfaces
    assert state.interfaces["s1"].external_ids == {"iface-id": "id-moved"}
