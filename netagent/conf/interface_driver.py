"""Options of the interface driver ``netagent`` (``[netagent]`` in dhcp_agent.ini).

Read inside neutron-dhcp-agent, not by netagent-agent: the sample is
``etc/neutron/dhcp_agent.netagent.ini.sample`` (namespace ``netagent.interface_driver``).
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = "netagent"

INTERFACE_DRIVER_OPTS = [
    cfg.StrOpt(
        "l2_driver",
        default="linuxbridge",
        choices=[
            ("linuxbridge", "The tap end is left for netagent to enslave to brq<network>."),
            (
                "openvswitch",
                "The tap end is added to the integration bridge with external_ids "
                "iface-id/attached-mac/iface-status, as os-vif plugs a VM.",
            ),
        ],
        help="The L2 driver of this host's netagent ([agent] l2_driver in netagent.conf): "
        "set the same value here. It decides where the DHCP port's tap goes.",
    ),
    cfg.StrOpt(
        "integration_bridge",
        default="br-int",
        help="With l2_driver = openvswitch: the integration bridge ([ovs] "
        "integration_bridge of netagent.conf).",
    ),
    cfg.StrOpt(
        "ovsdb_connection",
        default="unix:/run/openvswitch/db.sock",
        help="With l2_driver = openvswitch: the OVSDB server netagent manages (ovsdbapp "
        "connection string). The driver's privsep daemon connects to it.",
    ),
    cfg.IntOpt(
        "ovsdb_timeout",
        default=10,
        min=1,
        help="With l2_driver = openvswitch: seconds an OVSDB transaction may take.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(INTERFACE_DRIVER_OPTS, group=GROUP)
