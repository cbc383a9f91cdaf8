"""Options of the Neutron source (``[agent] source = neutron``).

The transport itself (``[DEFAULT] transport_url``, ``rpc_response_timeout`` and the
``[oslo_messaging_rabbit]`` group) is oslo.messaging's: it registers those options on the
configuration object when the transport is built, and oslo-config-generator lists them
under the ``oslo.messaging`` namespace.
"""

from __future__ import annotations

from oslo_config import cfg

from netagent.common import constants

NEUTRON_OPTS = [
    cfg.IntOpt(
        "report_interval",
        default=30,
        min=1,
        help="Seconds between state reports to neutron-server. Keep it at most half of the "
        "server's agent_down_time (default 75 s), or the server declares the agent dead "
        "and stops binding ports to this host.",
    ),
    cfg.IntOpt(
        "rpc_response_max_timeout",
        default=600,
        min=1,
        help="Upper bound, in seconds, of an RPC call's timeout. The timeout of a call "
        "starts at [DEFAULT] rpc_response_timeout and doubles each time that call times "
        "out, up to this value (as Neutron's own agents do).",
    ),
    cfg.StrOpt(
        "agent_type",
        default=constants.AGENT_TYPE,
        help="Agent type reported to neutron-server. Must equal the agent type the netagent "
        "ML2 mechanism driver binds ports for. Never use 'Open vSwitch agent' or "
        "'Linux bridge agent'.",
    ),
    cfg.StrOpt(
        "availability_zone",
        default="nova",
        help="Availability zone reported to neutron-server.",
    ),
    cfg.IntOpt(
        "rpc_resources_processing_step",
        default=20,
        min=1,
        help="Most devices sent in one get_devices_details_list_and_failed_devices, "
        "security_group_info_for_devices or update_device_list call. Larger batches mean "
        "fewer calls but longer ones.",
    ),
    cfg.BoolOpt(
        "l2_population",
        default=False,
        help="Tell the server this agent takes l2population FDB updates (reported in the "
        "agent's configurations). The FDB casts are consumed either way.",
    ),
    cfg.IntOpt(
        "resync_after_failures",
        default=3,
        min=1,
        help="Consecutive failed passes (RPC errors or timeouts) after which the source "
        "fetches everything again instead of only what changed.",
    ),
    cfg.FloatOpt(
        "probe_interval",
        default=5.0,
        min=0.5,
        help="Seconds between the probes the agent casts to its own notification "
        "consumers through the broker. A probe that fails or does not come back within "
        "this time means notifications may have been lost (a broker restart loses the "
        "queues); once every consumer answers again the agent fetches everything again. "
        "A broker outage longer than this is always noticed. One message per probe, one "
        "per consumer while a problem lasts.",
    ),
    cfg.FloatOpt(
        "retry_interval",
        default=2.0,
        min=0.1,
        help="Seconds before the first retry of a failed RPC pass; doubles on each further "
        "failure up to report_interval.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[neutron]`` options on ``conf``."""
    conf.register_opts(NEUTRON_OPTS, group="neutron")
