"""The reconciler: desired-state cache, dirty set, and the one worker that converges."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from netagent.agent import planning, status
from netagent.agent.backoff import Backoff
from netagent.agent.converge import Converger
from netagent.agent.devices import LocalDevices
from netagent.agent.dirty import DirtySet, Key
from netagent.agent.heap import HeapUpkeep
from netagent.agent.source import SourceUpdate
from netagent.common import memo
from netagent.drivers.base import FirewallDriver, L2Driver, L3Driver
from netagent.model import DesiredState

LOG = logging.getLogger(__name__)

_INIT = "initialize"


class Reconciler:
    """Level-triggered reconciler between a desired-state source and the drivers.

    *How.* Inputs only record: :meth:`on_update` stores the newest complete snapshot and
    marks the resources whose objects differ from the previous one; :meth:`on_device`
    records that a tap device appeared or vanished and marks its port;
    :meth:`request_full_resync` (start, SIGHUP, the periodic timer, repeated failures)
    flags a full pass. One worker thread takes everything marked so far in one go (changes
    that arrive while it works coalesce into its next pass), computes the plan of this host
    from the *current* snapshot and devices, and hands the drivers, in batches, only the
    resources whose plan fingerprint differs from what was last applied: filters first,
    then networks, then port wiring (fail closed), then removals (unplug before unfilter),
    then the sweep of networks nobody needs. A full pass re-sends everything, lets the
    idempotent drivers repair drift, and sweeps what netagent owns and nobody wants.
    A resource that fails is retried alone with exponential backoff; every
    ``failures_before_resync`` consecutive failures of one resource a full resync runs.

    *Why.* Acting on the newest snapshot rather than on the notification means duplicated,
    reordered or lost notifications cannot leave the host wrong: the next pass computes the
    same answer. Nothing is touched before the first complete snapshot, so a restarted
    agent never removes what a partial picture seems not to want; the applied record is
    empty after a restart, the first full pass hands everything to drivers that adopt what
    exists, and traffic does not flap. A driver exception is caught around the batch and
    counted against that batch's resources: the agent never exits because of bad input or
    a driver fault.

    :param host: this agent's host name (ports whose ``binding:host_id`` equals it).
    :param resync_interval: seconds between periodic full resyncs; 0 disables them.
    :param retry_initial: seconds before the first retry of a failed resource.
    :param retry_max: upper bound of the retry delay.
    :param failures_before_resync: consecutive failures of one resource that trigger a
        full resync.
    :param settle: seconds to keep collecting changes after the first one before a pass.
    :param integrity_interval: seconds between the drivers' integrity checks
        (:meth:`DriverBase.check_integrity`, also run at the start of every pass);
        0 disables the timer.
    :param clock: monotonic clock (tests replace it).
    """

    def __init__(
        self,
        host: str,
        l2: L2Driver,
        firewall: FirewallDriver,
        l3: L3Driver,
        *,
        resync_interval: float = 300.0,
        retry_initial: float = 1.0,
        retry_max: float = 60.0,
        failures_before_resync: int = 5,
        settle: float = 0.02,
        integrity_interval: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.resync_interval = resync_interval
        self.settle = settle
        self.integrity_interval = integrity_interval
        self._next_integrity: float | None = None
        self._clock = clock
        self._lock = threading.Lock()
        self._dirty = DirtySet()
        self._rewire: set[str] = set()
        self._devices = LocalDevices()
        self._update: SourceUpdate | None = None
        self._backoff: Backoff[Key] = Backoff(retry_initial, retry_max, clock)
        self._init_backoff: Backoff[str] = Backoff(retry_initial, retry_max, clock)
        self._converger = Converger(
            host,
            l2,
            firewall,
            l3,
            backoff=self._backoff,
            failures_before_resync=failures_before_resync,
            request_full=self.request_full_resync,
        )
        self._drivers = (l2, firewall, l3)
        self._initialized = False
        self._next_resync: float | None = None
        self._busy = False
        self._last_update: SourceUpdate | None = None
        self._counters = status.Counters()
        self._heap = HeapUpkeep(clock)
        self._status: dict[str, Any] = status.not_ready(host)
        self._last_repair: dict[str, Any] | None = None
        self._converged = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    # -- inputs (any thread) -------------------------------------------------------------

    def on_update(self, update: SourceUpdate) -> None:
        """Take a new complete snapshot from the source; marks what changed."""
        self._devices.index_ports(update.state, self.host)
        with self._lock:
            previous = self._update
            self._update = update
            if previous is not None and update.state is previous.state:
                # only the source's verdict on its newest input changed: nothing to apply
                if self._last_update is previous:
                    self._last_update = update
                self._converged.notify_all()
                return
        _warn_shared_macs(previous.state if previous else None, update.state)
        if previous is None:
            LOG.info("First complete desired state received from %s", update.origin or "source")
            self._dirty.request_full("first complete desired state")
            return
        keys = planning.changed_keys(previous.state, update.state, self.host)
        LOG.debug("New desired state: %d resources to look at", len(keys))
        self._dirty.mark(keys)
        self._dirty.wake()

    def set_devices(self, devices: Mapping[str, int]) -> None:
        """Replace the set of present devices (the monitor's initial dump)."""
        self._dirty.mark(self._devices.replace(devices))

    def on_device(self, name: str, ifindex: int | None) -> None:
        """A device appeared (``ifindex``) or vanished (``None``); marks its port dirty."""
        key = self._devices.update(name, ifindex)
        if key is not None:
            self._dirty.mark([key])

    def on_port_changed(self, port_id: str) -> None:
        """The L2 driver saw the switch port of ``port_id`` appear, change or vanish
        (e.g. os-vif set ``iface-id`` on an OVS interface): plug it again next pass."""
        with self._lock:
            self._rewire.add(port_id)
        self._dirty.mark([("port", port_id)])
        self._dirty.wake()

    def request_full_resync(self, reason: str) -> None:
        """Ask for a full resync at the next pass (coalesced)."""
        LOG.info("Full resync requested: %s", reason)
        self._dirty.request_full(reason)

    # -- worker --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._loop, name="reconciler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker after its current pass; the host is left as it is."""
        self._dirty.stop()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                LOG.warning("Reconciler still busy after %.0f s; leaving it", timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._dirty.stopped:
            try:
                self.step()
            except Exception:
                LOG.exception("Unexpected error in the reconciler; continuing")
                time.sleep(1.0)

    def step(self, timeout: float | None = None) -> bool:
        """Wait for work (at most until the next timer or ``timeout``) and run one pass.

        :returns: whether a pass ran.
        """
        wait = self._next_timer()
        if timeout is not None:
            wait = timeout if wait is None else min(wait, timeout)
        batch = self._dirty.take(wait, self.settle)
        if batch is None:
            self._integrity_if_due()
            return False
        with self._lock:
            update = self._update
            devices = self._devices.snapshot()
        if update is None:
            return False  # nothing is touched before the first complete picture
        if not self._initialize():
            return False
        now = self._clock()
        # until one full pass has completed, every pass is a full one (restart semantics)
        full = batch.full or self._counters.full_syncs == 0
        reasons: tuple[str, ...] = batch.reasons or ("first pass",)
        if not full and self._next_resync is not None and now >= self._next_resync:
            full, reasons = True, ("periodic",)
        if not (full or batch.keys or self._backoff.due() or update is not self._last_update):
            self._integrity_if_due()
            self._publish(None, devices, update)
            return False
        self._pass(update, devices, batch.keys, full, reasons)
        return True

    def _pass(
        self,
        update: SourceUpdate,
        devices: Mapping[str, int],
        keys: frozenset[Key],
        full: bool,
        reasons: tuple[str, ...],
    ) -> None:
        started = self._clock()
        with self._lock:
            self._busy = True
        if full:
            LOG.info("Full resync started (%s)", "; ".join(dict.fromkeys(reasons)))
        plan = None
        try:
            # What someone else changed is rewritten first: a pass only writes what it
            # believes differs, so it would not see the damage itself.
            drifted = self._check_integrity()
            with self._lock:
                rewire, self._rewire = self._rewire, set()
            plan = self._converger.run(update.state, devices, keys | drifted, full, rewire)
        finally:
            duration = self._clock() - started
            self._counters.passes += 1
            self._last_update = update
            if full:
                self._counters.full_syncs += 1
                self._counters.last_full_sync_duration = duration
                if self.resync_interval > 0:
                    self._next_resync = self._clock() + self.resync_interval
                LOG.info("Full resync finished in %.3f s", duration)
            else:
                LOG.debug("Incremental pass over %d resources in %.3f s", len(keys), duration)
            self._counters.last_pass_duration = duration
            self._publish(plan, devices, update)
            memo.new_pass()
            self._heap.after_pass(full)

    def _initialize(self) -> bool:
        if self._initialized:
            return True
        if _INIT in self._init_backoff and not self._init_backoff.due():
            return False
        try:
            for driver in self._drivers:
                driver.initialize()
        except Exception as exc:
            count = self._init_backoff.failed(_INIT, str(exc))
            LOG.exception("Driver initialisation failed (%d in a row); retrying", count)
            return False
        self._init_backoff.succeeded(_INIT)
        self._initialized = True
        return True

    def _integrity_if_due(self) -> None:
        if self._next_integrity is not None and self._clock() >= self._next_integrity:
            drifted = self._check_integrity()
            if drifted:
                self._dirty.mark(drifted)

    def _check_integrity(self) -> set[Key]:
        """The drivers' integrity checks (worker thread only; after a first pass).

        Firewall chains are rewritten by the check itself; networks and ports whose
        devices drifted are handed to the converger to converge again.

        :returns: the resources that drifted (for the next pass)
        """
        if not self._initialized or self._counters.passes == 0:
            return set()
        found: list[str] = []
        drifted: set[Key] = set()
        repairs = 0
        for driver in self._drivers:
            name = type(driver).__name__
            try:
                rewritten = driver.check_integrity()
                repairs += rewritten
                if rewritten:
                    found.append(f"{name}: {rewritten} chains, sets or hooks rewritten")
            except Exception:
                LOG.exception("Integrity check of %s failed; trying again later", name)
            try:
                drift = driver.find_drift()
            except Exception:
                LOG.exception("Drift check of %s failed; trying again later", name)
                continue
            drifted |= {("network", n) for n in drift.networks}
            drifted |= {("port", p) for p in drift.ports}
            found += drift.found
            repairs += len(drift.found)
        self._counters.integrity_checks += 1
        self._counters.integrity_repairs += repairs
        if found:
            self._last_repair = {"at": time.time(), "found": found}
        if drifted:
            self._converger.redo(drifted)
        if self.integrity_interval > 0:
            self._next_integrity = self._clock() + self.integrity_interval
        return drifted

    def _next_timer(self) -> float | None:
        integrity = self._next_integrity
        if integrity is None and self.integrity_interval > 0 and self._counters.passes:
            integrity = self._next_integrity = self._clock() + self.integrity_interval
        deadlines = [
            t
            for t in (
                self._backoff.next_due(),
                self._init_backoff.next_due(),
                self._next_resync,
                integrity,
            )
            if t is not None
        ]
        if not deadlines:
            return None
        return max(min(deadlines) - self._clock(), 0.0)

    # -- status --------------------------------------------------------------------------

    def _publish(
        self, plan: planning.HostPlan | None, devices: Mapping[str, int], update: SourceUpdate
    ) -> None:
        doc = None
        if plan is not None:
            doc = status.describe(self.host, plan, devices, self._converger, update)
            doc["drivers"] = {}
            for kind, driver in zip(("l2", "firewall", "l3"), self._drivers, strict=True):
                try:
                    doc["drivers"][kind] = driver.describe()
                except Exception as exc:
                    doc["drivers"][kind] = {"error": f"{type(exc).__name__}: {exc}"}
        with self._lock:
            self._busy = False
            if doc is not None:
                self._status = doc
            self._converged.notify_all()

    def is_converged(self) -> bool:
        """Complete snapshot applied, nothing dirty, no retry pending, no pass running."""
        with self._lock:
            return self._converged_locked()

    def _converged_locked(self) -> bool:
        return (
            self._update is not None
            and self._update is self._last_update
            and self._initialized
            and self._counters.full_syncs > 0
            and not self._busy
            and not self._dirty.pending()
            and len(self._backoff) == 0
            and self._update.file_error is None
            and not any(p.get("error") for p in self._status.get("ports", ()))
        )

    def status(self) -> dict[str, Any]:
        """The status document served on the status socket (JSON-serialisable)."""
        with self._lock:
            doc = dict(self._status)
            doc["converged"] = self._converged_locked()
            doc["file_error"] = self._update.file_error if self._update else None
            doc["ready"] = self._update is not None and self._counters.full_syncs > 0
            doc["last_integrity_repair"] = self._last_repair
            doc["counters"] = self._counters.as_dict(
                failures=self._converger.failures,
                driver_errors=self._converger.driver_errors,
                pending_retries=len(self._backoff),
            )
        return doc

    def wait_converged(self, timeout: float) -> bool:
        """Block until :meth:`is_converged` (or ``timeout`` seconds). For tests and tools."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._converged_locked():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._converged.wait(min(left, 0.05))
            return True


def _warn_shared_macs(old: DesiredState | None, new: DesiredState) -> None:
    """Warn once per change about allowed address pairs that carry another port's MAC."""
    before = old.pair_macs_of_other_ports() if old is not None else frozenset()
    for port_id, mac, other in sorted(new.pair_macs_of_other_ports() - before):
        LOG.warning(
            "Port %s has an allowed address pair with MAC %s, the MAC of port %s on the "
            "same network: it may take over that port's traffic",
            port_id,
            mac,
            other,
        )
