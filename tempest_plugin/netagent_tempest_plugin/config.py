"""The plugin's options: ``[service_available] netagent`` and the ``[netagent]`` group."""

from oslo_config import cfg

service_option = cfg.BoolOpt(
    "netagent",
    default=True,
    help="Whether the cloud's L2 agents are netagent agents (the plugin's tests skip if not).",
)

netagent_group = cfg.OptGroup(name="netagent", title="netagent agent options")

NetagentGroup = [
    cfg.StrOpt(
        "agent_type",
        default="Netagent agent",
        help="agent_type netagent reports to Neutron (GET /v2.0/agents).",
    ),
    cfg.StrOpt(
        "binary",
        default="netagent-agent",
        help="binary netagent reports to Neutron.",
    ),
    cfg.ListOpt(
        "hosts",
        default=[],
        help="Hosts that run a netagent agent; each must be listed alive, and ports are "
        "bound to them. Empty: every agent of agent_type.",
    ),
    cfg.StrOpt(
        "physical_network",
        help="A physical network in the agents' interface_mappings; the flat network "
        "binding test is skipped when unset.",
    ),
    cfg.ListOpt(
        "tunnel_types",
        default=["vxlan"],
        help="Tunnel types the agents report (configurations.tunnel_types).",
    ),
    cfg.StrOpt(
        "firewall_driver",
        help="firewall_driver the agents run with (e.g. iptables, noop). When set, the "
        "agents' reported firewall_driver and the ports' vif_details port_filter are "
        "checked against it.",
    ),
    cfg.ListOpt(
        "l3_hosts",
        default=[],
        help="Hosts whose netagent also builds routers ([agent] l3_driver = namespace) and "
        "reports as their L3 agent; the router tests skip when empty.",
    ),
    cfg.StrOpt(
        "vif_type",
        default="tap",
        help="binding:vif_type of a port bound to a netagent host.",
    ),
]
