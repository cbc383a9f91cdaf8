"""Options of the Linux bridge L2 driver."""

from __future__ import annotations

from oslo_config import cfg

LINUXBRIDGE_OPTS = [
    cfg.ListOpt(
        "physical_interface_mappings",
        default=[],
        help="Comma-separated <physical_network>:<interface> pairs: the host interface that "
        "carries each flat or VLAN physical network, e.g. physnet1:eth1.",
    ),
    cfg.HostAddressOpt(
        "local_ip",
        help="This host's VXLAN underlay (tunnel endpoint) address. Required for VXLAN networks.",
    ),
    cfg.BoolOpt(
        "arp_responder",
        default=False,
        help="Answer ARP requests for remote ports of VXLAN networks on this host's bridge "
        "(neigh_suppress plus static neighbour entries) instead of flooding them to the "
        "other hosts. The kernel then also keeps gratuitous ARP from local VMs off the "
        "tunnels, so a VIP that moves between VMs on different hosts (keepalived/VRRP, "
        "Octavia, allowed address pairs) is only learned by remote VMs when their ARP "
        "cache expires: leave it off where tenants move addresses. IPv6 ND is never "
        "suppressed.",
    ),
    cfg.PortOpt(
        "vxlan_udp_port",
        default=4789,
        help="UDP destination port of VXLAN packets (IANA: 4789).",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(LINUXBRIDGE_OPTS, group="linuxbridge")
