"""The agent process: source, core and drivers wired together, and signal handling.

This first version reads and validates the desired state, logs the plan for this host and
waits for SIGTERM/SIGINT; the reconciler (netagent.agent.core) replaces the wait.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from oslo_config import cfg

from netagent.drivers import base

LOG = logging.getLogger(__name__)


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set ``stop``; the data plane is left exactly as it is."""

    def handler(signum: int, frame: FrameType | None) -> None:
        LOG.info("Received %s: stopping, data plane left as it is", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run(
    conf: cfg.ConfigOpts,
    l2: base.L2Driver,
    firewall: base.FirewallDriver,
    l3: base.L3Driver,
) -> int:
    """Run until a stop signal. :returns: the process exit code."""
    from netagent.sources import statefile  # noqa: PLC0415

    stop = threading.Event()
    install_stop_handlers(stop)
    result = statefile.load_state(conf.file_source.path)
    for error in result.errors:
        LOG.error("Skipping invalid object: %s", error)
    state = result.state.for_host(conf.host)
    LOG.info(
        "Plan for host %s: %d networks, %d ports, %d security groups, %d routers "
        "(drivers: l2=%s firewall=%s l3=%s)",
        conf.host,
        len(state.networks),
        len(state.ports),
        len(state.security_groups),
        len(state.routers),
        conf.agent.l2_driver,
        conf.agent.firewall_driver,
        conf.agent.l3_driver,
    )
    for port in state.ports.values():
        LOG.info("Port %s: device %s on network %s", port.id, port.device_name, port.network_id)
    while not stop.wait(3600):
        pass
    return 0
