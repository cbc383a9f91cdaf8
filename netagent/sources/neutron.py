"""The Neutron source (``[agent] source = neutron``): desired state from neutron-server.

*How.* Inputs only mark: the tap monitor marks devices that appeared, RPC notifications
mark ports, networks, security groups and tunnels, the state reporter asks for a full
resync after an outage or a ``revived`` answer, and so does the consumer probe
(:mod:`netagent.rpc.probe`) once the agent's consumers answer again after a broker
outage. One worker thread takes the marks and makes a pass: device details in bulk for
the marked taps (by port-id prefix, chunks of ``rpc_resources_processing_step``),
security-group info for the ports that need it,
``tunnel_sync`` when asked, then a complete :class:`DesiredState` for the core. Once
the core reports a port converged, the worker tells the server with
``update_device_list`` (devices up, down, and the ones the server failed on, next pass).

*Why.* The server only tells an agent about a port when asked about its device, and
casts may arrive out of order or get lost while the broker is away; a pass always asks
for current details, and every doubt (failed calls, a broken connection, a revived agent)
ends in a full pass that asks again about everything. The core's applied-state record
keeps a full pass from touching ports that did not change.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import oslo_messaging
from oslo_config import cfg

from netagent.agent.source import SourceUpdate, UpdateCallback
from netagent.common import constants
from netagent.model import DesiredState, ModelError, SecurityGroupInfo
from netagent.model import validate as v
from netagent.rpc import clients, consumers, probe, replies, report, view
from netagent.rpc import marks as rpc_marks
from netagent.rpc import transport as rpc_transport

LOG = logging.getLogger(__name__)

#: Errors that fail a pass (it is retried with backoff); anything else is a bug, logged.
RPC_ERRORS = (oslo_messaging.MessagingException, replies.BadReplyError)
#: At most this many router ids per ``sync_routers`` call (§6.2, as Neutron's agent).
SYNC_ROUTERS_CHUNK = 256
#: ``status_provider`` returns the core's status document (``ports``: id, converged...).
StatusProvider = Callable[[], Mapping[str, Any]]


def chunks(items: Sequence[str], size: int) -> list[list[str]]:
    """Split ``items`` into lists of at most ``size`` (sorted input gives stable calls)."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


class NeutronSource(rpc_marks.Marks):
    """Implements the core's ``Source`` protocol over the Neutron agent RPC protocol.

    :param conf: the agent's configuration (``[neutron]``, ``[linuxbridge]``, host).
    :param transport: an oslo.messaging transport; built from ``conf`` when ``None``.
    :param monitor: tap device monitor (``start(callback) -> {name: ifindex}``,
        ``stop()``); the link monitor of the agent's namespace when ``None``.
    :param status_provider: the core's status (``Reconciler.status``); ports it shows
        converged are reported up. Without one, :meth:`ports_converged` must be called.
    """

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        transport: Any = None,
        monitor: Any = None,
        status_provider: StatusProvider | None = None,
    ) -> None:
        super().__init__()
        self.conf = conf
        self.host: str = conf.host
        self.agent_id = f"netagent-{self.host}"
        self.step: int = conf.neutron.rpc_resources_processing_step
        self._transport = transport
        self._owns_transport = transport is None
        self._monitor = monitor
        self._status_provider = status_provider
        local_ip = report.tunnel_ip(conf)
        self.view = view.NeutronView(
            host=self.host,
            local_ip=v.ip_address(local_ip) if local_ip else None,
            l2_population=conf.neutron.l2_population,
        )
        #: casts through the agent's own consumers; asks for a full pass after an outage
        self.probe: probe.ConsumerProbe | None = None
        self._callback: UpdateCallback | None = None
        self._delivered: DesiredState | None = None
        #: ``origin`` of the last snapshot handed to the core; the core's status document
        #: carries the origin of the snapshot it describes.
        self._delivered_origin = ""
        self._deliveries = 0
        self._errors: dict[str, str] = {}
        self._failures = 0
        self._thread: threading.Thread | None = None
        self.plugin: clients.PluginApi | None = None
        self.sg: clients.SecurityGroupServerApi | None = None
        self.reporter: report.StateReporter | None = None
        self.consumers: consumers.Consumers | None = None
        self.passes = 0
        #: the L3 identity (§6) runs when this host builds routers
        self.l3_enabled = conf.agent.l3_driver != "noop"
        self.l3: clients.L3PluginApi | None = None
        self.l3_reporter: report.StateReporter | None = None
        self._router_errors: dict[str, str] = {}
        #: router id -> the floating IP statuses last reported for it
        self._fip_reported: dict[str, dict[str, str]] = {}

    # -- Source protocol ----------------------------------------------------------------

    def start(self, callback: UpdateCallback) -> None:
        """Connect, register, start consumers, the tap monitor and the worker."""
        self._callback = callback
        if self._transport is None:
            self._transport = rpc_transport.build_transport(self.conf)
        transport = self._transport
        timeout = None  # [DEFAULT] rpc_response_timeout
        max_timeout = float(self.conf.neutron.rpc_response_max_timeout)
        self.plugin = clients.PluginApi(transport, timeout, max_timeout)
        self.sg = clients.SecurityGroupServerApi(transport, timeout, max_timeout)
        try:
            desc = rpc_transport.describe_url(self.conf.transport_url)
        except cfg.NoSuchOptError:  # transport built elsewhere on another config
            desc = "<transport>"
        self.reporter = report.StateReporter(
            clients.StateReportApi(transport, float(self.conf.neutron.report_interval)),
            self.conf,
            self.device_count,
            self.request_full,
            desc,
        )
        if self.l3_enabled:
            self.l3 = clients.L3PluginApi(transport, timeout, max_timeout)
            self.l3_reporter = report.StateReporter(
                clients.StateReportApi(transport, float(self.conf.neutron.report_interval)),
                self.conf,
                self.device_count,
                self.request_full,
                desc,
                build_state=self._l3_agent_state,
            )
        LOG.info("Neutron source for host %s on %s", self.host, desc)
        self.consumers = consumers.Consumers(transport, self.host, self, l3=self.l3_enabled)
        self.consumers.start()
        self.probe = probe.ConsumerProbe(
            transport,
            self.host,
            self.consumers.topics,
            float(self.conf.neutron.probe_interval),
            self.request_full,
        )
        self.probe.start()
        self.reporter.start()
        if self.l3_reporter is not None:
            self.l3_reporter.start()
        if self._monitor is None:
            from netagent.linux.link_monitor import LinkMonitor  # noqa: PLC0415

            self._monitor = LinkMonitor(name_filter=self.is_tap)
        present = self._monitor.start(self.device_event)
        for name in present:
            self.device_event(name, present[name])
        self.request_full("start")
        self._thread = threading.Thread(target=self._run, name="neutron-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop everything this source started. Idempotent; the host is left alone."""
        self.stop_marks()
        for part in (self._monitor, self.probe, self.reporter, self.l3_reporter, self.consumers):
            if part is not None:
                part.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._owns_transport and self._transport is not None:
            self._transport.cleanup()
            self._transport = None

    def reread(self, reason: str) -> None:
        """The next pass fetches every device from the server (a full pass)."""
        self.request_full(reason)

    # -- worker -------------------------------------------------------------------------

    def _run(self) -> None:
        delay = float(self.conf.neutron.retry_interval)
        resync = float(self.conf.agent.resync_interval)
        last_full = time.monotonic()
        while not self.stopped:
            if self._server_unreachable():
                self._wait_for_server()
                continue
            marks = self.take(timeout=self._wait_time())
            if marks is None:
                return
            if resync > 0 and time.monotonic() - last_full >= resync:
                marks = marks.with_full("periodic")
            if marks.full:
                last_full = time.monotonic()
            try:
                self.run_pass(marks)
            except RPC_ERRORS as exc:
                self._pass_failed(marks, exc)
                wait = min(delay * 2 ** (self._failures - 1), self.conf.neutron.report_interval)
                self.sleep(wait * random.uniform(0.8, 1.2))  # noqa: S311 - jitter
            except Exception:
                LOG.exception("Unexpected error in the Neutron source; retrying everything")
                self.restore(marks)
                self.request_full("unexpected error")
                self.sleep(delay)

    def _server_unreachable(self) -> bool:
        """The state reporter's last report failed: the server (or broker) is away."""
        reporter = self.reporter
        return reporter is not None and reporter.failures > 0 and not reporter.connected.is_set()

    def _wait_for_server(self) -> None:
        """Pause passes until a state report gets through again.

        Calls made meanwhile would only time out, and each timeout doubles the method's
        timeout (up to ``rpc_response_max_timeout``): once the server is back, the pass in
        flight would then wait minutes for a reply that was lost. The reporter probes the
        server every few seconds and asks for a full pass when it answers again.
        """
        LOG.info("Device passes paused until neutron-server answers state reports")
        while not self.stopped and self._server_unreachable():
            self.sleep(0.5)
        if not self.stopped:
            LOG.info("neutron-server answers: device passes resume")

    def _wait_time(self) -> float | None:
        if (self.awaiting_up() or self._fips_unreported()) and self._status_provider is not None:
            return 0.2
        resync = float(self.conf.agent.resync_interval)
        return resync if resync > 0 else None  # wakes up for the periodic full pass

    def _pass_failed(self, marks: rpc_marks.Taken, exc: Exception) -> None:
        self._failures += 1
        self.restore(marks)
        if self.probe is not None:
            self.probe.note_broken("a failed pass")
        LOG.warning(
            "Neutron source pass failed (%d in a row): %s: %s",
            self._failures,
            type(exc).__name__,
            exc,
        )
        if self._failures % self.conf.neutron.resync_after_failures == 0:
            self.request_full(f"{self._failures} failed passes")

    def run_pass(self, marks: rpc_marks.Taken) -> None:
        """One pass over what ``marks`` says (worker thread; public for tests).

        :raises oslo_messaging.MessagingException: a call failed; nothing was lost, the
            caller restores the marks.
        :raises replies.BadReplyError: a reply had the wrong overall shape.
        """
        assert self.plugin is not None
        if marks.full:
            LOG.info("Neutron source full resync (%s)", "; ".join(marks.reasons))
        devices = self.devices()
        prefixes = {prefix: name for name, prefix in devices.items()}
        vanished = [pid for pid in self.view.details if pid[:11] not in prefixes]
        for port_id in vanished:
            self.view.forget_port(port_id)
            self.queue_down([port_id])
        fetch = self._devices_to_fetch(marks, prefixes)
        fetched = self._fetch_details(sorted(fetch)) if fetch else set()
        sg_ports = set(fetched) | self.view.ports_affected_by(marks.groups)
        if marks.full or (marks.groups and not sg_ports):
            sg_ports |= set(self.view.details) if marks.full else set()
        sg_ports &= set(self.view.details)
        if sg_ports:
            self._fetch_sg_info(sorted(sg_ports))
        if self.view.local_ip is not None and marks.full:
            # only at start and on full resyncs, as Neutron's own agents do: each call
            # makes the server cast tunnel_update to every agent
            reply = self.plugin.tunnel_sync(str(self.view.local_ip), "vxlan", self.host)
            self.view.tunnels = replies.parse_tunnels(reply)
        for operation, tunnel_ip, tunnel_type in marks.tunnel_events:
            endpoint = replies.parse_tunnel_event(tunnel_ip, tunnel_type)
            if endpoint is not None and endpoint != self.view.local_ip:
                self.view.apply_tunnel_event(operation, endpoint)
        for operation, entries in marks.fdb:
            for change in replies.parse_fdb(operation, entries):
                self.view.apply_fdb(*change)
        self._deliver(marks.full)
        self.expect_up(p for p in fetched if p in self._delivered_ports())
        self._report_outcome()
        # Routers after the ports: a failing L3 call fails the pass (its marks come back)
        # but does not hold back the ports' delivery and reports.
        self._sync_routers(marks)
        self._deliver(False)
        self._report_floating_ips()
        self._failures = 0
        self.passes += 1

    def _devices_to_fetch(self, marks: rpc_marks.Taken, prefixes: Mapping[str, str]) -> set[str]:
        known = {pid[:11] for pid in self.view.details}
        if marks.full:
            return set(prefixes)
        wanted = {p for p in prefixes if p not in known and p not in self.unbound}
        wanted |= {pid[:11] for pid in marks.ports if pid[:11] in prefixes}
        wanted |= {
            pid[:11]
            for pid, details in self.view.details.items()
            if details.network is not None and details.network.id in marks.networks
        }
        return wanted | (marks.devices & set(prefixes))

    def _fetch_details(self, devices: list[str]) -> set[str]:
        """Fetch details in chunks; returns the port ids fetched successfully."""
        assert self.plugin is not None
        fetched: set[str] = set()
        for chunk in chunks(devices, self.step):
            reply = self.plugin.get_devices_details_list_and_failed_devices(
                chunk, self.agent_id, self.host
            )
            parsed = replies.parse_details(reply, chunk, self.host)
            for text in parsed.unattributed:
                self.log_once(text, "Ignoring a details entry: %s", text)
            for device, details in parsed.details.items():
                assert details.port is not None
                self.view.details[details.port.id] = details
                self.unbound.discard(device)
                self._errors.pop(device, None)
                fetched.add(details.port.id)
            for device in parsed.unbound:
                self.unbound.add(device)
                for port_id in [p for p in self.view.details if p.startswith(device)]:
                    self.view.forget_port(port_id)
            for device, error in parsed.malformed.items():
                self._port_failed(device, error)
            if parsed.failed:
                LOG.info("Server failed details of %s; retrying next pass", sorted(parsed.failed))
                self.mark_devices(parsed.failed)
        return fetched

    def _fetch_sg_info(self, port_ids: list[str]) -> None:
        assert self.sg is not None
        for chunk in chunks(port_ids, self.step):
            info = SecurityGroupInfo.from_rpc(self.sg.security_group_info_for_devices(chunk))
            bad_ports = {e.object_id for e in info.errors if e.kind == "port"}
            bad_groups = {e.object_id for e in info.errors if e.kind == "security_group"}
            for error in info.errors:
                if error.kind not in ("port", "security_group"):
                    self.log_once(str(error), "Ignoring bad security group data: %s", error)
            for port_id, port in info.devices.items():
                if bad_groups & set(port.security_groups):
                    bad_ports.add(port_id)
            for error in info.errors:
                if error.kind == "security_group":
                    self.log_once(str(error), "Bad security group: %s", error)
            for port_id in chunk:
                if port_id in bad_ports:
                    reason = next((e for e in info.errors if e.object_id == port_id), None)
                    self._port_failed(port_id, reason or f"security group data of port {port_id}")
            info_ok = [p for p in chunk if p not in bad_ports]
            self.view.merge_sg_info(info, info_ok)

    def _port_failed(self, device: str, error: ModelError | str) -> None:
        """A malformed entry: drop the port, report it down once, keep going."""
        text = str(error)
        self.log_once(f"{device}:{text}", "Port %s skipped, reported down: %s", device, text)
        self._errors[device] = text
        for port_id in [p for p in self.view.details if p.startswith(device)]:
            self.view.forget_port(port_id)
        self.queue_down([device])

    # -- routers (the L3 identity) -----------------------------------------------------

    def _sync_routers(self, marks: rpc_marks.Taken) -> None:
        """Fetch the routers the marks name (all scheduled ones on a full pass); routers
        the server no longer returns for this host are dropped (§6.2)."""
        if self.l3 is None:
            return
        fetch = set(marks.routers) | set(marks.routers_gone)
        # network_update (an MTU change): sync_routers carries each router port's MTU, so
        # the routers with a port on the network are fetched again (as Neutron's L3 agent
        # does); the driver then sets it on both ends of those ports
        fetch |= {
            router_id
            for router_id, router in self.view.routers.items()
            if any(p.network_id in marks.networks for p in router.ports)
        }
        if marks.full:
            scheduled = set(replies.parse_router_ids(self.l3.get_router_ids(self.host)))
            for router_id in set(self.view.routers) - scheduled:
                self._drop_router(router_id, "no longer scheduled to this host")
            fetch |= scheduled
        for chunk in chunks(sorted(fetch), SYNC_ROUTERS_CHUNK):
            parsed = replies.parse_routers(self.l3.sync_routers(self.host, chunk), chunk)
            for router_id, router in parsed.routers.items():
                if self.view.routers.get(router_id) != router:
                    LOG.info("Router %s from neutron-server", router_id)
                    # its floating IP statuses are due once the core has applied it
                    self._fip_reported.pop(router_id, None)
                self.view.routers[router_id] = router
                self._router_errors.pop(router_id, None)
            for key, why in parsed.skipped.items():
                self.log_once(f"router {key}: {why}", "Router %s skipped: %s", key, why)
                if key in fetch:
                    self._router_errors[key] = why
            for router_id in set(chunk) - set(parsed.routers):
                self._drop_router(router_id, "not returned by sync_routers")

    def _drop_router(self, router_id: str, why: str) -> None:
        if self.view.routers.pop(router_id, None) is not None:
            LOG.info("Router %s removed from this host: %s", router_id, why)
        self._fip_reported.pop(router_id, None)

    def _router_statuses(self) -> dict[str, dict[str, str]] | None:
        """The floating IP statuses each router should have now, from the core's status
        (``None`` while the core has not applied the last snapshot)."""
        if self._status_provider is None:
            return None
        try:
            doc = self._status_provider()
        except Exception:
            LOG.debug("Core status unavailable", exc_info=True)
            return None
        if doc.get("origin") != self._delivered_origin:
            return None
        result: dict[str, dict[str, str]] = {}
        for entry in doc.get("routers", []):
            if not isinstance(entry, dict) or entry.get("id") not in self.view.routers:
                continue
            if entry.get("ready"):
                status = "ACTIVE"
            elif entry.get("error"):
                status = "ERROR"
            else:
                continue
            router = self.view.routers[entry["id"]]
            result[router.id] = {
                f.id: status for f in router.floating_ips if f.port_id is not None
            }
        return result

    def _fips_unreported(self) -> bool:
        return any(self._fip_reported.get(r) is None for r in self.view.routers)

    def _report_floating_ips(self) -> None:
        """Tell the server the statuses of the floating IPs of routers the core applied
        (ACTIVE) or failed (ERROR); a call for a router also makes the floating IPs that
        left it DOWN (§6.2)."""
        if self.l3 is None or not self.view.routers:
            return
        statuses = self._router_statuses()
        if statuses is None:
            return
        for router_id, fips in sorted(statuses.items()):
            if self._fip_reported.get(router_id) == fips:
                continue
            self.l3.update_floatingip_statuses(router_id, fips)
            self._fip_reported[router_id] = fips
            LOG.info("Floating IP statuses of router %s reported: %s", router_id, fips)

    def _l3_agent_state(self, agent_uuid: str, start_flag: bool) -> dict[str, Any]:
        routers = list(self.view.routers.copy().values())  # the reporter's thread
        counts = {
            "routers": len(routers),
            "ex_gw_ports": sum(1 for r in routers if r.gateway is not None),
            "interfaces": sum(len(r.interfaces) for r in routers),
            "floating_ips": sum(len(r.floating_ips) for r in routers),
        }
        return report.build_l3_agent_state(self.conf, counts, agent_uuid, start_flag)

    def _deliver(self, full: bool) -> None:
        state = self.view.snapshot()
        if state == self._delivered and not full:
            return
        self._delivered = state
        self._deliveries += 1
        self._delivered_origin = f"neutron#{self._deliveries}"
        if self._callback is not None:
            errors = tuple(f"{d}: {e}" for d, e in sorted(self._errors.items()))
            errors += tuple(f"router {r}: {e}" for r, e in sorted(self._router_errors.items()))
            self._callback(SourceUpdate(state, errors, origin=self._delivered_origin))

    def _delivered_ports(self) -> Mapping[str, Any]:
        return self._delivered.ports if self._delivered is not None else {}

    # -- outcome ------------------------------------------------------------------------

    def ports_converged(self, port_ids: Iterable[str]) -> None:
        """Outcome hook: the core converged these local ports (any thread)."""
        ports = self._delivered_ports()
        up: list[str] = []
        down: list[str] = []
        for port_id in port_ids:
            port = ports.get(port_id)
            if port is not None and self.is_awaiting(port_id):
                (up if port.admin_state_up else down).append(port_id)
        self.converged(up, down)

    def _poll_status(self) -> None:
        if self._status_provider is None or not self.awaiting_up():
            return
        try:
            doc = self._status_provider()
        except Exception:
            LOG.debug("Core status unavailable", exc_info=True)
            return
        if doc.get("origin") != self._delivered_origin:
            # The core has not run over the last snapshot yet: its per-port "converged"
            # describes the previous one (e.g. a port still up that was just set admin
            # down, or still on its old network), so reporting now would be a lie.
            return
        self.ports_converged(
            p["id"] for p in doc.get("ports", []) if isinstance(p, dict) and p.get("converged")
        )

    def _report_outcome(self) -> None:
        assert self.plugin is not None
        self._poll_status()
        up, down = self.take_outcome()
        for chunk_up, chunk_down in _pair_chunks(sorted(up), sorted(down), self.step):
            try:
                reply = self.plugin.update_device_list(
                    chunk_up, chunk_down, self.agent_id, self.host
                )
                result = replies.parse_update(reply)
            except RPC_ERRORS:
                self.requeue(chunk_up, chunk_down)
                raise
            if chunk_up:
                LOG.info("Reported up to neutron-server: %s", ", ".join(chunk_up))
            if chunk_down:
                LOG.info("Reported down to neutron-server: %s", ", ".join(chunk_down))
            self.requeue(sorted(result.failed_up), sorted(result.failed_down))

    # -- NotificationSink is in rpc_marks.Marks; state report needs a count ----------

    def probe_returned(self, topic: str, token: object, seq: object) -> None:
        if self.probe is not None:
            self.probe.returned(topic, token, seq)

    def device_count(self) -> int:
        """Local devices handled (for ``configurations.devices``)."""
        return len(self.view.details)

    @staticmethod
    def is_tap(name: str) -> bool:
        """Whether a device name is a VM tap (``tap`` + 11 characters of a port id)."""
        return name.startswith(constants.TAP_PREFIX) and len(name) == 14


def _pair_chunks(
    up: list[str], down: list[str], size: int
) -> Iterable[tuple[list[str], list[str]]]:
    """Chunks of at most ``size`` devices in total per ``update_device_list`` call."""
    items = [(d, True) for d in up] + [(d, False) for d in down]
    for i in range(0, len(items), size):
        part = items[i : i + size]
        yield [d for d, is_up in part if is_up], [d for d, is_up in part if not is_up]
