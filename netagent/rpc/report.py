"""Agent registration and liveness: ``report_state`` every ``report_interval`` (§3).

The reporter runs in a thread of its own so that a slow device pass never makes the
server declare the agent dead. It also is the source's view of the server's health: the
first failure logs that the agent waits for the server, and the first success after
failures (or a ``revived`` reply) asks for a full resync, because notifications cast
while the agent or the broker was away are lost.
"""

from __future__ import annotations

import datetime
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from oslo_config import cfg

from netagent.common import constants
from netagent.rpc.clients import StateReportApi

LOG = logging.getLogger(__name__)

#: Versions of Neutron 29's own objects (§4.5): the server then pushes nothing extra.
RESOURCE_VERSIONS = {
    "Port": "1.11",
    "Network": "1.3",
    "Subnet": "1.2",
    "SecurityGroup": "1.6",
    "SecurityGroupRule": "1.3",
    "AddressGroup": "1.2",
}

REVIVED = "revived"


def interface_mappings(mappings: list[str]) -> dict[str, str]:
    """``["physnet1:eth1", ...]`` → ``{"physnet1": "eth1"}`` (malformed items skipped)."""
    result: dict[str, str] = {}
    for item in mappings:
        physnet, sep, interface = item.partition(":")
        if sep and physnet.strip() and interface.strip():
            result[physnet.strip()] = interface.strip()
    return result


def tunnel_ip(conf: cfg.ConfigOpts) -> Any:
    """The VXLAN endpoint of the configured L2 driver (``[ovs]`` or ``[linuxbridge]``)."""
    if conf.agent.l2_driver == "openvswitch":
        return conf.ovs.local_ip
    return conf.linuxbridge.local_ip


def build_agent_state(
    conf: cfg.ConfigOpts, devices: int, agent_uuid: str, start_flag: bool
) -> dict[str, Any]:
    """The inner ``agent_state`` dict of a report (§3).

    :param devices: the number of local devices the agent handles.
    :param start_flag: first report since start: adds ``start_flag`` and
        ``resource_versions``.
    """
    local_ip = tunnel_ip(conf)
    ovs = conf.agent.l2_driver == "openvswitch"
    configurations: dict[str, Any] = {
        "interface_mappings": (
            {} if ovs else interface_mappings(conf.linuxbridge.physical_interface_mappings)
        ),
        "bridge_mappings": interface_mappings(conf.ovs.bridge_mappings) if ovs else {},
        "tunnel_types": ["vxlan"] if local_ip else [],
        "l2_population": conf.neutron.l2_population,
        "devices": devices,
        "extensions": [],
        # read by netagent's ML2 driver to set vif_details port_filter
        "firewall_driver": conf.agent.firewall_driver,
        # read by netagent's ML2 driver to choose vif_type tap or ovs
        "l2_driver": conf.agent.l2_driver,
    }
    if ovs:
        configurations["integration_bridge"] = conf.ovs.integration_bridge
        configurations["datapath_type"] = conf.ovs.datapath_type
    if local_ip:
        configurations["tunneling_ip"] = local_ip
    state: dict[str, Any] = {
        "binary": constants.AGENT_BINARY,
        "host": conf.host,
        "topic": "N/A",
        "agent_type": conf.neutron.agent_type,
        "availability_zone": conf.neutron.availability_zone,
        "configurations": configurations,
        "uuid": agent_uuid,
    }
    if start_flag:
        state["start_flag"] = True
        state["resource_versions"] = dict(RESOURCE_VERSIONS)
    return state


#: The L3 identity (§6.1): the server's scheduler and sync look agents up by this type.
L3_AGENT_TYPE = "L3 agent"
L3_AGENT_BINARY = "neutron-l3-agent"
L3_AGENT_TOPIC = "l3_agent"


def build_l3_agent_state(
    conf: cfg.ConfigOpts, counts: dict[str, int], agent_uuid: str, start_flag: bool
) -> dict[str, Any]:
    """The inner ``agent_state`` of the host's "L3 agent" identity (§6.1).

    :param counts: ``routers``, ``ex_gw_ports``, ``interfaces``, ``floating_ips``.
    """
    configurations: dict[str, Any] = {
        "agent_mode": "legacy",
        "handle_internal_only_routers": True,
        "interface_driver": "netagent",
        "extensions": [],
        **counts,
    }
    state: dict[str, Any] = {
        "binary": L3_AGENT_BINARY,
        "host": conf.host,
        "topic": L3_AGENT_TOPIC,
        "agent_type": L3_AGENT_TYPE,
        "availability_zone": conf.neutron.availability_zone,
        "configurations": configurations,
        "uuid": agent_uuid,
    }
    if start_flag:
        state["start_flag"] = True
    return state


def utc_time() -> str:
    """The report's ``time``: UTC, ``%Y-%m-%dT%H:%M:%S.%f``."""
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


class StateReporter:
    """Sends the state reports and tracks whether the server answers.

    :param api: the ``q-reports-plugin`` client.
    :param conf: the agent's configuration.
    :param device_count: returns the current number of local devices.
    :param resync: called with a reason when a full resync is needed.
    :param server_desc: the transport, for the "waiting for neutron-server" line.
    :param build_state: ``(uuid, start_flag) -> agent_state`` of another identity of
        the host (the L3 agent); default: the L2 identity.
    """

    def __init__(
        self,
        api: StateReportApi,
        conf: cfg.ConfigOpts,
        device_count: Callable[[], int],
        resync: Callable[[str], None],
        server_desc: str = "",
        *,
        build_state: Callable[[str, bool], dict[str, Any]] | None = None,
    ) -> None:
        self.api = api
        self.build_state = build_state
        self.conf = conf
        self.device_count = device_count
        self.resync = resync
        self.server_desc = server_desc
        self.uuid = str(uuid.uuid4())
        self.start_flag = True
        self.failures = 0
        self.reports = 0
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ignored_logged = False

    def report_once(self) -> str | None:
        """Send one report; never raises.

        :returns: the server's answer, or ``None`` on failure or an ignored report.
        """
        if self.build_state is not None:
            state = self.build_state(self.uuid, self.start_flag)
        else:
            state = build_agent_state(self.conf, self.device_count(), self.uuid, self.start_flag)
        try:
            reply = self.api.report_state(state, utc_time())
        except Exception as exc:  # MessagingException, RemoteError, anything: count it
            self._failed(exc)
            return None
        self.reports += 1
        if self.failures:
            LOG.info(
                "neutron-server answers again after %d failed state reports: full resync",
                self.failures,
            )
            self.resync("server reachable again")
        elif not self.connected.is_set():
            LOG.info(
                "Registered with neutron-server as %r on host %s (%s)",
                state["agent_type"],
                state["host"],
                reply,
            )
        self.failures = 0
        self.connected.set()
        if reply is None:
            # The server drops reports older than its own start (§3): keep the start flag.
            if not self._ignored_logged:
                LOG.warning(
                    "neutron-server ignored a state report (clock skew, or the "
                    "server restarted); sending the next one as usual"
                )
                self._ignored_logged = True
            return None
        self.start_flag = False
        if reply == REVIVED:
            LOG.info("neutron-server considers this agent revived: full resync")
            self.resync("agent revived")
        return str(reply)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.connected.clear()
        if self.failures == 1:
            if self.reports == 0:
                LOG.warning(
                    "Waiting for neutron-server on %s ... (%s: %s)",
                    self.server_desc,
                    type(exc).__name__,
                    exc,
                )
            else:
                LOG.warning(
                    "State report to neutron-server on %s failed (%s: %s); retrying",
                    self.server_desc,
                    type(exc).__name__,
                    exc,
                )
        else:
            LOG.debug("State report failed again (%d in a row): %s", self.failures, exc)

    def start(self) -> None:
        """Report now and then every ``report_interval`` from a daemon thread."""
        name = "state-report" if self.build_state is None else "state-report-l3"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reporting. Idempotent; a report in flight finishes on its own."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def _run(self) -> None:
        interval = float(self.conf.neutron.report_interval)
        while not self._stop.is_set():
            try:
                self.report_once()
            except Exception:  # never let the liveness thread die
                LOG.exception("State report failed unexpectedly")
            # After a failure retry sooner, so that a server coming back is noticed early.
            wait = interval if self.failures == 0 else min(interval, 5.0)
            self._stop.wait(wait)
