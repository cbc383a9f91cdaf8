"""The Neutron source's inbox: what changed since the worker's last pass, and outcomes.

Producers (RPC handler threads, the tap monitor, the state reporter) only add marks
here; the source's single worker takes them all at once. Taken marks that could not be
processed (a call failed) are put back with :meth:`Marks.restore`, so nothing is lost.
The outcome queues collect the devices to report up or down to the server.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterable, Sequence

from netagent.common import constants

LOG = logging.getLogger(__name__)

_PREFIX_LEN = constants.INTEROP_ID_CHARS


@dataclasses.dataclass(frozen=True)
class Taken:
    """Everything marked since the previous take.

    :ivar devices: port-id prefixes (tap name minus ``tap``) to fetch again.
    :ivar ports: full port ids named by notifications.
    :ivar networks: network ids named by notifications.
    :ivar groups: security group ids named by notifications.
    :ivar fdb: l2population casts in arrival order, ``(operation, fdb_entries)``.
    """

    full: bool = False
    reasons: tuple[str, ...] = ()
    devices: frozenset[str] = frozenset()
    ports: frozenset[str] = frozenset()
    networks: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    tunnel_events: tuple[tuple[str, object, object], ...] = ()
    fdb: tuple[tuple[str, object], ...] = ()
    #: a device vanished: the pass reports it down
    vanished: bool = False
    #: router ids to fetch again (``routers_updated``, ``router_added_to_agent``) and
    #: router ids the server says are gone from this host (deleted, unscheduled)
    routers: frozenset[str] = frozenset()
    routers_gone: frozenset[str] = frozenset()

    def with_full(self, reason: str) -> Taken:
        """The same marks, as a full resync."""
        return dataclasses.replace(self, full=True, reasons=(*self.reasons, reason))


class Marks:
    """Thread-safe marks, device table and outcome queues (the source's base class).

    Implements :class:`netagent.rpc.consumers.NotificationSink`.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._stopped = False
        self._devices: dict[str, str] = {}
        self._pending = Taken()
        self._awaiting: set[str] = set()
        self._up: set[str] = set()
        self._down: set[str] = set()
        self._logged: set[str] = set()
        #: Devices the server knows no bound port for (worker thread only).
        self.unbound: set[str] = set()

    # -- producers ----------------------------------------------------------------------

    def _add(
        self,
        *,
        full: bool = False,
        reasons: Iterable[str] = (),
        devices: Iterable[str] = (),
        ports: Iterable[str] = (),
        networks: Iterable[str] = (),
        groups: Iterable[str] = (),
        tunnel_events: Iterable[tuple[str, object, object]] = (),
        fdb: Iterable[tuple[str, object]] = (),
        vanished: bool = False,
        routers: Iterable[str] = (),
        routers_gone: Iterable[str] = (),
    ) -> None:
        with self._cond:
            old = self._pending
            self._pending = Taken(
                full=old.full or full,
                reasons=(*old.reasons, *reasons),
                devices=old.devices | frozenset(devices),
                ports=old.ports | frozenset(ports),
                networks=old.networks | frozenset(networks),
                groups=old.groups | frozenset(groups),
                tunnel_events=(*old.tunnel_events, *tunnel_events),
                fdb=(*old.fdb, *fdb),
                vanished=old.vanished or vanished,
                routers=old.routers | frozenset(routers),
                routers_gone=old.routers_gone | frozenset(routers_gone),
            )
            self._cond.notify_all()

    def request_full(self, reason: str) -> None:
        """Ask for a full pass (coalesced)."""
        LOG.debug("Full resync requested: %s", reason)
        self._add(full=True, reasons=(reason,))

    def mark_devices(self, prefixes: Iterable[str]) -> None:
        """Fetch these devices again next pass."""
        self._add(devices=prefixes)

    def device_event(self, name: str, ifindex: int | None) -> None:
        """Tap monitor callback: a device appeared (``ifindex``) or vanished (``None``)."""
        if not name.startswith(constants.TAP_PREFIX):
            return
        prefix = name[len(constants.TAP_PREFIX) :]
        if len(prefix) != _PREFIX_LEN:
            return
        with self._cond:
            if ifindex is None:
                self._devices.pop(name, None)
            else:
                self._devices[name] = prefix
        if ifindex is None:
            self._add(vanished=True)
        else:
            self._add(devices=[prefix])

    def devices(self) -> dict[str, str]:
        """Present taps: name → port-id prefix (a copy)."""
        with self._cond:
            return dict(self._devices)

    def port_changed(self, port_id: str) -> None:
        self._add(ports=[port_id])

    def port_deleted(self, port_id: str) -> None:
        self._add(ports=[port_id])

    def port_deactivated(self, port_id: str) -> None:
        self._add(ports=[port_id])

    def network_changed(self, network_id: str) -> None:
        self._add(networks=[network_id])

    def security_groups_changed(self, group_ids: Sequence[str]) -> None:
        self._add(groups=group_ids)

    def tunnel_endpoint_changed(
        self, operation: str, tunnel_ip: object, tunnel_type: object
    ) -> None:
        self._add(tunnel_events=((operation, tunnel_ip, tunnel_type),))

    def fdb_received(self, operation: str, fdb_entries: object) -> None:
        self._add(fdb=((operation, fdb_entries),))

    def routers_changed(self, router_ids: Sequence[str]) -> None:
        self._add(routers=router_ids)

    def router_gone(self, router_id: str) -> None:
        self._add(routers_gone=[router_id])

    # -- worker -------------------------------------------------------------------------

    def take(self, timeout: float | None) -> Taken | None:
        """Wait up to ``timeout`` for marks; return and clear them (``None`` when stopped)."""
        with self._cond:
            if not self._has_work():
                self._cond.wait_for(lambda: self._stopped or self._has_work(), timeout)
            if self._stopped:
                return None
            taken, self._pending = self._pending, Taken()
            return taken

    def _has_work(self) -> bool:
        return self._pending != Taken() or bool(self._up or self._down)

    def restore(self, taken: Taken) -> None:
        """Put back marks a failed pass could not process."""
        self._add(
            full=taken.full,
            reasons=taken.reasons,
            devices=taken.devices,
            ports=taken.ports,
            networks=taken.networks,
            groups=taken.groups,
            tunnel_events=taken.tunnel_events,
            fdb=taken.fdb,
            vanished=taken.vanished,
            routers=taken.routers,
            routers_gone=taken.routers_gone,
        )

    def sleep(self, seconds: float) -> None:
        """Wait, returning early when stopped."""
        with self._cond:
            self._cond.wait_for(lambda: self._stopped, seconds)

    def stop_marks(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        with self._cond:
            return self._stopped

    def log_once(self, key: str, message: str, *args: object) -> None:
        """Log at WARNING the first time ``key`` is seen, at DEBUG afterwards."""
        with self._cond:
            first = key not in self._logged
            self._logged.add(key)
        (LOG.warning if first else LOG.debug)(message, *args)

    # -- outcome ------------------------------------------------------------------------

    def expect_up(self, port_ids: Iterable[str]) -> None:
        """These ports were (re)fetched: report them once the core converged them."""
        with self._cond:
            self._awaiting.update(port_ids)

    def awaiting_up(self) -> bool:
        with self._cond:
            return bool(self._awaiting)

    def is_awaiting(self, port_id: str) -> bool:
        with self._cond:
            return port_id in self._awaiting

    def converged(self, up: Iterable[str], down: Iterable[str]) -> None:
        """Queue converged ports: admin-up ones as up, admin-down ones as down."""
        with self._cond:
            up, down = set(up), set(down)
            self._awaiting -= up | down
            self._up |= up
            self._down -= up
            self._down |= down
            self._up -= down
            if up or down:
                self._cond.notify_all()

    def queue_down(self, devices: Iterable[str]) -> None:
        """Report these devices (port ids or prefixes) down."""
        with self._cond:
            devices = set(devices)
            self._awaiting -= devices
            self._up -= devices
            self._down |= devices

    def take_outcome(self) -> tuple[set[str], set[str]]:
        """Return and clear the queued (up, down) devices."""
        with self._cond:
            up, down = self._up, self._down
            self._up, self._down = set(), set()
            return up, down

    def requeue(self, up: Iterable[str], down: Iterable[str]) -> None:
        """Put back devices whose report failed (sent again next pass)."""
        with self._cond:
            self._up |= set(up) - self._down
            self._down |= set(down) - self._up
