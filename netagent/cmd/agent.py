"""``netagent-agent``: the daemon."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from oslo_config import cfg

from netagent.agent.lock import AgentLockHeldError
from netagent.cmd import common
from netagent.common.exceptions import NetagentError
from netagent.drivers import base, loader

LOG = logging.getLogger(__name__)


def load_drivers(conf: cfg.ConfigOpts) -> tuple[base.L2Driver, base.FirewallDriver, base.L3Driver]:
    """Load the three configured drivers (the L3 driver's router ports reach the L2
    driver through its host plug); nothing on the host is touched.

    :raises loader.DriverLoadError: with the list of valid names.
    """
    l2 = loader.load(base.L2Driver, conf.agent.l2_driver, conf)
    firewall = loader.load(base.FirewallDriver, conf.agent.firewall_driver, conf)
    l3 = loader.load(base.L3Driver, conf.agent.l3_driver, conf)
    l3.use_host_plug(l2.host_plug())
    return l2, firewall, l3


def _check_broker(conf: cfg.ConfigOpts) -> str:
    # oslo.messaging is imported only when the broker is checked (the neutron source):
    # it takes a fifth of a second, a standalone agent never needs it
    from netagent.rpc import transport  # noqa: PLC0415

    return transport.check_broker(conf)


def preflight_passed(conf: cfg.ConfigOpts) -> bool:
    """Run ``netagent-check``'s checks; log each failure. False: do not start."""
    from netagent.agent import preflight  # noqa: PLC0415

    passed = True
    for result in preflight.run(conf, _check_broker, at_start=True):
        if result.ok:
            LOG.debug("Preflight %s", result.line())
        elif result.required:
            LOG.error("Preflight %s: not starting", result.line())
            print(f"netagent-agent: preflight {result.line()}", file=sys.stderr)
            passed = False
        else:
            LOG.warning("Preflight %s", result.line())
    return passed


def main(argv: Sequence[str] | None = None) -> int:
    conf = common.setup_or_report(argv, "netagent-agent", "netagent network agent")
    if conf is None:
        return 2
    try:
        drivers = load_drivers(conf)
    except loader.DriverLoadError as exc:
        LOG.error("%s", exc)
        print(f"netagent-agent: {exc}", file=sys.stderr)
        return 2
    if not preflight_passed(conf):
        return 1
    from netagent.agent import service  # noqa: PLC0415 - after drivers, to fail fast

    try:
        return service.run(conf, *drivers)
    except AgentLockHeldError as exc:
        LOG.error("netagent-agent not starting: %s", exc)
        print(f"netagent-agent: not starting: {exc}", file=sys.stderr)
        return 1
    except NetagentError as exc:
        LOG.error("netagent-agent stopped: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
