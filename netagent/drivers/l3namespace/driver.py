"""The ``namespace`` L3 driver: one network namespace per legacy router.

Per router ``R`` on this host (doc/routers.md):

* namespace ``qrouter-<R>``, IPv4 and IPv6 forwarding on;
* per port a veth pair: ``qg-``/``qr-`` + 11 characters of the port id inside the
  namespace (the port's MAC, the network's MTU, its addresses; RAs ignored, proxy ARP
  off) and ``tap`` + the same 11 characters on the host, which the L2 driver wires like any
  port bound to this host (``network:router_gateway`` / ``network:router_interface``);
* the routes, policy rules and nat rules of :mod:`.layout`;
* gratuitous ARP for every address that appears on a port and every floating IP that is
  added or moves (sent in the background, :mod:`.announce`), and the conntrack entries of
  a floating IP that is removed or moves deleted.

Every router is converged from one read of its namespace (links, addresses, routes,
rules) and only what differs is changed; the nat table goes through the iptables manager,
which adopts matching chains. Running it again, or after an agent restart, changes
nothing. A router that fails (a bad extra route, a kernel refusal) fails alone.

Which ``qrouter-`` namespaces are netagent's is recorded in a ledger under
``state_path`` (one file per router id): a sweep or cleanup removes only those, never a
namespace another agent (or another simulated host on the same machine) created.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from netagent.common import constants as c
from netagent.common import names
from netagent.common.exceptions import NetagentError
from netagent.drivers import base
from netagent.drivers.l3namespace import layout as lay
from netagent.drivers.l3namespace.announce import Announcer
from netagent.drivers.l3namespace.kernel import IPAddress, IPInterface, NsLink, RouterKernel
from netagent.model import DesiredState, Router

LOG = logging.getLogger(__name__)

LEDGER_DIR = "l3-routers"
#: routers converged side by side in one batch
APPLY_WORKERS = 4
_PORT_PREFIXES = (c.ROUTER_INTERNAL_PREFIX, c.ROUTER_GATEWAY_PREFIX)
_OWNED_TABLES = range(lay.TABLE_BASE, lay.TABLE_BASE + lay.MAX_TABLES)


def _host_end(device: str) -> str:
    """``qr-XXXXXXXXXXX`` / ``qg-...`` -> ``tapXXXXXXXXXXX``."""
    return c.TAP_PREFIX + device[3:]


class NamespaceL3Driver(base.L3Driver):
    """Legacy routers in namespaces (entry point ``namespace`` in ``netagent.l3``).

    :param conf: oslo.config object; ``[iptables]`` and ``state_path`` are read.
    :param kernel: kernel layer (tests pass a fake); default :mod:`.iplib_kernel`.
    :param netns: namespace of the host ends; ``None`` (the agent's case) is the one the
        process runs in. Functional tests pass a test namespace.
    :param ledger_dir: where owned routers are recorded; default ``<state_path>/l3-routers``.
    :param plug: how router ports reach the L2 driver (the agent hands over the L2
        driver's with :meth:`use_host_plug`); default: found by name (Linux bridge).
    """

    def __init__(
        self,
        conf: Any,
        kernel: RouterKernel | None = None,
        netns: str | None = None,
        ledger_dir: str | None = None,
        plug: base.HostPlug | None = None,
    ) -> None:
        super().__init__(conf)
        group = getattr(conf, "iptables", None)
        self.backend: str = getattr(group, "backend", "auto")
        self.verify_interval: float = getattr(group, "verify_interval", 60.0)
        self.netns = netns
        state_path = getattr(conf, "state_path", None)
        self.state_path: str | None = state_path
        self.ledger_dir = ledger_dir or (
            os.path.join(state_path, LEDGER_DIR) if state_path else None
        )
        self._kernel = kernel
        self.plug = plug if plug is not None else base.HostPlug()
        self._applied: dict[str, lay.RouterLayout] = {}
        self._lock = threading.Lock()
        self.announcer = Announcer(self._announce)

    def use_host_plug(self, plug: base.HostPlug) -> None:
        self.plug = plug

    @property
    def kernel(self) -> RouterKernel:
        """The kernel layer, created on first use (``__init__`` has no side effects)."""
        if self._kernel is None:
            from netagent.drivers.l3namespace.iplib_kernel import (  # noqa: PLC0415
                IpLibRouterKernel,
            )

            self._kernel = IpLibRouterKernel(
                self.netns, self.backend, self.verify_interval, self.state_path
            )
        return self._kernel

    def _announce(self, namespace: str, device: str, address: IPAddress) -> None:
        self.kernel.announce(namespace, device, address)

    # -- the ledger -----------------------------------------------------------------------

    def _ledger(self) -> set[str]:
        if self.ledger_dir is None:
            return set()
        try:
            entries = os.listdir(self.ledger_dir)
        except FileNotFoundError:
            return set()
        result = set()
        for entry in entries:
            try:
                names.router_namespace(entry)
            except ValueError:
                continue
            result.add(entry)
        return result

    def _record(self, router_id: str) -> None:
        if self.ledger_dir is None:
            return
        path = os.path.join(self.ledger_dir, router_id)
        if not os.path.exists(path):
            os.makedirs(self.ledger_dir, mode=0o700, exist_ok=True)
            with open(path, "w", encoding="ascii"):
                pass

    def _unrecord(self, router_id: str) -> None:
        if self.ledger_dir is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.ledger_dir, router_id))

    # -- apply ----------------------------------------------------------------------------

    def apply_routers(self, routers: Sequence[Router], state: DesiredState) -> base.Outcome:
        outcome = base.Outcome()
        namespaces = self.kernel.namespaces(c.ROUTER_NAMESPACE_PREFIX)
        existing = [names.router_namespace(r.id) for r in routers]
        self.kernel.prefetch([ns for ns in existing if ns in namespaces])

        def one(router: Router) -> str | None:
            try:
                if not router.admin_state_up:
                    self._remove(router.id, namespaces)
                else:
                    self._apply(router, state, namespaces)
            except (NetagentError, ValueError, OSError) as exc:
                LOG.warning("Router %s failed: %s", router.id, exc)
                return str(exc) or type(exc).__name__
            return None

        # Routers live in separate namespaces: their kernel calls (netlink round trips,
        # iptables-restore) overlap well, a few at a time.
        if len(routers) > 1 and APPLY_WORKERS > 1:
            with concurrent.futures.ThreadPoolExecutor(APPLY_WORKERS) as pool:
                errors = list(pool.map(one, routers))
        else:
            errors = [one(router) for router in routers]
        for router, error in zip(routers, errors, strict=True):
            if error is None:
                outcome.succeeded.add(router.id)
            else:
                outcome.failed[router.id] = error
        return outcome

    def _apply(self, router: Router, state: DesiredState, namespaces: set[str]) -> None:
        want = lay.compute(router, state)
        ns = want.namespace
        old = self._applied.get(router.id)
        if ns not in namespaces:
            self._record(router.id)
            self.kernel.create_namespace(ns)
            namespaces.add(ns)
            LOG.info("Router %s: namespace %s created", router.id, ns)
        else:
            self._record(router.id)
        links = self.kernel.links(ns)
        created: set[str] = set()
        if self._converge_devices(want, links, created):
            links = self.kernel.links(ns)
        # the host ends the L2 driver must be able to find: new ones, and all of them the
        # first time this process applies the router (a crash may have come in between)
        self.plug.plug(
            [
                (d.port_id, d.mac, d.host_name, ns, d.name)
                for d in want.devices
                if old is None or d.name in created
            ]
        )
        added, had_v6 = self._converge_addresses(want, links)
        # announced now: should a later step fail, the retry finds them in place and
        # would not announce them again
        for device, iface in added:
            self.announcer.submit(ns, device, iface.ip)
        self._converge_routes(want, had_v6, links)
        self._converge_rules(want)
        self.kernel.set_nat(ns, want.nat)
        self._floating_changes(router.id, old, want)
        with self._lock:
            self._applied[router.id] = want

    def _converge_devices(
        self, want: lay.RouterLayout, links: dict[str, NsLink], created: set[str]
    ) -> bool:
        """:param created: gets the names of the devices created
        :returns: whether a device was created or deleted."""
        ns = want.namespace
        wanted = {d.name: d for d in want.devices}
        changed = False
        for name in sorted(links):
            if name.startswith(_PORT_PREFIXES) and name not in wanted:
                self.plug.unplug([_host_end(name)])
                self.kernel.delete_host_link(_host_end(name))
                changed = True
                LOG.info("Router %s: port device %s removed", want.router_id, name)
        for device in want.devices:
            link = links.get(device.name)
            if link is not None and link.mac != device.mac:
                self.kernel.delete_host_link(device.host_name)
                link = None
            if link is None:
                changed = True
                if self.kernel.host_link_exists(device.host_name):
                    # a host end whose router end is gone (or another device's name)
                    self.kernel.delete_host_link(device.host_name)
                self.kernel.create_port(ns, device.name, device.host_name, device.mac, device.mtu)
                created.add(device.name)
                LOG.info(
                    "Router %s: port %s created (%s / %s)",
                    want.router_id,
                    device.port_id,
                    device.name,
                    device.host_name,
                )
                continue
            if link.mtu != device.mtu:
                self.kernel.set_mtu(ns, device.name, device.host_name, device.mtu)
            if not link.up:
                self.kernel.set_up(ns, device.name)
        return changed

    def _converge_addresses(
        self, want: lay.RouterLayout, links: dict[str, NsLink]
    ) -> tuple[list[tuple[str, IPInterface]], bool]:
        """:returns: the addresses added, and whether the namespace had IPv6 ones."""
        current = self.kernel.addresses(want.namespace, links)
        had_v6 = any(a.version == 6 for have in current.values() for a in have)
        add: list[tuple[str, IPInterface]] = []
        delete: list[tuple[str, IPInterface]] = []
        for device in want.devices:
            have = current.get(device.name, set())
            wanted = set(device.addresses)
            add += [(device.name, a) for a in device.addresses if a not in have]
            delete += [(device.name, a) for a in sorted(have - wanted, key=str)]
        if add or delete:
            self.kernel.change_addresses(want.namespace, add, delete)
            LOG.info(
                "Router %s: addresses +[%s] -[%s]",
                want.router_id,
                ", ".join(f"{a} on {d}" for d, a in add),
                ", ".join(f"{a} on {d}" for d, a in delete),
            )
        return add, had_v6

    def _converge_routes(
        self, want: lay.RouterLayout, had_v6: bool, links: dict[str, NsLink]
    ) -> None:
        # IPv6 routes are read only where IPv6 is (or was) in use: the dump is costly
        v6 = had_v6 or any(r.destination.version == 6 for r in want.routes)
        families = (4, 6) if v6 else (4,)
        current = self.kernel.routes(want.namespace, _OWNED_TABLES, families, links)
        add = sorted(want.routes - current, key=_route_key)
        delete = sorted(current - want.routes, key=_route_key)
        if add or delete:
            self.kernel.change_routes(want.namespace, add, delete)
            LOG.info(
                "Router %s: %d routes added, %d removed", want.router_id, len(add), len(delete)
            )

    def _converge_rules(self, want: lay.RouterLayout) -> None:
        current = self.kernel.rules(want.namespace, lay.OWNED_PRIORITIES)
        add = sorted(want.rules - current, key=_rule_key)
        delete = sorted(current - want.rules, key=_rule_key)
        if add or delete:
            self.kernel.change_rules(want.namespace, add, delete)
            LOG.info(
                "Router %s: %d rules added, %d removed", want.router_id, len(add), len(delete)
            )

    def _floating_changes(
        self, router_id: str, old: lay.RouterLayout | None, want: lay.RouterLayout
    ) -> None:
        """Delete the conntrack entries of floating IPs removed or moved; announce every
        floating IP that moved to another fixed IP (added addresses are announced when
        they are added)."""
        announce: dict[tuple[str, IPAddress], None] = {}
        gateway = want.gateway
        before = {f.floating: f.fixed for f in old.floating} if old else {}
        now = {f.floating: f.fixed for f in want.floating}
        stale = [f for f, fixed in before.items() if now.get(f) != fixed]
        if stale:
            sources = [before[f] for f in stale]
            count = self.kernel.flush_conntrack(want.namespace, stale, sources)
            LOG.info(
                "Router %s: floating IPs %s removed or moved, %d conntrack entries deleted",
                router_id,
                ", ".join(map(str, stale)),
                count,
            )
        if gateway is not None:
            for floating in stale:
                if floating in now:
                    announce[(gateway.name, floating)] = None
        for device, address in announce:
            self.announcer.submit(want.namespace, device, address)

    # -- removal --------------------------------------------------------------------------

    def remove_routers(self, router_ids: Sequence[str]) -> base.Outcome:
        outcome = base.Outcome()
        namespaces = self.kernel.namespaces(c.ROUTER_NAMESPACE_PREFIX)
        for router_id in router_ids:
            try:
                self._remove(router_id, namespaces)
                outcome.succeeded.add(router_id)
            except (NetagentError, ValueError, OSError) as exc:
                outcome.failed[router_id] = str(exc) or type(exc).__name__
        return outcome

    def _remove(self, router_id: str, namespaces: set[str]) -> None:
        ns = names.router_namespace(router_id)
        with self._lock:
            self._applied.pop(router_id, None)
        if ns in namespaces:
            ports = [n for n in sorted(self.kernel.links(ns)) if n.startswith(_PORT_PREFIXES)]
            self.plug.unplug([_host_end(name) for name in ports])
            for name in ports:
                self.kernel.delete_host_link(_host_end(name))
            self.kernel.delete_namespace(ns)
            namespaces.discard(ns)
            LOG.info("Router %s: namespace %s deleted", router_id, ns)
        else:
            self.kernel.forget_nat(ns)
        self._unrecord(router_id)

    def sweep(self, wanted_router_ids: set[str], dry_run: bool = False) -> list[str]:
        return self._remove_owned(lambda rid: rid not in wanted_router_ids, dry_run)

    def cleanup(self, dry_run: bool = False) -> list[str]:
        return self._remove_owned(lambda rid: True, dry_run)

    def _remove_owned(self, unwanted: Any, dry_run: bool) -> list[str]:
        actions = []
        with self._lock:
            known = set(self._applied)
        namespaces = self.kernel.namespaces(c.ROUTER_NAMESPACE_PREFIX)
        for router_id in sorted(self._ledger() | known):
            if not unwanted(router_id):
                continue
            ns = names.router_namespace(router_id)
            actions.append(f"delete router namespace {ns}")
            if not dry_run:
                self._remove(router_id, namespaces)
        return actions

    # -- status ---------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        with self._lock:
            applied = dict(self._applied)
        return {"routers": [_describe(applied[rid]) for rid in sorted(applied)]}


def _describe(want: lay.RouterLayout) -> dict[str, Any]:
    return {
        "id": want.router_id,
        "namespace": want.namespace,
        "interfaces": [
            {
                "port": d.port_id,
                "device": d.name,
                "host_device": d.host_name,
                "gateway": d.gateway,
                "mtu": d.mtu,
                "addresses": [str(a) for a in d.addresses],
            }
            for d in want.devices
        ],
        "routes": [
            {
                "table": r.table,
                "destination": str(r.destination),
                "via": str(r.gateway) if r.gateway else None,
                "device": r.device,
            }
            for r in sorted(want.routes, key=_route_key)
        ],
        "rules": [
            {"priority": r.priority, "from": str(r.source), "table": r.table}
            for r in sorted(want.rules, key=_rule_key)
        ],
        "snat_address": str(want.snat_address) if want.snat_address else None,
        "floating_ips": [
            {"id": f.floating_ip_id, "floating": str(f.floating), "fixed": str(f.fixed)}
            for f in want.floating
        ],
        "nat": {
            chain: [" ".join(p for p in rule.render(4) if p) for rule in rules]
            for chain, rules in want.nat.jumps
        },
    }


def _route_key(route: Any) -> tuple[Any, ...]:
    return (route.table, route.destination.version, str(route.destination), str(route.gateway))


def _rule_key(rule: Any) -> tuple[Any, ...]:
    return (rule.priority, str(rule.source), rule.table)
