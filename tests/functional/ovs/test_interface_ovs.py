"""The interface driver's Open vSwitch plug (netagent.neutron_plugins.veth.plug_ovs) on a
private OVS: the calls run as in the driver's privsep daemon, from a process inside the
host namespace, with a ``qdhcp-`` stand-in as the peer's namespace."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

from tests.common.ovs import PrivateOvs

PORT = "3f1c2a9e-7b44-4c1d-9e0a-55aa66bb77cc"
MAC = "fa:16:3e:12:34:56"
TAP, NS_END = "tap3f1c2a9e-7b", "ns-3f1c2a9e-7b"


def _in_host(host: str, code: str) -> subprocess.CompletedProcess[str]:
    prelude = "from netagent.neutron_plugins import plugging, veth\n"
    return subprocess.run(
        ["ip", "netns", "exec", host, sys.executable, "-c", prelude + code],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _plug(host: str, dhcp: str, ovs: PrivateOvs, bridge: str) -> subprocess.CompletedProcess[str]:
    return _in_host(
        host,
        f"plan = plugging.plan({PORT!r}, {NS_END!r}, {MAC!r}, {dhcp!r}, mtu_value=1450)\n"
        f"target = plugging.OvsTarget({bridge!r}, {ovs.connection!r}, 10)\n"
        f"veth.plug_ovs(plan, {PORT!r}, target)\n",
    )


def _unplug(host: str, dhcp: str, ovs: PrivateOvs) -> None:
    done = _in_host(
        host,
        f"target = plugging.OvsTarget('br-int', {ovs.connection!r}, 10)\n"
        f"veth.unplug_ovs({TAP!r}, {NS_END!r}, {dhcp!r}, target)\n",
    )
    assert done.returncode == 0, done.stderr


def _links(netns: str) -> dict[str, dict[str, object]]:
    out = subprocess.run(
        ["ip", "-n", netns, "-j", "link", "show"], check=True, capture_output=True, text=True
    ).stdout
    return {link["ifname"]: link for link in json.loads(out)}


def _tx_checksumming(netns: str, device: str) -> str:
    out = subprocess.run(
        ["ip", "netns", "exec", netns, "ethtool", "-k", device],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return next(
        line.split(":")[1].strip() for line in out.splitlines() if "tx-checksumming" in line
    )


def test_plug_ovs_adds_the_tap_like_os_vif_and_unplug_removes_it(
    make_netns: Callable[[str], str], netns: str, ovs: PrivateOvs
) -> None:
    dhcp = make_netns("qdhcp")
    ovs.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
    done = _plug(netns, dhcp, ovs, "br-int")
    assert done.returncode == 0, done.stderr

    assert ovs.vsctl("port-to-br", TAP).strip() == "br-int"
    ids = ovs.vsctl("get", "Interface", TAP, "external_ids")
    assert f'iface-id="{PORT}"' in ids
    assert f'attached-mac="{MAC}"' in ids
    assert "iface-status=active" in ids
    assert int(ovs.vsctl("get", "Interface", TAP, "ofport")) > 0  # ovs-vswitchd opened it
    assert _links(dhcp)[NS_END]["address"] == MAC
    # userspace datapath: the DHCP server's end computes its own UDP checksums
    assert _tx_checksumming(dhcp, NS_END) == "off"
    assert _tx_checksumming(netns, TAP) == "on"

    _unplug(netns, dhcp, ovs)
    assert TAP not in ovs.vsctl("list-ports", "br-int").split()
    assert TAP not in _links(netns) and NS_END not in _links(dhcp)
    _unplug(netns, dhcp, ovs)  # again (the DHCP agent's destroy after a failed setup): quiet


def test_plug_ovs_on_a_kernel_datapath_bridge_keeps_offload(
    make_netns: Callable[[str], str], netns: str, ovs: PrivateOvs
) -> None:
    dhcp = make_netns("qdhcp")
    # no kernel module here: ovs-vswitchd cannot open it, but the row says "system"
    ovs.vsctl("add-br", "br-sys", "--", "set", "bridge", "br-sys", "datapath_type=system")
    done = _plug(netns, dhcp, ovs, "br-sys")
    assert done.returncode == 0, done.stderr
    assert ovs.vsctl("port-to-br", TAP).strip() == "br-sys"
    assert _tx_checksumming(dhcp, NS_END) == "on"
    _unplug(netns, dhcp, ovs)
    assert TAP not in ovs.vsctl("list-ports", "br-sys").split()


def test_plug_ovs_without_the_bridge_fails_and_leaves_nothing(
    make_netns: Callable[[str], str], netns: str, ovs: PrivateOvs
) -> None:
    dhcp = make_netns("qdhcp")
    done = _plug(netns, dhcp, ovs, "br-int")
    assert done.returncode != 0
    assert "OvsdbError" in done.stderr and "no bridge br-int" in done.stderr
    assert TAP not in _links(netns) and NS_END not in _links(dhcp)


def test_a_row_left_by_a_deleted_namespace_is_reused_by_the_next_plug(
    make_netns: Callable[[str], str], netns: str, ovs: PrivateOvs
) -> None:
    """neutron-netns-cleanup (or a reboot) deletes the qdhcp- namespace, not the OVS row:
    the DHCP agent's next plug of the same port must work with the row still there."""
    dhcp = make_netns("qdhcp")
    ovs.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
    assert _plug(netns, dhcp, ovs, "br-int").returncode == 0
    subprocess.run(["ip", "netns", "delete", dhcp], check=True)  # the veth pair goes with it
    assert TAP not in _links(netns)
    assert TAP in ovs.vsctl("list-ports", "br-int").split()  # the row stays, no device

    again = make_netns("qdhcp")
    done = _plug(netns, again, ovs, "br-int")
    assert done.returncode == 0, done.stderr
    assert ovs.vsctl("list-ports", "br-int").split().count(TAP) == 1
    assert int(ovs.vsctl("get", "Interface", TAP, "ofport")) > 0  # the new device is open
    assert _tx_checksumming(again, NS_END) == "off"
    _unplug(netns, again, ovs)
