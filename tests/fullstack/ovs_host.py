"""A simulated host's private Open vSwitch set up the way the fullstack and interop OVS
tests need it: the tunnel address on ``br-phy`` (the userspace datapath routes its VXLAN
packets only through an OVS bridge) and VM taps plugged the way os-vif plugs
``vif_type ovs`` (``iface-id`` = port id, ``attached-mac``), also with its hybrid plug
(``qbr``/``qvb``/``qvo``)."""

from __future__ import annotations

from netagent.common import names
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


def plug_like_os_vif(
    switch: PrivateOvs, vm: harness.Vm, bridge: str = "br-int", hybrid: bool = False
) -> None:
    """Add ``vm``'s tap to ``bridge`` (creating the bridge as os-vif does), TX checksum
    offload off in the VM (the userspace datapath forwards a veth's partial checksums as
    they are, testing.md).

    ``hybrid``: os-vif's hybrid plug (vif_details ``ovs_hybrid_plug``): the tap goes into
    a Linux bridge ``qbr<port>`` (IPv6 off, as os-vif makes it), joined to ``bridge`` by
    the veth ``qvb<port>`` (in qbr) / ``qvo<port>`` (on OVS, with the iface-id)."""
    ns = vm.host.netns
    harness.ip(ns, "link", "set", vm.tap, "up")
    harness.run("ip", "netns", "exec", vm.netns, "ethtool", "-K", "eth0", "tx", "off")
    port = vm.tap
    if hybrid:
        qbr = names.hybrid_bridge(vm.port_id)
        qvb = names.hybrid_veth_bridge_side(vm.port_id)
        port = names.hybrid_veth_ovs_side(vm.port_id)
        mtu = str(harness.links(ns)[vm.tap]["mtu"])
        harness.ip(ns, "link", "add", qbr, "type", "bridge", "stp_state", "0")
        sysctl = f"net.ipv6.conf.{qbr}.disable_ipv6=1"
        harness.run("ip", "netns", "exec", ns, "sysctl", "-qw", sysctl)
        veth = ("type", "veth", "peer", "name", port, "mtu", mtu)
        harness.ip(ns, "link", "add", qvb, "mtu", mtu, *veth)
        for device in (qbr, qvb, port):
            harness.ip(ns, "link", "set", device, "up")
        harness.ip(ns, "link", "set", qvb, "master", qbr)
        harness.ip(ns, "link", "set", vm.tap, "master", qbr)
    switch.vsctl(
        "--may-exist",
        *_bridge_with(bridge, port),
        "--",
        "set",
        "Interface",
        port,
        f"external_ids:iface-id={vm.port_id}",
        f"external_ids:attached-mac={vm.mac}",
        "external_ids:iface-status=active",
    )


def add_ovs_host(
    fabric: harness.Fabric, switches: dict[str, PrivateOvs], name: str, tunnel_ip: str
) -> harness.Host:
    """A fabric host with its own private OVS (started; stopped by the ``switches``
    fixture), its tunnel address on ``br-phy`` and ``l2_driver = openvswitch``."""
    host = fabric.add_host(name, tunnel_ip)
    group = harness.agent_ids(harness.AGENT_USER)[1] if harness.AGENT_USER else None
    switch = PrivateOvs(host.netns, group=group)
    switches[name] = switch
    switch.start()
    tunnel_on_br_phy(switch, host.netns, tunnel_ip)
    host.l2_driver = "openvswitch"
    host.extra_config = (
        "[ovs]\n"
        f"local_ip = {tunnel_ip}\n"
        "datapath_type = netdev\n"
        f"ovsdb_connection = {switch.connection}\n"
        "[iptables]\n"
        "integrity_interval = 0.5\n"
    )
    return host


def wired(switch: PrivateOvs, vm: harness.Vm) -> bool:
    """The VM's br-int port (its tap, or qvo with the hybrid plug) has a network's VLAN."""
    iface = switch.vsctl(
        "--bare", "--columns=name", "find", "Interface", f"external_ids:iface-id={vm.port_id}"
    ).strip()
    if not iface:
        return False
    tag = switch.vsctl("get", "Port", iface, "tag").strip()
    return tag.isdigit() and 0 < int(tag) < 4095
