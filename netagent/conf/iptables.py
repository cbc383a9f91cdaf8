"""Options of the iptables manager and the iptables firewall driver."""

from __future__ import annotations

from oslo_config import cfg

IPTABLES_OPTS = [
    cfg.StrOpt(
        "backend",
        default="auto",
        choices=[
            (
                "auto",
                "Decided once at start and recorded in state_path: the backend holding "
                "netagent's chains; else the recorded one; else the one holding the host's "
                "other rules; else what the iptables command runs. Never changes under "
                "existing netagent rules (doc/iptables.md, 'Backend').",
            ),
            ("nft", "iptables-nft-restore / ip6tables-nft-restore."),
            ("legacy", "iptables-legacy-restore / ip6tables-legacy-restore."),
        ],
        help="Which iptables backend to program. Mixing backends on one host splits the "
        "ruleset in two; keep the one the rest of the host uses.",
    ),
    cfg.FloatOpt(
        "verify_interval",
        default=60.0,
        min=0.0,
        help="Seconds between checks that netagent's chains in the kernel still match what "
        "it wrote (one iptables-save per table; damaged chains are rewritten on the next "
        "apply). 0 checks before every apply, which costs time on large rule sets.",
    ),
    cfg.FloatOpt(
        "integrity_interval",
        default=2.0,
        min=0.0,
        help="Seconds between integrity checks of the firewall and of the L2 driver: every "
        "netagent iptables, ip6tables and ebtables chain and hook and every ipset in the "
        "kernel is compared with what netagent last applied (one save per table, one "
        "ipset save), and so are the bridges, uplinks, taps and VXLAN forwarding entries "
        "of the networks and ports it wired (one link dump, one entry dump per VXLAN "
        "network); what someone else changed is rewritten or wired again with a warning "
        "naming it. Also done at the start of every pass. 0 disables the timer (the checks "
        "at the start of passes stay).",
    ),
    cfg.IntOpt(
        "firewall_mark",
        default=0x1000000,
        min=1,
        max=0x80000000,
        help="The one packet-mark bit (a power of two) the iptables firewall driver uses "
        "while a packet walks a port's security-group chains (set when a group rule "
        "matches, cleared before the packet leaves netagent's chains). Change it only if "
        "other software on the host uses this bit of the mark.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(IPTABLES_OPTS, group="iptables")
