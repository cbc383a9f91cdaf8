"""Options of the standalone state-file source."""

from __future__ import annotations

from oslo_config import cfg

FILE_SOURCE_OPTS = [
    cfg.StrOpt(
        "path",
        default="/etc/netagent/state.yaml",
        help="YAML or JSON file with the desired networks, subnets, ports, security groups, "
        "routers, floating IPs and agents (format: doc/state-file.md). Used when "
        "[agent] source = file.",
    ),
    cfg.FloatOpt(
        "poll_interval",
        default=1.0,
        min=0.1,
        help="Seconds between checks of the state file for changes.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(FILE_SOURCE_OPTS, group="file_source")
