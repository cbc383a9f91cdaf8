"""oslo.config option lists. Nothing registers at import time: ``cmd/`` calls
:func:`netagent.conf.register_all`."""

from __future__ import annotations

from oslo_config import cfg

from netagent.conf import agent, file_source, iptables, linuxbridge, neutron, ovs


def register_all(conf: cfg.ConfigOpts) -> None:
    """Register every netagent option on ``conf``."""
    agent.register_opts(conf)
    file_source.register_opts(conf)
    linuxbridge.register_opts(conf)
    iptables.register_opts(conf)
    neutron.register_opts(conf)
    ovs.register_opts(conf)
