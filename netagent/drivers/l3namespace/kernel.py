"""What the namespace L3 driver needs from the kernel layer, as one small interface.

:class:`RouterKernel` lists every kernel operation the driver makes; :mod:`.iplib_kernel`
implements it on :mod:`netagent.linux`. Unit tests run the driver against an in-memory
fake of it; functional tests against the real kernel. The instance is bound to the *host*
namespace, where the host ends (``tap...``) of the routers' veth pairs live (``None``: the
namespace the agent runs in); every other method names the router namespace it acts in.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Protocol

from netagent.linux.iptables import Rule

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclasses.dataclass(frozen=True, slots=True)
class NsLink:
    """A device inside a router namespace as the driver sees it."""

    name: str
    mtu: int
    up: bool
    mac: str | None
    kind: str | None
    index: int = 0


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class RouteSpec:
    """A route the driver owns: in the main table those with a ``gateway`` (default and
    extra routes; the kernel keeps the connected ones), in a policy table all of them.

    A route with a ``device`` and no ``gateway`` is on-link (scope link).
    """

    table: int
    destination: IPNetwork
    gateway: IPAddress | None = None
    device: str | None = None
    source: IPAddress | None = None


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class RuleSpec:
    """A policy routing rule: packets ``from source`` look up ``table``."""

    priority: int
    source: IPNetwork
    table: int


@dataclasses.dataclass(frozen=True, slots=True)
class NatSpec:
    """The nat table of one router namespace (IPv4): netagent's rules evaluated first in
    each built-in chain, by built-in chain name (``PREROUTING``, ``OUTPUT``,
    ``POSTROUTING``)."""

    jumps: tuple[tuple[str, tuple[Rule, ...]], ...]


class RouterKernel(Protocol):
    """Kernel operations of the namespace L3 driver.

    Every method raises the typed errors of :mod:`netagent.privileged.errors`
    (``NamespaceNotFound``, ``DeviceNotFound``, ``KernelError``...) or
    :class:`~netagent.common.exceptions.NetagentError` subclasses.
    """

    def namespaces(self, prefix: str) -> set[str]:
        """Names of the namespaces that start with ``prefix``."""

    def create_namespace(self, namespace: str) -> None:
        """Create a namespace with ``lo`` up and IPv4/IPv6 forwarding on."""

    def delete_namespace(self, namespace: str) -> None:
        """Delete a namespace (absent already is fine); its devices go with it."""

    def host_link_exists(self, host_device: str) -> bool:
        """Whether a device of that name exists in the host namespace (one lookup, not a
        dump: the host has a device per port)."""

    def links(self, namespace: str) -> dict[str, NsLink]:
        """Devices of a router namespace, by name."""

    def create_port(
        self, namespace: str, device: str, host_device: str, mac: str, mtu: int
    ) -> None:
        """Create a veth pair: ``host_device`` in the host namespace (down: the L2 driver
        wires it) and ``device`` in ``namespace`` with ``mac``, ``mtu``, IPv6 router
        advertisements ignored, proxy ARP off, up."""

    def set_mtu(self, namespace: str, device: str, host_device: str, mtu: int) -> None:
        """Change the MTU of both ends of a port's pair."""

    def set_up(self, namespace: str, device: str) -> None:
        """Bring a router-namespace device up."""

    def delete_host_link(self, host_device: str) -> None:
        """Delete a device of the host namespace (and its veth peer); gone is fine."""

    def addresses(
        self, namespace: str, links: Mapping[str, NsLink] | None = None
    ) -> dict[str, set[IPInterface]]:
        """Global-scope addresses of each device of a router namespace.

        :param links: the namespace's devices as :meth:`links` just returned them."""

    def change_addresses(
        self,
        namespace: str,
        add: Sequence[tuple[str, IPInterface]],
        delete: Sequence[tuple[str, IPInterface]],
    ) -> None:
        """Add and delete ``(device, address)`` pairs in one batch."""

    def routes(
        self,
        namespace: str,
        tables: Sequence[int],
        families: Sequence[int],
        links: Mapping[str, NsLink] | None = None,
    ) -> set[RouteSpec]:
        """The routes the driver owns of the address ``families`` (4, 6): in the main
        table those with a gateway and the on-link ones netagent added (not the kernel's
        connected routes), and every route of ``tables``.

        :param links: the namespace's devices as :meth:`links` just returned them (spares
            reading them again to name the routes' devices)."""

    def change_routes(
        self, namespace: str, add: Sequence[RouteSpec], delete: Sequence[RouteSpec]
    ) -> None:
        """Delete then add (add replaces a route with the same key)."""

    def rules(self, namespace: str, priorities: range) -> set[RuleSpec]:
        """IPv4 rules whose priority is in ``priorities``."""

    def change_rules(
        self, namespace: str, add: Sequence[RuleSpec], delete: Sequence[RuleSpec]
    ) -> None:
        """Delete then add policy routing rules."""

    def set_nat(self, namespace: str, spec: NatSpec) -> None:
        """Make the namespace's netagent nat rules ``spec`` (one restore; a no-op when
        what was applied, or what a previous agent left, already matches)."""

    def prefetch(self, namespaces: Sequence[str]) -> None:
        """Get ready to read many existing namespaces (an agent restart adopts every
        router at once): open their netlink sockets, and start reading the nat tables not
        read yet in the background, a few at a time; :meth:`set_nat` of such a namespace
        waits for its read instead of starting another."""

    def forget_nat(self, namespace: str) -> None:
        """Drop what is remembered about a namespace's nat table (it is being deleted)."""

    def flush_conntrack(
        self, namespace: str, destinations: Sequence[IPAddress], sources: Sequence[IPAddress]
    ) -> int:
        """Delete the namespace's conntrack entries whose original destination is one of
        ``destinations`` or original source one of ``sources``; :returns: how many."""

    def announce(self, namespace: str, device: str, address: IPAddress) -> None:
        """Send gratuitous ARP (IPv4) or unsolicited NA (IPv6) for ``address`` from
        ``device`` (blocks for the few packets' interval: call it off the pass). Sends
        nothing when the address is no longer on the device (a stale announcement).

        :raises NetagentError: nothing can be sent yet (the port's host end is not up:
            the L2 driver has not wired it) or the device is gone."""
