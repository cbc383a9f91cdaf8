"""A simulated host's private Open vSwitch set up the way the fullstack and interop OVS
tests need it: the tunnel address on ``br-phy`` (the userspace datapath routes its VXLAN
packets only through an OVS bridge) and VM taps plugged the way os-vif plugs
``vif_type ovs`` (``iface-id`` = port id, ``attached-mac``)."""

from __future__ import annotations

from tests.common.ovs import PrivateOvs
from tests.fullstack import harness


def _bridge_with(bridge: str, port: str) -> list[str]:
    """ovs-vsctl arguments: a userspace bridge ``bridge`` holding ``port``."""
    return [
        "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev",
        "--", "add-port", bridge, port,
    ]  # fmt: skip


def add_bridge(switch: PrivateOvs, bridge: str, port: str) -> None:
    """An operator's bridge (userspace datapath) holding ``port``."""
    switch.vsctl(*_bridge_with(bridge, port))


def tunnel_on_br_phy(switch: PrivateOvs, netns: str, tunnel_ip: str) -> None:
    """Move the host's tunnel address from its underlay veth ``eth-ul`` to ``br-phy``,
    whose port the veth becomes."""
    harness.ip(netns, "addr", "flush", "dev", "eth-ul")
    add_bridge(switch, "br-phy", "eth-ul")
    harness.ip(netns, "addr", "add", f"{tunnel_ip}/{harness.UNDERLAY_PREFIX}", "dev", "br-phy")
    harness.ip(netns, "link", "set", "br-phy", "up")
    harness.run("ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.conf.eth-ul.rp_filter=1")


def plug_like_os_vif(switch: PrivateOvs, vm: harness.Vm, bridge: str = "br-int") -> None:
    """Add ``vm``'s tap to ``bridge`` (creating the bridge as os-vif does), TX checksum
    offload off in the VM (the userspace datapath forwards a veth's partial checksums as
    they are, testing.md)."""
    harness.ip(vm.host.netns, "link", "set", vm.tap, "up")
    harness.run("ip", "netns", "exec", vm.netns, "ethtool", "-K", "eth0", "tx", "off")
    switch.vsctl(
        "--may-exist",
        *_bridge_with(bridge, vm.tap),
        "--",
        "set",
        "Interface",
        vm.tap,
        f"external_ids:iface-id={vm.port_id}",
        f"external_ids:attached-mac={vm.mac}",
        "external_ids:iface-status=active",
    )
