"""Start-up shared by the console scripts: options, logging."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from oslo_config import cfg
from oslo_log import log as logging

from netagent import conf as netagent_conf
from netagent.conf.opts import list_opts


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
    _validate_all(conf)
    logging.setup(conf, "netagent")
    return conf


def setup_or_report(
    argv: Sequence[str] | None, prog: str, description: str
) -> cfg.ConfigOpts | None:
    """:func:`setup`, or ``None`` after printing ``<prog>: configuration error: ...``."""
    try:
        return setup(argv, description)
    except cfg.Error as exc:
        print(f"{prog}: configuration error: {exc}", file=sys.stderr)
        return None


def _validate_all(conf: cfg.ConfigOpts) -> None:
    """oslo.config checks types and choices on first access: touch every netagent option
    now, so a bad value fails the start instead of some later code path."""
    for group, opts in list_opts():
        section = conf if group == "DEFAULT" else conf[group]
        for opt in opts:
            section[opt.dest]
