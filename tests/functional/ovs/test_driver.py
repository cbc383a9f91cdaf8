"""The openvswitch L2 driver against a private ovsdb-server/ovs-vswitchd in a namespace.

VMs are namespaces plugged into br-int the way os-vif does it; connectivity and isolation
are checked with real packets, OVS state with ovs-vsctl/ovs-ofctl (not with the code under
test).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from netagent.common import names
from netagent.drivers.base import NetworkPlan, Outcome, PortPlan
from netagent.drivers.openvswitch import OpenvswitchDriver
from netagent.model.network import Network
from netagent.model.port import Port
from netagent.ovs import ovsdb as db
from netagent.ovs.flows import COOKIE_MASK, COOKIE_PREFIX
from tests.common.ovs import PrivateOvs
from tests.functional.drivers.helpers import network, port
from tests.functional.ovs.conftest import can_ping, plug_vm

OURS = f"0x{COOKIE_PREFIX:x}/0x{COOKIE_MASK:x}"
PEER = ipaddress.ip_address("198.18.0.2")


def _plans(nets, ports):  # type: ignore[no-untyped-def]
    return [NetworkPlan(n, {"host-b": PEER}) for n in nets], [
        PortPlan(p, next(n for n in nets if n.id == p.network_id)) for p in ports
    ]


@pytest.fixture
def vm(
    ovs: PrivateOvs, netns: str, make_netns: Callable[[str], str]
) -> Callable[[Port, str], str]:
    """Plugs a new VM namespace for a port the way os-vif does; returns the namespace."""

    def plug(p: Port, address: str) -> str:
        vm_ns = make_netns("vm")
        plug_vm(ovs, netns, vm_ns, p.id, p.mac_address, address)
        return vm_ns

    return plug


def _wire(driver: OpenvswitchDriver, net: Network, ports: list[Port]) -> Outcome:
    """The agent's pass for one network and its ports; the outcome of plugging them."""
    nets, plans = _plans([net], ports)
    driver.ensure_networks(nets)
    return driver.plug_ports(plans)


def test_wires_os_vif_ports_and_isolates_networks(
    make_driver: Callable[..., OpenvswitchDriver],
    ovs: PrivateOvs,
    vm: Callable[[Port, str], str],
) -> None:
    driver = make_driver()
    net1, net2 = network(1001), network(1002)
    p1, p2, p3 = port(net1), port(net1), port(net2)
    vms = {p.id: vm(p, f"192.0.2.{i}/24") for i, p in enumerate((p1, p2, p3), 1)}
    # plugged by os-vif but not wired: table 0 drops everything (fail closed)
    assert not can_ping(vms[p1.id], "192.0.2.2", count=1)

    nets, ports = _plans([net1, net2], [p1, p2, p3])
    assert not driver.ensure_networks(nets).failed
    out = driver.plug_ports(ports)
    assert out.succeeded == {p1.id, p2.id, p3.id} and not out.failed

    assert can_ping(vms[p1.id], "192.0.2.2")
    assert not can_ping(vms[p1.id], "192.0.2.3", count=1)  # same subnet, other network
    tags = {p.id: int(ovs.vsctl("get", "Port", p.device_name, "tag")) for p in (p1, p2, p3)}
    assert tags[p1.id] == tags[p2.id] != tags[p3.id]
    other = ovs.vsctl("get", "Port", p1.device_name, "other_config:net_uuid").strip()
    assert other.strip('"') == net1.id
    tunnel = "\n".join(ovs.flows("br-tun", OURS))
    assert f"tun_id=0x3e9,tun_src={PEER}" in tunnel  # VNI 1001 only from its peer
    # broadcasts of VNI 1001 are copied to the peer (ovs-ofctl shows set_field as load)
    assert f"load:{int(PEER):#x}->NXM_NX_TUN_IPV4_DST[]" in tunnel

    # a second driver (agent restart) adopts everything: no OVSDB write, no flow change
    before = ovs.flows("br-int") + ovs.flows("br-tun")
    again = make_driver()
    again.begin_pass()
    assert not again.ensure_networks(nets).failed
    assert not again.plug_ports(ports).failed
    assert again.sweep(nets, wanted_devices={p.device_name for p in (p1, p2, p3)}) == []
    assert (again.ovsdb_transactions, again.flow_changes) == (0, 0)
    assert ovs.flows("br-int") + ovs.flows("br-tun") == before

    # unplug: dead VLAN, the port stays (os-vif's), its frames are dropped again
    again.begin_pass()
    assert not again.unplug_ports([ports[1]]).failed
    assert int(ovs.vsctl("get", "Port", p2.device_name, "tag")) == 4095
    assert p2.device_name in ovs.vsctl("list-ports", "br-int")
    assert not can_ping(vms[p1.id], "192.0.2.2", count=1)


def test_vswitchd_restart_is_detected_and_repaired(
    make_driver: Callable[..., OpenvswitchDriver],
    ovs: PrivateOvs,
    vm: Callable[[Port, str], str],
) -> None:
    driver = make_driver()
    net = network(1001)
    p1, p2 = port(net), port(net)
    vm1 = vm(p1, "192.0.2.1/24")
    vm(p2, "192.0.2.2/24")
    _wire(driver, net, [p1, p2])
    assert can_ping(vm1, "192.0.2.2")
    wanted = ovs.flows("br-int") + ovs.flows("br-tun")
    assert driver.check_integrity() == 0

    ovs.restart_vswitchd()
    ovs.vsctl("--timeout=20", "wait-until", "Interface", p1.device_name, "ofport>0")
    assert ovs.flows("br-int") == []
    assert not can_ping(vm1, "192.0.2.2", count=1)
    assert driver.check_integrity() == len(wanted)
    assert ovs.flows("br-int") + ovs.flows("br-tun") == wanted
    assert can_ping(vm1, "192.0.2.2")


def test_cleanup_removes_only_what_netagent_made(
    make_driver: Callable[..., OpenvswitchDriver],
    ovs: PrivateOvs,
    vm: Callable[[Port, str], str],
) -> None:
    # os-vif's br-int (secure: changing a bridge's fail mode makes OVS flush its flows)
    ovs.vsctl(
        "add-br",
        "br-int",
        "--",
        "set",
        "bridge",
        "br-int",
        "datapath_type=netdev",
        "fail_mode=secure",
    )
    mgmt = ovs.mgmt("br-int")
    ovs.ofctl("add-flow", mgmt, "cookie=0x1234,table=5,priority=3,actions=drop")
    driver = make_driver()
    net = network(1001)
    p1 = port(net)
    vm(p1, "192.0.2.1/24")
    _wire(driver, net, [p1])

    actions = make_driver(initialize=False).cleanup()
    assert any("delete bridge br-tun" in a for a in actions)
    assert ovs.vsctl("list-br").split() == ["br-int"]  # os-vif's bridge stays
    assert ovs.flows("br-int", OURS) == []
    assert ovs.flows("br-int") == ["cookie=0x1234, table=5, priority=3 actions=drop"]
    assert ovs.vsctl("list-ports", "br-int").split() == [p1.device_name]
    assert int(ovs.vsctl("get", "Port", p1.device_name, "tag")) == 4095


def test_cleanup_keeps_a_bridge_netagent_made_that_holds_vm_ports(
    make_driver: Callable[..., OpenvswitchDriver],
    ovs: PrivateOvs,
    vm: Callable[[Port, str], str],
) -> None:
    driver = make_driver()  # creates br-int itself (no os-vif bridge yet)
    assert ovs.vsctl("br-get-external-id", "br-int", "netagent").strip() == "owned"
    net = network(1001)
    p1 = port(net)
    vm(p1, "192.0.2.1/24")
    _wire(driver, net, [p1])

    dry = make_driver(initialize=False).cleanup(dry_run=True)
    assert any(a.startswith("keep bridge br-int") for a in dry)
    assert "br-tun" in ovs.vsctl("list-br").split()  # dry run: nothing removed
    make_driver(initialize=False).cleanup()
    assert ovs.vsctl("list-br").split() == ["br-int"]
    assert ovs.vsctl("list-ports", "br-int").split() == [p1.device_name]  # the VM's port
    assert ovs.flows("br-int", OURS) == []


def test_admin_down_port_sits_in_the_dead_vlan_until_up(
    make_driver: Callable[..., OpenvswitchDriver],
    ovs: PrivateOvs,
    vm: Callable[[Port, str], str],
) -> None:
    driver = make_driver()
    net = network(1001)
    p1, p2 = port(net), port(net, admin_state_up=False)
    vm1 = vm(p1, "192.0.2.1/24")
    vm(p2, "192.0.2.2/24")
    assert _wire(driver, net, [p1, p2]).succeeded == {p1.id, p2.id}
    assert int(ovs.vsctl("get", "Port", p2.device_name, "tag")) == 4095
    assert not can_ping(vm1, "192.0.2.2", count=1)
    up = dataclasses.replace(p2, admin_state_up=True)
    driver.begin_pass()
    driver.plug_ports([PortPlan(up, net)])
    assert int(ovs.vsctl("get", "Port", p2.device_name, "tag")) == int(
        ovs.vsctl("get", "Port", p1.device_name, "tag")
    )
    assert can_ping(vm1, "192.0.2.2")


def test_netagent_cleanup_command_on_an_ovs_host(
    make_driver: Callable[..., OpenvswitchDriver],
    ovs: PrivateOvs,
    vm: Callable[[Port, str], str],
    tmp_path: Path,
) -> None:
    driver = make_driver()
    net = network(1001)
    p1 = port(net)
    vm(p1, "192.0.2.1/24")
    _wire(driver, net, [p1])
    conf = tmp_path / "netagent.conf"
    conf.write_text(
        f"[DEFAULT]\nstate_path = {tmp_path / 'state'}\n"
        "[agent]\nl2_driver = openvswitch\n"
        f"[ovs]\nlocal_ip = 198.18.0.1\ndatapath_type = netdev\n"
        f"ovsdb_connection = {ovs.connection}\n"
    )
    cmd = [str(Path(sys.executable).parent / "netagent-cleanup"), "--config-file", str(conf)]
    dry = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "keep bridge br-int" in dry.stdout and "delete bridge br-tun" in dry.stdout
    assert "br-tun" in ovs.vsctl("list-br").split()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert ovs.vsctl("list-br").split() == ["br-int"]
    assert ovs.flows("br-int", OURS) == []
    assert int(ovs.vsctl("get", "Port", p1.device_name, "tag")) == 4095


def _captures(vm_ns: str, seconds: int, trigger: Callable[[], object]) -> str:
    """tcpdump on the VM's eth0 (any frame, with link headers) while ``trigger`` runs."""
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            vm_ns,
            "timeout",
            str(seconds),
            "tcpdump",
            "-l",
            "-n",
            "-e",
            "-i",
            "eth0",
            "arp",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    __import__("time").sleep(1.0)
    trigger()
    out, _ = proc.communicate(timeout=seconds + 10)
    return out


def test_a_port_os_vif_plugged_but_netagent_did_not_wire_hears_nothing(
    make_driver: Callable[..., OpenvswitchDriver],
    ovs: PrivateOvs,
    vm: Callable[[Port, str], str],
) -> None:
    """OVS treats a port without a tag as a trunk of every VLAN: os-vif's fresh port would
    receive the broadcasts of every network on br-int until netagent wires it. The driver
    puts such ports into the dead VLAN as soon as it sees them."""
    driver = make_driver()
    net = network(1001)
    p1, p2, stranger = port(net), port(net), port(net)
    vm1, vm2 = vm(p1, "192.0.2.1/24"), vm(p2, "192.0.2.2/24")
    _wire(driver, net, [p1, p2])
    # a port os-vif plugs that no desired state wires (yet, or ever)
    spy = vm(stranger, "192.0.2.9/24")

    def isolated() -> bool:
        driver.begin_pass()  # the pass the monitor's report makes the agent run
        driver.end_pass()
        return ovs.vsctl("get", "Port", stranger.device_name, "tag").strip() == "4095"

    for _ in range(50):
        if isolated():
            break
        __import__("time").sleep(0.1)
    heard = _captures(spy, 4, lambda: can_ping(vm1, "192.0.2.77", count=2))
    assert "192.0.2.77" not in heard, heard
    assert int(ovs.vsctl("get", "Port", stranger.device_name, "tag")) == 4095
    # control: the same capture on a wired port of the network hears the broadcast
    heard = _captures(vm2, 4, lambda: can_ping(vm1, "192.0.2.77", count=2))
    assert "192.0.2.77" in heard


def _eventually(read: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
    value = read()
    for _ in range(50):
        if done(value):
            return value
        __import__("time").sleep(0.1)
        value = read()
    raise AssertionError(f"still {value}")


def _wait_reported(reported: set[str], ids: set[str]) -> None:
    for _ in range(100):
        if ids <= reported:
            return
        __import__("time").sleep(0.05)
    raise AssertionError(f"the Interface monitor reported {reported}, not {ids}")


def test_a_pass_wires_reported_ports_in_one_transaction_and_isolates_the_rest(
    make_driver: Callable[..., OpenvswitchDriver],
    ovs: PrivateOvs,
    vm: Callable[[Port, str], str],
) -> None:
    """os-vif adds ports while the agent runs: the pass the monitor's reports cause
    writes one OVSDB transaction (the wired ports' tags and the stranger's dead VLAN)
    and the new network's flows go out with the port flows."""
    driver = make_driver()
    reported: set[str] = set()
    driver.watch_ports(reported.add)
    net = network(1001)
    p1, p2, stranger = port(net), port(net), port(net)
    vm1 = vm(p1, "192.0.2.1/24")
    vm(p2, "192.0.2.2/24")
    vm(stranger, "192.0.2.9/24")
    _wait_reported(reported, {p1.id, p2.id, stranger.id})
    assert ovs.flows("br-tun", OURS) and not any("tun_id" in f for f in ovs.flows("br-tun"))

    before = driver.ovsdb_transactions
    nets, ports = _plans([net], [p1, p2])
    driver.check_integrity()  # the agent's pass, in its order
    driver.begin_pass()
    assert not driver.ensure_networks(nets).failed
    assert not any("tun_id" in f for f in ovs.flows("br-tun"))  # not yet: with the ports
    assert not driver.plug_ports(ports).failed
    driver.end_pass()

    assert driver.ovsdb_transactions - before == 1
    tags = [ovs.vsctl("get", "Port", p.device_name, "tag").strip() for p in (p1, p2, stranger)]
    assert tags[0] == tags[1] != "4095" and tags[2] == "4095", tags
    assert any(f"tun_id=0x3e9,tun_src={PEER}" in f for f in ovs.flows("br-tun", OURS))
    assert can_ping(vm1, "192.0.2.2")
    assert not can_ping(vm1, "192.0.2.9", count=1)


def test_status_shows_each_port_ofport_local_vlan_and_its_flows(
    make_driver: Callable[..., OpenvswitchDriver],
    ovs: PrivateOvs,
    vm: Callable[[Port, str], str],
) -> None:
    """netagent-status's port details come from ovs-vswitchd (counters, presence), checked
    here against ovs-vsctl and ovs-ofctl."""
    from netagent.cmd.status import refresh_switch_flows, render  # noqa: PLC0415

    driver = make_driver()
    net = network(1001)
    p1, p2 = port(net), port(net)
    vm1 = vm(p1, "192.0.2.1/24")
    vm(p2, "192.0.2.2/24")
    _wire(driver, net, [p1, p2])
    assert can_ping(vm1, "192.0.2.2", count=3)

    # ovs-vswitchd adds the datapath's counts to its rules every few hundred ms
    entry = _eventually(
        lambda: driver.describe()["ports"][p1.id],
        lambda e: (e["flows"][0]["packets"] or 0) >= 3,
    )
    ofport = int(ovs.vsctl("get", "Interface", p1.device_name, "ofport"))
    vlan = int(ovs.vsctl("get", "Port", p1.device_name, "tag"))
    assert (entry["ofport"], entry["local_vlan"], entry["bridge"]) == (ofport, vlan, "br-int")
    [flow] = entry["flows"]
    assert flow["flow"] == f"table=0,priority=10,in_port={ofport},actions=NORMAL"
    assert flow["installed"] is True and flow["packets"] >= 3
    dumped = ovs.ofctl("dump-flows", ovs.mgmt("br-int"), f"cookie={flow['cookie']}/-1")
    [line] = [x for x in dumped.splitlines() if "actions=" in x]
    assert f"in_port={ofport}" in line and "actions=NORMAL" in line
    assert int(line.split("n_packets=")[1].split(",")[0]) >= flow["packets"]

    doc = {
        "ports": [
            {
                "id": p1.id,
                "device": p1.device_name,
                "network": net.id,
                "filtered": True,
                "wired": True,
                "converged": True,
            }
        ],
        "drivers": {"l2": driver.describe()},
    }
    text = render(doc)
    assert f"ofport {ofport} on br-int, local VLAN {vlan}" in text
    assert f"in_port={ofport},actions=NORMAL cookie {flow['cookie']}: " in text

    # the agent's document is as of its last pass; netagent-status asks the switch again
    assert can_ping(vm1, "192.0.2.2", count=3)

    def refreshed() -> dict[str, Any]:
        refresh_switch_flows(doc)
        return dict(doc["drivers"]["l2"]["ports"][p1.id]["flows"][0])

    _eventually(refreshed, lambda fresh: fresh["packets"] >= flow["packets"] + 3)

    # someone deletes the port's flow: the status says so (it asks the switch)
    ovs.ofctl("del-flows", ovs.mgmt("br-int"), f"cookie={flow['cookie']}/-1")
    [flow] = driver.describe()["ports"][p1.id]["flows"]
    assert flow["installed"] is False
    doc["drivers"] = {"l2": driver.describe()}
    assert f"cookie {flow['cookie']}: MISSING" in render(doc)


def test_sweep_keeps_a_hybrid_plugged_port_whose_tap_is_wanted(
    make_driver: Callable[..., OpenvswitchDriver], ovs: PrivateOvs
) -> None:
    """With the hybrid plug the port on br-int is os-vif's ``qvo<port>``, while the agent
    knows the port's device as ``tap<port>``: a restarted agent's sweep, which has
    not wired it (yet), keeps it in its network; a port whose tap is not wanted is
    detached."""
    driver = make_driver()
    net = network(1001)
    p = port(net)
    qvo = names.hybrid_veth_ovs_side(p.id)
    ovs.vsctl(
        "add-port", "br-int", qvo, "--", "set", "Interface", qvo, "type=internal",
        f"external_ids:iface-id={p.id}", f"external_ids:attached-mac={p.mac_address}",
    )  # fmt: skip

    def wire() -> Outcome:
        driver.begin_pass()
        return _wire(driver, net, [p])

    _eventually(wire, lambda out: not out.failed)  # once the replica has its ofport
    tag = int(ovs.vsctl("get", "Port", qvo, "tag"))
    assert 0 < tag < 4095
    again = make_driver()
    nets, _ = _plans([net], [p])
    assert not again.ensure_networks(nets).failed
    detach = f"detach {qvo} (network {net.id}) to the dead VLAN"
    # (its br-int flow goes: this run has not plugged it; the tag is what is kept)
    assert detach not in again.sweep(nets, wanted_devices={p.device_name})
    assert int(ovs.vsctl("get", "Port", qvo, "tag")) == tag
    assert detach in again.sweep(nets, wanted_devices=set())
    assert int(ovs.vsctl("get", "Port", qvo, "tag")) == 4095


def test_a_failed_transaction_leaves_none_of_the_staged_flows(
    make_driver: Callable[..., OpenvswitchDriver],
    ovs: PrivateOvs,
    vm: Callable[[Port, str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """plug_ports stages its flows while the OVSDB transaction runs; when the transaction
    fails (forced here: a fault that cannot be caused on demand) the staged bundle is
    dropped, so no port is admitted without its tag; the next pass wires it."""
    driver = make_driver()
    net = network(1005)
    p1 = port(net)
    vm(p1, "192.0.2.1/24")
    nets, plans = _plans([net], [p1])
    assert not driver.ensure_networks(nets).failed
    before = ovs.flows("br-int", OURS)

    def refuse(self: db.Ovsdb, ops: object) -> None:
        raise db.OvsdbError("refused for the test")

    with monkeypatch.context() as patched:
        patched.setattr(db.Ovsdb, "apply", refuse)
        out = driver.plug_ports(plans)
    assert out.failed.keys() == {p1.id} and "refused for the test" in out.failed[p1.id]
    assert ovs.flows("br-int", OURS) == before
    assert ovs.vsctl("get", "Port", p1.device_name, "tag").strip() == "[]"

    out = driver.plug_ports(plans)
    assert out.succeeded == {p1.id} and not out.failed
    ofport = int(ovs.vsctl("get", "Interface", p1.device_name, "ofport"))
    assert any(f"in_port={ofport} " in flow for flow in ovs.flows("br-int", OURS))
