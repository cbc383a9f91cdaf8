"""The Linux bridge driver alone against real bridges, VXLAN devices and FDB entries.

The driver is bound to a fresh test namespace (``netns=``, fixtures in ``conftest.py``);
nothing outside it is touched. Taps are veth ends left in the namespace as a hypervisor
would; the "underlay" address is on a veth end. Kernel state is read back with iproute2's
JSON output (``helpers.py``), independently of the code under test.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import subprocess
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from netagent.drivers.base import NetworkPlan, PortPlan
from netagent.drivers.linuxbridge import LinuxBridgeDriver
from netagent.model.port import Port
from tests.functional.drivers.helpers import (
    LOCAL_IP,
    PEER_B,
    PEER_C,
    PEER_D,
    ZERO,
    Monitor,
    add_nic,
    add_tap,
    brq,
    fdb,
    is_up,
    links,
    network,
    port,
    remote,
    sh,
)


def test_vxlan_network_devices(driver: LinuxBridgeDriver, host: str) -> None:
    net = network(vni=1001, mtu=1450)
    outcome = driver.ensure_networks([NetworkPlan(net, {})])
    assert outcome.succeeded == {net.id} and not outcome.failed

    devs = links(host)
    bridge, vx = devs[brq(net)], devs["nvx-1001"]
    assert bridge["linkinfo"]["info_kind"] == "bridge"
    assert bridge["mtu"] == 1450 and is_up(bridge)
    assert bridge["linkinfo"]["info_data"]["stp_state"] == 0
    assert bridge["linkinfo"]["info_data"]["ageing_time"] == 30000
    data = vx["linkinfo"]["info_data"]
    assert vx["linkinfo"]["info_kind"] == "vxlan"
    assert data["id"] == 1001 and data["local"] == LOCAL_IP and data["port"] == 4790
    assert data["learning"] is False
    assert vx["mtu"] == 1450 and is_up(vx) and vx["master"] == brq(net)
    # No host IPv6 presence on the tenant network (no link-local address to DAD/MLD with).
    for name in (brq(net), "nvx-1001"):
        assert json.loads(sh(host, "-j", "addr", "show", "dev", name))[0]["addr_info"] == []


def test_fdb_converges_when_peers_change(driver: LinuxBridgeDriver, host: str) -> None:
    net = network(vni=2002)
    mac1, mac2 = "fa:16:3e:00:00:01", "fa:16:3e:00:00:02"
    plan = NetworkPlan(
        net,
        {"host-b": PEER_B, "host-c": PEER_C, "host-a": ipaddress.ip_address(LOCAL_IP)},
        (remote(mac1, PEER_B), remote(mac2, PEER_C)),
    )
    assert not driver.ensure_networks([plan]).failed
    assert fdb(host, "nvx-2002") == {
        (ZERO, str(PEER_B)),
        (ZERO, str(PEER_C)),
        (mac1, str(PEER_B)),
        (mac2, str(PEER_C)),
    }

    # host-b leaves, host-d joins, mac2 moves to host-d.
    plan = NetworkPlan(net, {"host-c": PEER_C, "host-d": PEER_D}, (remote(mac2, PEER_D),))
    assert not driver.ensure_networks([plan]).failed
    assert fdb(host, "nvx-2002") == {(ZERO, str(PEER_C)), (ZERO, str(PEER_D)), (mac2, str(PEER_D))}

    # Nobody else left: no flooding at all.
    assert not driver.ensure_networks([NetworkPlan(net, {})]).failed
    assert fdb(host, "nvx-2002") == set()


def test_ports_enslaved_and_admin_state(driver: LinuxBridgeDriver, host: str) -> None:
    net = network(vni=3003, mtu=1400)
    up_port, down_port = port(net), port(net, admin_state_up=False)
    add_tap(host, up_port)
    add_tap(host, down_port)
    driver.ensure_networks([NetworkPlan(net, {})])
    outcome = driver.plug_ports([PortPlan(up_port, net), PortPlan(down_port, net)])
    assert outcome.succeeded == {up_port.id, down_port.id} and not outcome.failed
    devs = links(host)
    for p, up in ((up_port, True), (down_port, False)):
        tap = devs[p.device_name]
        assert tap["master"] == brq(net) and tap["mtu"] == 1400
        assert is_up(tap) is up

    # Flip the admin states.
    flipped = [
        PortPlan(Port(**{**_fields(up_port), "admin_state_up": False}), net),
        PortPlan(Port(**{**_fields(down_port), "admin_state_up": True}), net),
    ]
    assert not driver.plug_ports(flipped).failed
    devs = links(host)
    assert not is_up(devs[up_port.device_name]) and is_up(devs[down_port.device_name])

    assert driver.unplug_ports([PortPlan(up_port, net)]).succeeded == {up_port.id}
    assert "master" not in links(host)[up_port.device_name]


def _fields(p: Port) -> dict[str, Any]:
    return {f: getattr(p, f) for f in p.__dataclass_fields__}


def test_missing_tap_fails_only_that_port(driver: LinuxBridgeDriver, host: str) -> None:
    net = network(vni=4004)
    present, absent = port(net), port(net)
    add_tap(host, present)
    driver.ensure_networks([NetworkPlan(net, {})])
    outcome = driver.plug_ports([PortPlan(absent, net), PortPlan(present, net)])
    assert outcome.succeeded == {present.id}
    assert set(outcome.failed) == {absent.id}
    assert absent.device_name in outcome.failed[absent.id]
    assert links(host)[present.device_name]["master"] == brq(net)
    # Unplugging a port whose device is gone is fine.
    assert driver.unplug_ports([PortPlan(absent, net)]).succeeded == {absent.id}


def test_tap_vanished_during_a_pass_fails_only_that_port(
    driver: LinuxBridgeDriver, host: str
) -> None:
    # The pass reads the links once: a tap deleted after that is still in the snapshot,
    # so its SetLink reaches the kernel inside the batch of every port, and fails there.
    net = network(vni=4014, mtu=1400)
    ports = [port(net) for _ in range(6)]
    for p in ports:
        add_tap(host, p)
    driver.begin_pass()
    assert not driver.ensure_networks([NetworkPlan(net, {})]).failed
    victim = ports[2]
    sh(host, "link", "del", victim.device_name)
    outcome = driver.plug_ports([PortPlan(p, net) for p in ports])
    assert set(outcome.failed) == {victim.id}
    assert "ENODEV" in outcome.failed[victim.id], outcome.failed
    assert outcome.succeeded == {p.id for p in ports} - {victim.id}
    devs = links(host)
    for p in ports:
        if p is not victim:
            assert devs[p.device_name]["master"] == brq(net)
            assert devs[p.device_name]["mtu"] == 1400
    assert driver.describe()["ports"].keys() == outcome.succeeded


def test_rerun_changes_nothing(make_driver: Callable[..., LinuxBridgeDriver], host: str) -> None:
    net = network(vni=5005)
    ports = [port(net), port(net, admin_state_up=False)]
    for p in ports:
        add_tap(host, p)
    plan = NetworkPlan(
        net, {"host-b": PEER_B}, (remote("fa:16:3e:00:00:05", PEER_B, "192.0.2.5"),)
    )
    port_plans = [PortPlan(p, net) for p in ports]
    first = make_driver()
    first.ensure_networks([plan])
    first.plug_ports(port_plans)
    before = {n: d["ifindex"] for n, d in links(host).items()}

    # A new driver instance, as after an agent restart: adopts, sends nothing.
    second = make_driver()
    monitor = Monitor(host)
    try:
        assert not second.ensure_networks([plan]).failed
        assert not second.plug_ports(port_plans).failed
        assert second.sweep([plan]) == []
    finally:
        events = monitor.stop()
    assert events == "", f"re-run changed the kernel:\n{events}"
    assert {n: d["ifindex"] for n, d in links(host).items()} == before


def test_out_of_band_changes_are_repaired(driver: LinuxBridgeDriver, host: str) -> None:
    net = network(vni=6006, mtu=1450)
    p = port(net)
    add_tap(host, p)
    plan = NetworkPlan(net, {"host-b": PEER_B})
    driver.ensure_networks([plan])
    driver.plug_ports([PortPlan(p, net)])
    index = links(host)["nvx-6006"]["ifindex"]
    sh(host, "link", "set", "nvx-6006", "nomaster")
    sh(host, "link", "set", brq(net), "mtu", "1300")
    sh(host, "link", "set", p.device_name, "nomaster")
    subprocess.run(
        ["bridge", "-n", host, "fdb", "append", ZERO, "dev", "nvx-6006", "dst", str(PEER_D)],
        check=True,
    )
    driver.ensure_networks([plan])
    driver.plug_ports([PortPlan(p, net)])
    devs = links(host)
    assert devs["nvx-6006"]["master"] == brq(net) and devs["nvx-6006"]["ifindex"] == index
    assert devs[brq(net)]["mtu"] == 1450
    assert devs[p.device_name]["master"] == brq(net)
    assert fdb(host, "nvx-6006") == {(ZERO, str(PEER_B))}


def test_sweep_and_cleanup_leave_foreign_devices(driver: LinuxBridgeDriver, host: str) -> None:
    keep, drop = network(vni=7007), network(vni=7008)
    tap = port(drop)
    add_tap(host, tap)
    driver.ensure_networks([NetworkPlan(keep, {}), NetworkPlan(drop, {})])
    driver.plug_ports([PortPlan(tap, drop)])
    # Foreign: a bridge of someone else, and a brq bridge with a foreign member.
    sh(host, "link", "add", "br-foreign", "type", "bridge")
    add_nic(host, "foreign0")
    sh(host, "link", "set", "foreign0", "master", "br-foreign")
    squatted = "brq" + uuid.uuid4().hex[:11]
    sh(host, "link", "add", squatted, "type", "bridge")
    add_nic(host, "eth9")
    sh(host, "link", "set", "eth9", "master", squatted)

    actions = driver.sweep([NetworkPlan(keep, {})], dry_run=True)
    assert actions and all(a.startswith(("NOOP:", "keep")) for a in actions)
    assert {brq(drop), "nvx-7008"} <= set(links(host))

    driver.sweep([NetworkPlan(keep, {})])
    devs = links(host)
    assert brq(drop) not in devs and "nvx-7008" not in devs
    assert {
        brq(keep),
        "nvx-7007",
        "br-foreign",
        "foreign0",
        squatted,
        "eth9",
        tap.device_name,
        "ul0",
    } <= set(devs)
    assert devs["eth9"]["master"] == squatted and devs["foreign0"]["master"] == "br-foreign"

    # A tap left in the kept bridge would forward unfiltered once the firewall is gone.
    stray = port(drop)
    add_tap(host, stray)
    sh(host, "link", "set", stray.device_name, "master", squatted)
    actions = driver.cleanup()
    devs = links(host)
    assert brq(keep) not in devs and "nvx-7007" not in devs
    assert {"br-foreign", "foreign0", squatted, "eth9", "ul0"} <= set(devs)
    assert "master" not in devs[stray.device_name] and not is_up(devs[stray.device_name])
    assert devs["eth9"]["master"] == squatted
    assert (
        f"detach {stray.device_name} from {squatted} (bridge kept: foreign member eth9) "
        "and set it down" in actions
    )


def test_sweep_detaches_taps_of_unwanted_ports(driver: LinuxBridgeDriver, host: str) -> None:
    # A port deleted while the agent was down: its tap is still in the bridge. The sweep
    # releases it (the device itself is the hypervisor's) and leaves wanted taps alone.
    net = network(vni=7010)
    stay, stray = port(net), port(net)
    for p in (stay, stray):
        add_tap(host, p)
    driver.ensure_networks([NetworkPlan(net, {})])
    driver.plug_ports([PortPlan(stay, net), PortPlan(stray, net)])
    assert links(host)[stray.device_name]["master"] == brq(net)

    plans = [NetworkPlan(net, {})]
    planned = driver.sweep(plans, dry_run=True, wanted_devices={stay.device_name})
    assert any(stray.device_name in a and a.startswith("NOOP:") for a in planned)
    assert links(host)[stray.device_name]["master"] == brq(net)

    driver.sweep(plans, wanted_devices={stay.device_name})
    devs = links(host)
    assert "master" not in devs[stray.device_name]
    assert devs[stay.device_name]["master"] == brq(net)
    assert brq(net) in devs


def test_flat_network_enslaves_mapped_interface_only(
    make_driver: Callable[..., LinuxBridgeDriver], host: str
) -> None:
    add_nic(host, "phys0")
    sh(host, "link", "set", "phys0", "mtu", "9000")
    add_nic(host, "phys1")
    sh(host, "link", "add", "br-other", "type", "bridge")
    sh(host, "link", "set", "phys1", "master", "br-other")
    driver = make_driver(physical_interface_mappings=["physnet1:phys0", "physnet2:phys1"])
    flat = network(vni=None, mtu=1500, kind="flat", physnet="physnet1")
    taken = network(vni=None, mtu=1500, kind="flat", physnet="physnet2")
    unmapped = network(vni=None, mtu=1500, kind="flat", physnet="physnet9")
    outcome = driver.ensure_networks(
        [NetworkPlan(flat, {}), NetworkPlan(taken, {}), NetworkPlan(unmapped, {})]
    )
    assert outcome.succeeded == {flat.id}
    assert "br-other" in outcome.failed[taken.id]
    assert "physnet9" in outcome.failed[unmapped.id]
    devs = links(host)
    assert devs["phys0"]["master"] == brq(flat)
    assert devs["phys0"]["mtu"] == 9000 and not is_up(devs["phys0"])  # untouched
    assert devs["phys1"]["master"] == "br-other"

    driver.sweep([])
    devs = links(host)
    assert brq(flat) not in devs and "master" not in devs["phys0"]
    assert devs["phys0"]["mtu"] == 9000


def test_local_network_has_no_uplink(driver: LinuxBridgeDriver, host: str) -> None:
    net = network(vni=None, kind="local", mtu=1500)
    assert not driver.ensure_networks([NetworkPlan(net, {})]).failed
    members = [d for d in links(host).values() if d.get("master") == brq(net)]
    assert members == []


def test_vxlan_without_local_ip_fails_that_network(
    make_driver: Callable[..., LinuxBridgeDriver], host: str
) -> None:
    driver = make_driver(local_ip=None)
    vx, local = network(vni=8008), network(vni=None, kind="local")
    outcome = driver.ensure_networks([NetworkPlan(vx, {}), NetworkPlan(local, {})])
    assert outcome.succeeded == {local.id} and "local_ip" in outcome.failed[vx.id]


@pytest.mark.skip(reason="kernel has no 802.1q module")
def test_vlan_network(make_driver: Callable[..., LinuxBridgeDriver], host: str) -> None:
    add_nic(host, "phys0")
    driver = make_driver(physical_interface_mappings=["physnet1:phys0"])
    net = network(vni=100, kind="vlan", physnet="physnet1", mtu=1500)
    assert not driver.ensure_networks([NetworkPlan(net, {})]).failed
    vlan = links(host)["nvl-" + net.id[:11]]
    assert vlan["linkinfo"]["info_data"]["id"] == 100 and vlan["master"] == brq(net)


def test_vni_change_removes_the_old_vxlan_device_at_once(
    driver: LinuxBridgeDriver, host: str
) -> None:
    """Issue 17 item 7: the old ``nvx-<VNI>`` stayed on the bridge, flooding broadcasts on
    the old VNI too, until the next full resync."""
    old = network(vni=3001)
    peers = {"host-b": PEER_B}
    assert not driver.ensure_networks([NetworkPlan(old, peers)]).failed
    assert fdb(host, "nvx-3001") == {(ZERO, str(PEER_B))}

    new = dataclasses.replace(old, segmentation_id=3002)
    assert not driver.ensure_networks([NetworkPlan(new, peers)]).failed

    devs = links(host)
    assert "nvx-3001" not in devs
    on_bridge = {name for name, dev in devs.items() if dev.get("master") == brq(new)}
    assert on_bridge == {"nvx-3002"}
    assert devs["nvx-3002"]["linkinfo"]["info_data"]["id"] == 3002
    assert fdb(host, "nvx-3002") == {(ZERO, str(PEER_B))}
