"""Options of the iptables manager and the iptables firewall driver."""

from __future__ import annotations

from oslo_config import cfg

IPTABLES_OPTS = [
    cfg.StrOpt(
        "backend",
        default="auto",
        choices=[
            ("auto", "Use the backend the host's iptables already uses (detected)."),
            ("nft", "iptables-nft-restore / ip6tables-nft-restore."),
            ("legacy", "iptables-legacy-restore / ip6tables-legacy-restore."),
        ],
        help="Which iptables backend to program. Mixing backends on one host splits the "
        "ruleset in two; keep the one the rest of the host uses.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(IPTABLES_OPTS, group="iptables")
