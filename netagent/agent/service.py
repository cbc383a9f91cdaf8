"""The agent process: source, device monitor, reconciler, status server and signals.

Start order matters for restart safety: the agent lock (``<state_path>/agent.lock``) is
taken first and held for the process's life (a second agent, or one started while
``netagent-cleanup`` runs, stops here, before touching anything), then the status socket is
claimed, then the reconciler's worker starts idle, the device monitor takes its initial
dump, and only then does the source deliver its first complete snapshot, which triggers
the first (full) pass.

SIGTERM and SIGINT stop the agent and leave the data plane exactly as it is; SIGHUP asks
for a full resync.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

from oslo_config import cfg

from netagent.agent import metrics, status
from netagent.agent.core import Reconciler
from netagent.agent.devices import DeviceMonitor
from netagent.agent.lock import AgentLock
from netagent.agent.source import Source
from netagent.common import constants
from netagent.common.exceptions import NetagentError
from netagent.drivers import base

LOG = logging.getLogger(__name__)


#: Seconds a stop may take before the process exits anyway (systemd's stop timeout is 15 s).
STOP_DEADLINE = 10.0


def install_stop_handlers(stop: threading.Event, deadline: float = STOP_DEADLINE) -> None:
    """SIGTERM and SIGINT set ``stop``; the data plane is left exactly as it is.

    A part may block the orderly stop, e.g. a source still connecting to a broker that is
    down. Nothing the agent leaves behind needs an orderly stop (the kernel keeps the
    data plane and the next start adopts it), so ``deadline`` seconds after the first
    signal, or at a second one, the process exits with status 0 anyway.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            _exit_now(f"second {name}")
        LOG.info("Received %s: stopping, data plane left as it is", name)
        stop.set()
        timer = threading.Timer(deadline, _exit_now, args=(f"stop took over {deadline:g} s",))
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _exit_now(why: str) -> None:
    LOG.warning("%s: exiting now; the data plane is left as it is", why)
    logging.shutdown()
    os._exit(0)


def install_resync_handler(reconciler: Reconciler, source: Source) -> None:
    """SIGHUP makes the source fetch the whole desired state again (the state file is
    read even if unchanged) and requests a full resync of the host."""

    def handler(signum: int, frame: FrameType | None) -> None:
        source.reread("SIGHUP")
        reconciler.request_full_resync("SIGHUP")

    signal.signal(signal.SIGHUP, handler)


def make_source(conf: cfg.ConfigOpts, reconciler: Reconciler) -> Source:
    """The configured desired-state source.

    The neutron source reads the reconciler's status to learn which ports are wired, so
    that it can report them up to the server.

    :raises NetagentError: the source is not available.
    """
    if conf.agent.source == "file":
        from netagent.sources.file import FileSource  # noqa: PLC0415

        return FileSource(conf.file_source.path, conf.file_source.poll_interval)
    if conf.agent.source == "neutron":
        from netagent.sources.neutron import NeutronSource  # noqa: PLC0415

        return NeutronSource(conf, status_provider=reconciler.status)
    raise NetagentError(f"the {conf.agent.source!r} source is not available in this build")


def make_device_monitor() -> DeviceMonitor:
    """The netlink monitor of tap devices in the agent's own namespace."""
    from netagent.linux.link_monitor import LinkMonitor  # noqa: PLC0415

    return LinkMonitor(name_filter=lambda name: name.startswith(constants.TAP_PREFIX))


def make_metrics_server(listen: str, reconciler: Reconciler) -> metrics.MetricsServer | None:
    """The Prometheus endpoint on ``<address>:<port>``, started; ``None`` when disabled.

    :raises NetagentError: the value is not ``<address>:<port>`` or cannot be bound.
    """
    if not listen:
        return None
    address, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise NetagentError(f"[agent] metrics_listen must be <address>:<port>, got {listen!r}")
    try:
        server = metrics.MetricsServer(address.strip("[]"), int(port), reconciler.status)
    except OSError as exc:
        raise NetagentError(f"cannot serve metrics on {listen}: {exc}") from exc
    server.start()
    return server


def make_reconciler(
    conf: cfg.ConfigOpts, l2: base.L2Driver, firewall: base.FirewallDriver, l3: base.L3Driver
) -> Reconciler:
    """A reconciler configured from ``[DEFAULT]`` and ``[agent]``."""
    return Reconciler(
        conf.host,
        l2,
        firewall,
        l3,
        resync_interval=float(conf.agent.resync_interval),
        retry_initial=conf.agent.retry_initial_delay,
        retry_max=conf.agent.retry_max_delay,
        failures_before_resync=conf.agent.failures_before_resync,
        integrity_interval=float(conf.iptables.integrity_interval),
    )


def run(
    conf: cfg.ConfigOpts,
    l2: base.L2Driver,
    firewall: base.FirewallDriver,
    l3: base.L3Driver,
) -> int:
    """Run until a stop signal.

    :returns: the process exit code (0 after SIGTERM/SIGINT).
    :raises NetagentError: the agent cannot start (another agent or a cleanup holds the
        lock, socket in use, no source, no netlink).
    """
    with AgentLock(conf.state_path) as lock:
        LOG.info("Holding %s", lock.path)
        return _run_locked(conf, l2, firewall, l3)


def _run_locked(
    conf: cfg.ConfigOpts,
    l2: base.L2Driver,
    firewall: base.FirewallDriver,
    l3: base.L3Driver,
) -> int:
    stop = threading.Event()
    install_stop_handlers(stop)
    reconciler = make_reconciler(conf, l2, firewall, l3)
    source = make_source(conf, reconciler)
    install_resync_handler(reconciler, source)
    monitor = make_device_monitor()
    server = status.StatusServer(status.socket_path(conf.state_path), reconciler.status)
    server.start()
    metrics_server = make_metrics_server(conf.agent.metrics_listen, reconciler)
    LOG.info(
        "netagent-agent starting on host %s (source=%s, l2=%s, firewall=%s, l3=%s)",
        conf.host,
        conf.agent.source,
        conf.agent.l2_driver,
        conf.agent.firewall_driver,
        conf.agent.l3_driver,
    )
    try:
        l2.watch_ports(reconciler.on_port_changed)
        reconciler.start()
        reconciler.set_devices(monitor.start(reconciler.on_device))
        source.start(reconciler.on_update)
        while not stop.wait(1.0):
            pass
    finally:
        source.stop()
        monitor.stop()
        reconciler.stop()
        server.stop()
        if metrics_server is not None:
            metrics_server.stop()
    LOG.info("netagent-agent stopped")
    return 0
