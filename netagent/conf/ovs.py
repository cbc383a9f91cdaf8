"""Options of the Open vSwitch L2 driver (``[ovs]``, Neutron's names where they exist)."""

from __future__ import annotations

from oslo_config import cfg

OVS_OPTS = [
    cfg.StrOpt(
        "integration_bridge",
        default="br-int",
        help="The integration bridge: Nova's os-vif plugs VM ports into it with "
        "external_ids:iface-id = Neutron port id. Each network gets a local VLAN tag on it.",
    ),
    cfg.StrOpt(
        "tunnel_bridge",
        default="br-tun",
        help="The tunnel bridge: maps local VLANs to VXLAN VNIs and back. Created and "
        "owned by netagent.",
    ),
    cfg.ListOpt(
        "bridge_mappings",
        default=[],
        help="Comma-separated <physical_network>:<bridge> pairs: the OVS bridge that carries "
        "each flat physical network, e.g. physnet1:br-ex. The bridge is created if absent "
        "(add its uplink port yourself); netagent patches it to the integration bridge.",
    ),
    cfg.StrOpt(
        "datapath_type",
        default="system",
        choices=[
            ("system", "The Linux kernel datapath (openvswitch module)."),
            ("netdev", "The userspace datapath (no kernel module; also DPDK)."),
        ],
        help="Datapath type of every bridge netagent creates. Must match what os-vif is "
        "told (Nova's vif_details datapath_type).",
    ),
    cfg.StrOpt(
        "ovsdb_connection",
        default="unix:/run/openvswitch/db.sock",
        help="OVSDB server to manage (ovsdbapp connection string). For a unix socket, "
        "the bridges' OpenFlow management sockets (<bridge>.mgmt) are looked up in the "
        "same directory.",
    ),
    cfg.IntOpt(
        "ovsdb_timeout",
        default=10,
        min=1,
        help="Seconds an OVSDB transaction (and the wait for ovs-vswitchd to apply it) "
        "may take before it fails.",
    ),
    cfg.HostAddressOpt(
        "local_ip",
        help="This host's VXLAN tunnel endpoint address. Required for VXLAN networks. With "
        "datapath_type = netdev the address must be on an OVS bridge (a br-phy holding "
        "the uplink), or ovs-vswitchd finds no route for its tunnels.",
    ),
    cfg.PortOpt(
        "vxlan_udp_port",
        default=4789,
        help="UDP destination port of VXLAN packets (IANA: 4789).",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(OVS_OPTS, group="ovs")
