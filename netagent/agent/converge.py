"""One reconciliation pass: compare a host plan with what was applied, call the drivers.

Only the reconciler's worker thread uses :class:`Converger`; nothing here locks.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from netagent.agent import planning
from netagent.agent.applied import AppliedRecord
from netagent.agent.backoff import Backoff
from netagent.agent.dirty import Key
from netagent.drivers.base import (
    FirewallDriver,
    L2Driver,
    L3Driver,
    NetworkPlan,
    Outcome,
    PortPlan,
)
from netagent.model import DesiredState, Network, Port, Router

LOG = logging.getLogger(__name__)

#: Pseudo network id under which a failed L2 sweep is retried.
SWEEP_ID = "*sweep*"


class Converger:
    """Applied records, retry schedule and error memory, and the pass that uses them.

    :param host: this agent's host name.
    :param backoff: retry schedule shared with the reconciler (which reads its timers).
    :param failures_before_resync: every this many consecutive failures of one resource,
        ``request_full`` is called.
    :param request_full: asks the reconciler for a full resync (with a reason).
    """

    def __init__(
        self,
        host: str,
        l2: L2Driver,
        firewall: FirewallDriver,
        l3: L3Driver,
        *,
        backoff: Backoff[Key],
        failures_before_resync: int,
        request_full: Callable[[str], None],
    ) -> None:
        self.host = host
        self.l2 = l2
        self.firewall = firewall
        self.l3 = l3
        self.backoff = backoff
        self.failures_before_resync = max(failures_before_resync, 1)
        self.request_full = request_full
        self.filtered: AppliedRecord[PortPlan] = AppliedRecord()
        self.wired: AppliedRecord[PortPlan] = AppliedRecord()
        self.networks: AppliedRecord[NetworkPlan] = AppliedRecord()
        self.routers: AppliedRecord[Router] = AppliedRecord()
        self.errors: dict[Key, str] = {}
        #: networks and ports found drifted: converged again by the next pass
        self._redo: set[Key] = set()
        self.failures = 0
        self.driver_errors = 0

    # -- one pass -----------------------------------------------------------------------

    def redo(self, keys: Iterable[Key]) -> None:
        """Converge these networks and ports again in the next pass, even though what
        was applied to them matches the plan (someone else changed their kernel state)."""
        self._redo.update(keys)

    def run(
        self,
        state: DesiredState,
        devices: Mapping[str, int],
        keys: Iterable[Key],
        full: bool,
        rewire: AbstractSet[str] = frozenset(),
    ) -> planning.HostPlan:
        """Converge the host towards ``state``.

        :param devices: tap devices present (name -> ifindex).
        :param keys: dirty resources (due retries are added here).
        :param full: re-send every wanted resource, then sweep.
        :param rewire: ports to plug again even if their plan is unchanged (the L2
            driver saw their switch port change, e.g. a new OVS ofport).
        :returns: the plan the pass worked from (for the status).
        """
        drivers = (self.firewall, self.l2, self.l3)
        for driver in drivers:
            driver.begin_pass()
        try:
            return self._run(state, devices, keys, full, rewire)
        finally:
            for driver in drivers:
                try:
                    driver.end_pass()
                except Exception:
                    self.driver_errors += 1
                    LOG.exception("End of pass of %s failed", type(driver).__name__)

    def _run(
        self,
        state: DesiredState,
        devices: Mapping[str, int],
        keys: Iterable[Key],
        full: bool,
        rewire: AbstractSet[str],
    ) -> planning.HostPlan:
        incumbents = self.incumbents()
        plan = planning.compute(state, self.host, devices, incumbents)
        redo = frozenset(self._redo)
        self._redo.clear()
        dirty = set(keys) | self.backoff.due() | redo
        ports_failed: dict[str, str] = {}
        ports_ok: set[str] = set()

        def wanted(
            kind: Any,
            rid: str,
            record: AppliedRecord[Any],
            fingerprint: object,
            again: frozenset[Key] = frozenset(),
        ) -> bool:
            if full or (kind, rid) in again:
                return True
            if (kind, rid) in dirty:
                return not record.matches(rid, fingerprint)
            return rid not in record and (kind, rid) not in self.backoff

        # 1. filters first: a port forwards nothing before its filter is in place
        filter_fps = {
            pid: planning.filter_fingerprint(pp, plan.view) for pid, pp in plan.port_plans.items()
        }
        todo = [
            pp
            for pid, pp in plan.port_plans.items()
            if wanted("port", pid, self.filtered, filter_fps[pid])
        ]
        out = self._call(
            "filter", [p.port.id for p in todo], lambda: self.firewall.apply_ports(todo, state)
        )
        for pp in todo:
            pid = pp.port.id
            if pid in out.succeeded:
                self._note(self.filtered, pid, filter_fps[pid], pp, "Port %s filtered", pid)
                ports_ok.add(pid)
            else:
                self.filtered.forget(pid)
                ports_failed[pid] = out.failed[pid]

        # 2. networks
        net_todo = [
            np
            for nid, np in plan.networks.items()
            if wanted("network", nid, self.networks, np, redo)
        ]
        out = self._call(
            "network",
            [np.network.id for np in net_todo],
            lambda: self.l2.ensure_networks(net_todo),
        )
        nets_done: set[str] = set()
        for np in net_todo:
            nid = np.network.id
            if nid in out.succeeded:
                self._note(
                    self.networks,
                    nid,
                    np,
                    np,
                    "Network %s ready (%d peers, %d remote ports)",
                    nid,
                    len(np.tunnel_peers),
                    len(np.remote_ports),
                )
                self._succeeded(("network", nid))
                nets_done.add(nid)
            else:
                self.networks.forget(nid)
                self._failed(("network", nid), out.failed[nid])

        # 3. wire the ports whose filter and network are in place
        wire_fps = {
            pid: planning.wire_fingerprint(pp, devices) for pid, pp in plan.port_plans.items()
        }
        plug: list[PortPlan] = []
        for pid, pp in plan.port_plans.items():
            if not (
                wanted("port", pid, self.wired, wire_fps[pid], redo)
                or pid in rewire
                or (pp.network.id in nets_done and pid not in self.wired)
            ):
                continue
            if pid in ports_failed or not self.filtered.matches(pid, filter_fps[pid]):
                continue
            if not self.networks.matches(pp.network.id, plan.networks[pp.network.id]):
                ports_failed[pid] = f"network {pp.network.id} is not ready"
                continue
            plug.append(pp)
        out = self._call("plug", [p.port.id for p in plug], lambda: self.l2.plug_ports(plug))
        for pp in plug:
            pid = pp.port.id
            if pid in out.succeeded:
                self._note(
                    self.wired,
                    pid,
                    wire_fps[pid],
                    pp,
                    "Port %s wired on %s",
                    pid,
                    pp.port.device_name,
                )
                ports_ok.add(pid)
            else:
                self.wired.forget(pid)
                ports_failed[pid] = out.failed[pid]

        # 4. removals: unplug first, then drop the filter of what is unplugged
        self._remove_ports(plan, ports_failed)

        for pid, reason in ports_failed.items():
            self._failed(("port", pid), reason)
        for pid in ports_ok - set(ports_failed):
            self._succeeded(("port", pid))
        for pid in plan.port_errors:
            self.backoff.forget([("port", pid)])
        self._forget_unwanted(plan)

        # 5. networks nobody needs any more, then routers, then the full-resync sweeps
        self._sweep_networks(plan, full or ("network", SWEEP_ID) in dirty)
        self._routers(plan, state, full, dirty)
        if full:
            keep = set(plan.port_plans) | self.wired.ids() | self.filtered.ids()
            self._sweep("firewall", lambda: self.firewall.sweep(keep))
            if self.l3.builds_routers:
                wanted_routers = set(plan.routers) | self.routers.ids()
                self._sweep("l3", lambda: self.l3.sweep(wanted_routers))
        released = incumbents.keys() - self.incumbents().keys()
        if released and (plan.port_errors or plan.refused_networks):
            # a removal freed a kernel name another object was refused for: plan again now
            again: set[Key] = {("port", p) for p in plan.port_errors}
            again |= {("network", n) for n in plan.refused_networks}
            return self.run(state, devices, again, full=False, rewire=rewire)
        return plan

    def incumbents(self) -> dict[str, str]:
        """Kernel names -> the network or port that holds them now (see
        :func:`planning.compute`): wired ports first, then filtered ones, then networks."""
        applied: list[Network | Port] = []
        for record in (self.wired, self.filtered):
            applied += [e.plan.port for pid in record if (e := record.get(pid)) is not None]
        applied += [n.plan.network for nid in self.networks if (n := self.networks.get(nid))]
        return planning.incumbents_of(applied)

    # -- steps --------------------------------------------------------------------------

    def _remove_ports(self, plan: planning.HostPlan, ports_failed: dict[str, str]) -> None:
        gone = [
            e.plan
            for pid in self.wired
            if pid not in plan.port_plans
            if (e := self.wired.get(pid)) is not None
        ]
        out = self._call("unplug", [p.port.id for p in gone], lambda: self.l2.unplug_ports(gone))
        for pp in gone:
            pid = pp.port.id
            if pid in out.succeeded:
                self.wired.forget(pid)
                why = "removed" if pid not in plan.ports else "its device is gone"
                LOG.info("Port %s unwired from %s (%s)", pid, pp.port.device_name, why)
            else:
                ports_failed[pid] = out.failed[pid]
        # never unfilter a port that may still be wired: that would let it forward unfiltered
        unfilter = [
            pid for pid in self.filtered if pid not in plan.port_plans and pid not in self.wired
        ]
        out = self._call("unfilter", unfilter, lambda: self.firewall.remove_ports(unfilter))
        for pid in unfilter:
            if pid in out.succeeded:
                self.filtered.forget(pid)
                LOG.info("Port %s filter removed", pid)
            else:
                ports_failed[pid] = out.failed[pid]

    def _sweep_networks(self, plan: planning.HostPlan, force: bool) -> None:
        gone = self.networks.ids() - set(plan.networks)
        if not (force or gone):
            return
        # networks of ports whose unplug failed stay: they still carry traffic
        keep = dict(plan.networks)
        for pid in self.wired:
            entry = self.wired.get(pid)
            recorded = self.networks.get(entry.plan.network.id) if entry else None
            if recorded is not None:
                keep.setdefault(recorded.plan.network.id, recorded.plan)
        # ports that may stay wired: the wanted ones and those whose unplug failed
        devices = {pp.port.device_name for pp in plan.port_plans.values()}
        devices |= {e.plan.port.device_name for pid in self.wired if (e := self.wired.get(pid))}
        sweep = functools.partial(self.l2.sweep, list(keep.values()), wanted_devices=devices)
        if not self._sweep("l2", sweep):
            self._failed(("network", SWEEP_ID), "sweep failed")
            return
        self._succeeded(("network", SWEEP_ID))
        for nid in gone - set(keep):
            self.networks.forget(nid)
            LOG.info("Network %s no longer needed on this host", nid)

    def _routers(
        self, plan: planning.HostPlan, state: DesiredState, full: bool, dirty: set[Key]
    ) -> None:
        if not self.l3.builds_routers:
            return
        todo = [
            r
            for rid, r in plan.routers.items()
            if full
            or (("router", rid) in dirty and not self.routers.matches(rid, r))
            or (rid not in self.routers and ("router", rid) not in self.backoff)
        ]
        out = self._call(
            "router", [r.id for r in todo], lambda: self.l3.apply_routers(todo, state)
        )
        for router in todo:
            if router.id in out.succeeded:
                self._note(self.routers, router.id, router, router, "Router %s ready", router.id)
                self._succeeded(("router", router.id))
            else:
                self.routers.forget(router.id)
                self._failed(("router", router.id), out.failed[router.id])
        gone = [rid for rid in self.routers if rid not in plan.routers]
        out = self._call("router removal", gone, lambda: self.l3.remove_routers(gone))
        for rid in gone:
            if rid in out.succeeded:
                self.routers.forget(rid)
                self._succeeded(("router", rid))
                LOG.info("Router %s removed", rid)
            else:
                self._failed(("router", rid), out.failed[rid])

    def _forget_unwanted(self, plan: planning.HostPlan) -> None:
        """Stop retrying resources that are no longer wanted and hold nothing on the host."""
        for key in list(self.backoff.keys() | set(self.errors)):
            kind, rid = key
            if kind == "port":
                idle = rid not in self.wired and rid not in self.filtered
                if idle and (rid not in plan.ports or plan.waiting_for_device(rid)):
                    self._succeeded(key)
            elif kind == "network" and rid != SWEEP_ID and rid not in plan.networks:
                self._succeeded(key)

    # -- helpers ------------------------------------------------------------------------

    def _call(self, what: str, ids: Sequence[str], fn: Callable[[], Outcome]) -> Outcome:
        """Run one driver batch; an exception fails every resource of the batch."""
        if not ids:
            return Outcome()
        LOG.debug("Driver %s batch: %s", what, ", ".join(ids))
        try:
            out = fn()
            if not isinstance(out, Outcome):
                raise TypeError(f"driver returned {type(out).__name__}, not Outcome")
        except Exception as exc:
            self.driver_errors += 1
            LOG.exception("Driver %s batch failed for %s", what, ", ".join(ids))
            return Outcome(failed={i: f"{what}: {type(exc).__name__}: {exc}" for i in ids})
        result = Outcome(succeeded=set(out.succeeded) - set(out.failed))
        for rid in ids:
            if rid in out.failed:
                result.failed[rid] = f"{what}: {out.failed[rid]}"
            elif rid not in result.succeeded:
                result.failed[rid] = f"{what}: the driver reported no outcome"
        return result

    def _sweep(self, what: str, fn: Callable[[], list[str]]) -> bool:
        try:
            actions = fn()
        except Exception:
            self.driver_errors += 1
            LOG.exception("Sweep of the %s driver failed", what)
            return False
        for action in actions:
            LOG.info("Swept (%s): %s", what, action)
        return True

    def _note(
        self,
        record: AppliedRecord[Any],
        rid: str,
        fingerprint: object,
        plan: object,
        message: str,
        *args: object,
    ) -> None:
        """Record an applied plan; INFO only when it changed (a full resync that re-sends
        an unchanged resource logs at DEBUG)."""
        changed = not record.matches(rid, fingerprint)
        record.record(rid, fingerprint, plan)
        LOG.log(logging.INFO if changed else logging.DEBUG, message, *args)

    def _failed(self, key: Key, reason: str) -> None:
        self.failures += 1
        count = self.backoff.failed(key, reason)
        level = logging.WARNING if self.errors.get(key) != reason else logging.DEBUG
        self.errors[key] = reason
        LOG.log(
            level, "%s %s failed (%d in a row): %s", key[0].capitalize(), key[1], count, reason
        )
        if count % self.failures_before_resync == 0:
            self.request_full(f"{key[0]} {key[1]} failed {count} times in a row")

    def _succeeded(self, key: Key) -> None:
        self.backoff.succeeded(key)
        if self.errors.pop(key, None) is not None:
            LOG.info("%s %s recovered", key[0].capitalize(), key[1])
