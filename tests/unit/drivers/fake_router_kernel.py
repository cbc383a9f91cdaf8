"""An in-memory :class:`~netagent.drivers.l3namespace.kernel.RouterKernel` for unit tests.

It keeps namespaces, devices, addresses, routes, rules and nat specs as plain data and
counts every change, so a test can assert that a second pass changed nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from netagent.drivers.l3namespace.kernel import (
    IPAddress,
    IPInterface,
    NatSpec,
    NsLink,
    RouteSpec,
    RuleSpec,
)
from netagent.privileged.errors import KernelError, NamespaceNotFound


@dataclasses.dataclass
class FakeNamespace:
    links: dict[str, NsLink] = dataclasses.field(default_factory=dict)
    addresses: dict[str, set[IPInterface]] = dataclasses.field(default_factory=dict)
    routes: set[RouteSpec] = dataclasses.field(default_factory=set)
    rules: set[RuleSpec] = dataclasses.field(default_factory=set)
    nat: NatSpec | None = None


class FakeRouterKernel:
    def __init__(self) -> None:
        self.ns: dict[str, FakeNamespace] = {}
        self.host: dict[str, tuple[str, str]] = {}  # host device -> (namespace, peer)
        self.changes: list[str] = []
        self.flushed: list[tuple[str, list[IPAddress], list[IPAddress]]] = []
        self.announced: list[tuple[str, str, IPAddress]] = []
        #: route destinations the "kernel" refuses
        self.refuse_routes: set[str] = set()

    def _get(self, namespace: str) -> FakeNamespace:
        if namespace not in self.ns:
            raise NamespaceNotFound(namespace)
        return self.ns[namespace]

    def namespaces(self, prefix: str) -> set[str]:
        return {n for n in self.ns if n.startswith(prefix)}

    def create_namespace(self, namespace: str) -> None:
        assert namespace not in self.ns
        self.ns[namespace] = FakeNamespace()
        self.changes.append(f"create {namespace}")

    def delete_namespace(self, namespace: str) -> None:
        self.ns.pop(namespace, None)
        self.host = {h: v for h, v in self.host.items() if v[0] != namespace}
        self.changes.append(f"delete {namespace}")

    def host_link_exists(self, host_device: str) -> bool:
        return host_device in self.host

    def links(self, namespace: str) -> dict[str, NsLink]:
        return dict(self._get(namespace).links)

    def create_port(
        self, namespace: str, device: str, host_device: str, mac: str, mtu: int
    ) -> None:
        ns = self._get(namespace)
        assert device not in ns.links and host_device not in self.host
        ns.links[device] = NsLink(device, mtu, True, mac, "veth")
        self.host[host_device] = (namespace, device)
        self.changes.append(f"port {device}")

    def set_mtu(self, namespace: str, device: str, host_device: str, mtu: int) -> None:
        ns = self._get(namespace)
        ns.links[device] = dataclasses.replace(ns.links[device], mtu=mtu)
        self.changes.append(f"mtu {device} {mtu}")

    def set_up(self, namespace: str, device: str) -> None:
        ns = self._get(namespace)
        ns.links[device] = dataclasses.replace(ns.links[device], up=True)
        self.changes.append(f"up {device}")

    def delete_host_link(self, host_device: str) -> None:
        entry = self.host.pop(host_device, None)
        if entry is not None and entry[0] in self.ns:
            ns = self.ns[entry[0]]
            ns.links.pop(entry[1], None)
            ns.addresses.pop(entry[1], None)
            ns.routes = {r for r in ns.routes if r.device != entry[1]}
        self.changes.append(f"delete {host_device}")

    def addresses(
        self, namespace: str, links: Mapping[str, NsLink] | None = None
    ) -> dict[str, set[IPInterface]]:
        return {d: set(a) for d, a in self._get(namespace).addresses.items() if a}

    def change_addresses(
        self,
        namespace: str,
        add: Sequence[tuple[str, IPInterface]],
        delete: Sequence[tuple[str, IPInterface]],
    ) -> None:
        ns = self._get(namespace)
        for device, iface in delete:
            ns.addresses[device].discard(iface)
        for device, iface in add:
            assert device in ns.links
            ns.addresses.setdefault(device, set()).add(iface)
        self.changes.append(f"addresses {namespace}")

    def routes(
        self,
        namespace: str,
        tables: Sequence[int],
        families: Sequence[int],
        links: Mapping[str, NsLink] | None = None,
    ) -> set[RouteSpec]:
        return {r for r in self._get(namespace).routes if r.destination.version in families}

    def change_routes(
        self, namespace: str, add: Sequence[RouteSpec], delete: Sequence[RouteSpec]
    ) -> None:
        ns = self._get(namespace)
        for route in add:
            if str(route.destination) in self.refuse_routes:
                raise KernelError(22, "add_route", str(route.destination), namespace)
        ns.routes -= set(delete)
        ns.routes |= set(add)
        self.changes.append(f"routes {namespace}")

    def rules(self, namespace: str, priorities: range) -> set[RuleSpec]:
        return set(self._get(namespace).rules)

    def change_rules(
        self, namespace: str, add: Sequence[RuleSpec], delete: Sequence[RuleSpec]
    ) -> None:
        ns = self._get(namespace)
        ns.rules -= set(delete)
        ns.rules |= set(add)
        self.changes.append(f"rules {namespace}")

    def set_nat(self, namespace: str, spec: NatSpec) -> None:
        ns = self._get(namespace)
        if ns.nat != spec:
            ns.nat = spec
            self.changes.append(f"nat {namespace}")

    def prefetch(self, namespaces: Sequence[str]) -> None:
        pass

    def forget_nat(self, namespace: str) -> None:
        pass

    def flush_conntrack(
        self, namespace: str, destinations: Sequence[IPAddress], sources: Sequence[IPAddress]
    ) -> int:
        self.flushed.append((namespace, list(destinations), list(sources)))
        return 0

    def announce(self, namespace: str, device: str, address: IPAddress) -> None:
        self.announced.append((namespace, device, address))
