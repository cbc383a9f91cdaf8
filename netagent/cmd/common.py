"""Start-up shared by the console scripts: options, logging."""

from __future__ import annotations

from collections.abc import Sequence

from oslo_config import cfg
from oslo_log import log as logging

from netagent import conf as netagent_conf


def setup(argv: Sequence[str] | None, description: str) -> cfg.ConfigOpts:
    """Parse the command line and config files into a fresh ConfigOpts, set up oslo.log.

    :raises cfg.Error: bad option values or unreadable config files.
    """
    conf = cfg.ConfigOpts()
    netagent_conf.register_all(conf)
    logging.register_options(conf)
    conf(
        args=list(argv) if argv is not None else None,
        project="netagent",
        description=description,
    )
    logging.setup(conf, "netagent")
    return conf
