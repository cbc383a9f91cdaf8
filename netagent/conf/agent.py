"""Options of the agent itself: identity, runtime directory, source and drivers."""

from __future__ import annotations

import socket

from oslo_config import cfg

DEFAULT_OPTS = [
    cfg.HostAddressOpt(
        "host",
        default=socket.gethostname(),
        sample_default="<hostname>",
        help="Name of this host as the rest of the cloud knows it. Must equal nova-compute's "
        "'host' (the value Nova puts in a port's binding:host_id). In standalone mode the "
        "agent applies the ports whose binding:host_id is this value.",
    ),
    cfg.StrOpt(
        "state_path",
        default="/var/lib/netagent",
        help="Directory for the agent's runtime files (status socket, locks, caches). Two "
        "agents on one machine must use different directories.",
    ),
]

AGENT_OPTS = [
    cfg.StrOpt(
        "source",
        default="file",
        choices=[
            ("file", "Read desired state from a local YAML/JSON file (standalone mode)."),
            ("neutron", "Receive desired state from neutron-server over oslo.messaging."),
        ],
        help="Where desired network state comes from.",
    ),
    cfg.StrOpt(
        "l2_driver",
        default="noop",
        help="L2 driver: the name of an entry point in the 'netagent.l2' group "
        "(e.g. linuxbridge, openvswitch, noop).",
    ),
    cfg.StrOpt(
        "firewall_driver",
        default="noop",
        help="Firewall driver: the name of an entry point in the 'netagent.firewall' group "
        "(e.g. iptables, noop). 'noop' leaves ports unfiltered.",
    ),
    cfg.StrOpt(
        "l3_driver",
        default="noop",
        help="L3 (router) driver: the name of an entry point in the 'netagent.l3' group "
        "(e.g. namespace, noop).",
    ),
    cfg.IntOpt(
        "resync_interval",
        default=300,
        min=0,
        help="Seconds between periodic full resyncs of all resources; 0 disables them. "
        "A full resync repairs out-of-band changes to what netagent owns.",
    ),
    cfg.FloatOpt(
        "retry_initial_delay",
        default=1.0,
        min=0.01,
        help="Seconds before the first retry of a resource (port, network, router) that "
        "failed to converge; each further consecutive failure doubles the wait up to "
        "retry_max_delay.",
    ),
    cfg.FloatOpt(
        "retry_max_delay",
        default=60.0,
        min=0.01,
        help="Upper bound, in seconds, of the wait between retries of a failing resource.",
    ),
    cfg.IntOpt(
        "failures_before_resync",
        default=5,
        min=1,
        help="Every this many consecutive failures of one resource, the agent runs a full "
        "resync of everything (to repair state the failing resource may depend on).",
    ),
    cfg.BoolOpt(
        "take_over_neutron_linuxbridge",
        default=False,
        help="Take over what a stopped neutron-linuxbridge-agent left on this host, in "
        "place (doc/migration.md): its brq bridges are adopted, its vxlan-<VNI> devices are "
        "renamed to netagent's nvx-<VNI> (same device, no flap; vxlan_udp_port and local_ip "
        "must equal the old agent's), its conntrack zones are kept, and its iptables "
        "(neutron-linuxbri-*), ipsets (NIPv4/NIPv6) and ebtables (neutronARP-/neutronMAC-) "
        "filters are removed in the same atomic restores that put netagent's in place. "
        "Only with l2_driver linuxbridge and firewall_driver iptables. Never enable it "
        "while the old agent runs.",
    ),
    cfg.StrOpt(
        "metrics_listen",
        default="",
        help="Serve Prometheus metrics (sync durations, ports wired and filtered, failures) "
        "over HTTP at http://<this>/metrics, given as <address>:<port>, e.g. "
        "127.0.0.1:9737. Empty disables the endpoint.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(DEFAULT_OPTS)
    conf.register_opts(AGENT_OPTS, group="agent")
