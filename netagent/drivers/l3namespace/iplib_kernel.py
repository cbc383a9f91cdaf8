""":class:`~netagent.drivers.l3namespace.kernel.RouterKernel` on :mod:`netagent.linux`.

The one module of the driver that calls the kernel layer (ip_lib, routing, netns, sysctl,
arp, conntrack and the iptables manager). Device changes are single typed operations; a
router's address, route and rule changes go to its namespace in one netlink batch each
(ip_lib's typed operations, doc/kernel-layer.md).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import ipaddress
import logging
import threading
from collections.abc import Mapping, Sequence

from netagent.common import constants as c
from netagent.common.exceptions import NetagentError
from netagent.drivers.l3namespace.kernel import (
    IPAddress,
    IPInterface,
    NatSpec,
    NsLink,
    RouteSpec,
    RuleSpec,
)
from netagent.linux import arp, conntrack, ip_lib, netns, routing, sysctl
from netagent.linux.errors import EntryNotFound
from netagent.linux.iptables import IptablesManager
from netagent.linux.iptables import backend as iptables_backend

LOG = logging.getLogger(__name__)

_NAT_BUILTINS = ("PREROUTING", "OUTPUT", "POSTROUTING")
_RT_SCOPE_UNIVERSE = 0
_PREFETCH_WORKERS = 4


def _text(value: object | None) -> str | None:
    """An address or network as the text an operation takes (``None`` stays)."""
    return None if value is None else str(value)


def _raise_first(failures: list[ip_lib.Failed]) -> None:
    """Raise the first failure of a batch that matters; deletions of routes, rules or
    addresses that are gone already are what was wanted."""
    for failed in failures:
        gone = isinstance(failed.error, EntryNotFound) and isinstance(
            failed.op, ip_lib.DeleteRoute | ip_lib.DeleteRule | ip_lib.DeleteAddress
        )
        if not gone:
            raise failed.error


class NatApplyError(NetagentError):
    """iptables-restore refused a router's nat rules (the reason is iptables')."""

    def __init__(self, namespace: str, reason: str) -> None:
        super().__init__(namespace, reason)
        self.namespace = namespace
        self.reason = reason

    def __str__(self) -> str:
        return f"nat rules of {self.namespace}: {self.reason}"


class PortNotWiredError(NetagentError):
    """The host end of a router port is not up yet: nothing sent from the port arrives."""

    def __init__(self, device: str) -> None:
        super().__init__(device)
        self.device = device

    def __str__(self) -> str:
        return f"{self.device} is not wired yet"


class IpLibRouterKernel:
    """Router kernel operations; host ends of router ports live in ``netns``.

    :param netns: the host namespace (``None``: the process's own).
    :param backend: iptables backend (``auto``, ``nft``, ``legacy``); ``auto`` is decided
        once, at the first nat table used, as the firewall driver decides it (from the
        host namespace and the record in ``state_path``), not per router namespace: that
        takes several saves and would cost each router of a restart as much again.
    :param verify_interval: the iptables manager's check interval (seconds).
    :param state_path: where the ``auto`` decision is recorded (``None``: not recorded).
    """

    def __init__(
        self,
        netns: str | None = None,
        backend: str = "auto",
        verify_interval: float = 60.0,
        state_path: str | None = None,
    ) -> None:
        self.netns = netns
        self.backend = backend
        self.verify_interval = verify_interval
        self.state_path = state_path
        self._nat: dict[str, IptablesManager] = {}
        #: nat tables being read ahead (:meth:`prefetch`), by namespace
        self._pending: dict[str, concurrent.futures.Future[None]] = {}
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"IpLibRouterKernel(netns={self.netns!r}, backend={self.backend!r})"

    # -- namespaces and devices ---------------------------------------------------------

    def namespaces(self, prefix: str) -> set[str]:
        return set(netns.list_namespaces(prefix))

    def create_namespace(self, namespace: str) -> None:
        netns.create(namespace)
        # a router that sends a packet back out where it came from (a destination behind
        # the same upstream) must not teach the sender a redirect: hosts cache those
        for scope in ("all", "default"):
            sysctl.set_send_redirects(namespace, scope, False)
        sysctl.set_ip_forwarding(namespace, True)
        with contextlib.suppress(FileNotFoundError):  # IPv6 disabled on this host
            sysctl.set_ip_forwarding(namespace, True, family=6)

    def delete_namespace(self, namespace: str) -> None:
        self.forget_nat(namespace)
        netns.delete(namespace, missing_ok=True)

    def host_link_exists(self, host_device: str) -> bool:
        return ip_lib.device_exists(host_device, namespace=self.netns)

    def links(self, namespace: str) -> dict[str, NsLink]:
        return {
            link.name: NsLink(link.name, link.mtu or 0, link.up, link.mac, link.kind, link.index)
            for link in ip_lib.list_devices(namespace=namespace)
        }

    def create_port(
        self, namespace: str, device: str, host_device: str, mac: str, mtu: int
    ) -> None:
        pair = ip_lib.CreateVeth(
            name=host_device,
            peer=device,
            peer_namespace=namespace,
            mtu=mtu,
            peer_mtu=mtu,
            peer_mac=mac,
        )
        ip_lib.apply(pair, namespace=self.netns)
        sysctl.set_proxy_arp(namespace, device, False)
        with contextlib.suppress(FileNotFoundError):
            sysctl.set_accept_ra(namespace, device, 0)
        ip_lib.apply(ip_lib.SetLink(name=device, up=True), namespace=namespace)

    def set_mtu(self, namespace: str, device: str, host_device: str, mtu: int) -> None:
        ip_lib.apply(ip_lib.SetLink(name=device, mtu=mtu), namespace=namespace)
        ip_lib.apply(ip_lib.SetLink(name=host_device, mtu=mtu), namespace=self.netns)

    def set_up(self, namespace: str, device: str) -> None:
        ip_lib.apply(ip_lib.SetLink(name=device, up=True), namespace=namespace)

    def delete_host_link(self, host_device: str) -> None:
        ip_lib.apply(ip_lib.DeleteLink(name=host_device), namespace=self.netns, missing_ok=True)

    # -- addresses, routes, rules -------------------------------------------------------

    def addresses(
        self, namespace: str, links: Mapping[str, NsLink] | None = None
    ) -> dict[str, set[IPInterface]]:
        names = {link.index: link.name for link in links.values()} if links else None
        result: dict[str, set[IPInterface]] = {}
        for address in ip_lib.list_addresses(namespace=namespace, names=names):
            if address.scope == _RT_SCOPE_UNIVERSE:
                result.setdefault(address.device, set()).add(address.interface)
        return result

    def change_addresses(
        self,
        namespace: str,
        add: Sequence[tuple[str, IPInterface]],
        delete: Sequence[tuple[str, IPInterface]],
    ) -> None:
        batch = ip_lib.Batch(namespace)
        for device, interface in delete:
            batch.add(ip_lib.DeleteAddress(device=device, cidr=str(interface)))
        for device, interface in add:
            op = ip_lib.AddAddress(
                device=device, cidr=str(interface), nodad=interface.version == 6
            )
            batch.add(op)
        _raise_first(batch.send())

    def routes(
        self,
        namespace: str,
        tables: Sequence[int],
        families: Sequence[int],
        links: Mapping[str, NsLink] | None = None,
    ) -> set[RouteSpec]:
        wanted = set(tables)
        names = {link.index: link.name for link in links.values()} if links else None
        result: set[RouteSpec] = set()
        found: list[routing.Route] = []
        for family in sorted(set(families)):
            found += routing.list_routes(
                namespace=namespace, family=family, local=False, names=names
            )
        for route in found:
            if route.type != "unicast":
                continue
            mine = route.table in wanted or (
                route.table == routing.MAIN_TABLE
                and (route.gateway is not None or route.protocol == routing.PROTO_STATIC)
            )
            if mine:
                source = route.source if route.table in wanted else None
                result.add(
                    RouteSpec(route.table, route.destination, route.gateway, route.device, source)
                )
        return result

    def change_routes(
        self, namespace: str, add: Sequence[RouteSpec], delete: Sequence[RouteSpec]
    ) -> None:
        batch = ip_lib.Batch(namespace)
        for route in delete:
            batch.add(
                ip_lib.DeleteRoute(
                    destination=str(route.destination),
                    table=route.table,
                    gateway=_text(route.gateway),
                    device=route.device,
                )
            )
        for route in add:
            batch.add(
                ip_lib.AddRoute(
                    destination=str(route.destination),
                    table=route.table,
                    gateway=_text(route.gateway),
                    device=route.device,
                    source=_text(route.source),
                    scope="link" if route.gateway is None else None,
                    replace=True,
                )
            )
        _raise_first(batch.send())

    def rules(self, namespace: str, priorities: range) -> set[RuleSpec]:
        return {
            RuleSpec(rule.priority, rule.source, rule.table)
            for rule in routing.list_rules(namespace=namespace, family=4)
            if rule.priority in priorities and rule.source is not None
        }

    def change_rules(
        self, namespace: str, add: Sequence[RuleSpec], delete: Sequence[RuleSpec]
    ) -> None:
        batch = ip_lib.Batch(namespace)
        for rule in delete:
            batch.add(
                ip_lib.DeleteRule(
                    table=rule.table, priority=rule.priority, source=_text(rule.source)
                )
            )
        for rule in add:
            batch.add(
                ip_lib.AddRule(table=rule.table, priority=rule.priority, source=_text(rule.source))
            )
        _raise_first(batch.send())

    # -- nat, conntrack, neighbours -----------------------------------------------------

    def _manager(self, namespace: str) -> IptablesManager:
        with self._lock:
            manager = self._nat.get(namespace)
            if manager is None:
                if self.backend == "auto":
                    self.backend = iptables_backend.resolve("auto", self.netns, self.state_path)
                manager = IptablesManager(namespace, self.backend, self.verify_interval)
                self._nat[namespace] = manager
            return manager

    def set_nat(self, namespace: str, spec: NatSpec) -> None:
        with self._lock:
            pending = self._pending.pop(namespace, None)
        if pending is not None:
            try:
                pending.result()
            except Exception as exc:  # the apply reads (and reports) it again
                LOG.debug("Prefetching the nat table of %s failed: %s", namespace, exc)
        manager = self._manager(namespace)
        jumps = dict(spec.jumps)
        for builtin in _NAT_BUILTINS:
            if builtin in jumps:
                manager.set_jumps(4, "nat", builtin, jumps[builtin])
            else:
                manager.clear_jumps(4, "nat", builtin)
        result = manager.apply()
        if result.failed:
            raise NatApplyError(namespace, "; ".join(sorted(map(str, result.failed.values()))))

    def prefetch(self, namespaces: Sequence[str]) -> None:
        if len(namespaces) < 2:
            return
        netns.connect(namespaces)
        with self._lock:
            fresh = [ns for ns in namespaces if ns not in self._nat and ns not in self._pending]
            if len(fresh) < 2:
                return
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    _PREFETCH_WORKERS, thread_name_prefix="l3-nat-read"
                )
            pool = self._pool
        # the saves are subprocesses: a few side by side overlap their start-up, and the
        # routers' netlink reads go on meanwhile
        for ns in fresh:
            read = functools.partial(self._manager(ns).prefetch, [(4, "nat")])
            with self._lock:
                self._pending[ns] = pool.submit(read)

    def forget_nat(self, namespace: str) -> None:
        with self._lock:
            self._nat.pop(namespace, None)
            pending = self._pending.pop(namespace, None)
        if pending is not None:
            pending.cancel()

    def flush_conntrack(
        self, namespace: str, destinations: Sequence[IPAddress], sources: Sequence[IPAddress]
    ) -> int:
        filters = [conntrack.ConntrackFilter(family=a.version, dst=a) for a in destinations]
        filters += [conntrack.ConntrackFilter(family=a.version, src=a) for a in sources]
        if not netns.exists(namespace):
            return 0
        return conntrack.delete_entries(namespace, filters)

    def announce(self, namespace: str, device: str, address: IPAddress) -> None:
        # A veth whose peer is down sends into the void without an error: wait until the
        # L2 driver has brought the host end up (wired), or the packets are lost.
        host_device = c.TAP_PREFIX + device[len(c.ROUTER_INTERNAL_PREFIX) :]
        if not ip_lib.get_device(host_device, namespace=self.netns).up:
            raise PortNotWiredError(host_device)
        # an announcement that waited may be stale: the address moved on meanwhile
        present = ip_lib.list_addresses(namespace=namespace, device=device)
        if address not in {entry.interface.ip for entry in present}:
            LOG.debug("Not announcing %s on %s: no longer there", address, device)
            return
        if isinstance(address, ipaddress.IPv4Address):
            arp.send_gratuitous_arp(device, address, namespace=namespace)
        else:
            arp.send_unsolicited_na(device, address, namespace=namespace)
