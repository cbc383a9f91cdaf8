"""Legacy routers: gateway and interface ports, extra routes, floating IPs."""

from __future__ import annotations

import dataclasses

from netagent.model import validate as v
from netagent.model.network import MTU_MAX, MTU_MIN, Subnet
from netagent.model.port import Port
from netagent.model.validate import IPAddress, IPNetwork, Reader

MAX_ROUTER_PORTS = 1024
MAX_ROUTES = 1024
MAX_FLOATING_IPS = 4096
FLOATINGIP_STATUSES = ("ACTIVE", "DOWN", "ERROR", "N/A")


@dataclasses.dataclass(frozen=True, slots=True)
class FloatingIP:
    """A floating IP: DNAT ``floating_ip_address`` → ``fixed_ip_address`` of ``port_id``.

    :ivar fixed_ip_address: set exactly when ``port_id`` is (associated), same family as
        the floating address.
    :ivar status: one of ACTIVE, DOWN, ERROR, N/A.
    """

    id: str
    floating_ip_address: IPAddress
    fixed_ip_address: IPAddress | None
    port_id: str | None
    router_id: str | None
    floating_network_id: str
    status: str = "DOWN"

    @classmethod
    def from_api(cls, data: object) -> FloatingIP:
        """Parse a Neutron API floating IP dict (or a ``sync_routers`` ``_floatingips`` entry).

        :raises ModelError: on any invalid field.
        """
        r = Reader.root(data, "floatingip")
        return cls.from_reader(r)

    @classmethod
    def from_reader(cls, r: Reader) -> FloatingIP:
        """Parse a floating IP from a reader (also used for entries nested in routers)."""
        floating = r.req("floating_ip_address", v.ip_address)
        fixed = r.opt("fixed_ip_address", v.ip_address, None)
        port_id = r.opt("port_id", v.uuid, None)
        if fixed is not None and fixed.version != floating.version:
            r.fail("fixed_ip_address", "address family differs from floating_ip_address")
        if (fixed is None) != (port_id is None):
            r.fail("port_id" if port_id is None else "fixed_ip_address", "set without the other")
        return cls(
            id=r.req("id", v.uuid),
            floating_ip_address=floating,
            fixed_ip_address=fixed,
            port_id=port_id,
            router_id=r.opt("router_id", v.uuid, None),
            floating_network_id=r.req("floating_network_id", v.uuid),
            status=r.opt("status", v.choice({s: s for s in FLOATINGIP_STATUSES}), "DOWN"),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """An extra route inside the router: ``destination`` via ``nexthop`` (same family)."""

    destination: IPNetwork
    nexthop: IPAddress

    @classmethod
    def from_reader(cls, r: Reader) -> Route:
        """Parse a ``routes`` entry.

        :raises ModelError: on any invalid field.
        """
        destination = r.req("destination", v.strict_cidr)
        nexthop = r.req("nexthop", v.ip_address)
        if nexthop.version != destination.version:
            r.fail("nexthop", "address family differs from destination")
        return cls(destination, nexthop)


@dataclasses.dataclass(frozen=True, slots=True)
class RouterPort:
    """A router's gateway or interface port with the subnets it has addresses on.

    :ivar mtu: the network's MTU as ``sync_routers`` reports it, ``None`` if not given.
    :ivar extra_subnets: the other subnets of the port's network (no address of the port
        in them; on-link routes on the gateway port).
    """

    port: Port
    subnets: tuple[Subnet, ...] = ()
    mtu: int | None = None
    extra_subnets: tuple[Subnet, ...] = ()

    @property
    def network_id(self) -> str:
        """The port's network."""
        return self.port.network_id

    @classmethod
    def from_reader(cls, r: Reader) -> RouterPort:
        """Parse a ``gw_port`` / ``_interfaces`` entry (API port + ``subnets``,
        ``extra_subnets`` and ``mtu``).

        :raises ModelError: on any invalid field.
        """
        port = Port.from_reader(r)

        def subnets(key: str) -> tuple[Subnet, ...]:
            return tuple(
                Subnet.from_router_port(r.sub(path, item), port.network_id)
                for path, item in r.items(key, max_len=MAX_ROUTER_PORTS)
            )

        own = subnets("subnets")
        extra = subnets("extra_subnets")
        for index, subnet in enumerate(extra):
            if any(subnet.id == s.id for s in own):
                r.fail(f"extra_subnets[{index}].id", "is one of the port's subnets")
        mtu = r.opt("mtu", v.int_range(MTU_MIN, MTU_MAX), None)
        return cls(port, own, mtu, extra)


@dataclasses.dataclass(frozen=True, slots=True)
class Router:
    """A legacy router.

    :ivar enable_snat: SNAT internal subnets to the gateway address.
    :ivar gateway: ``None`` without an external gateway.
    :ivar distributed: DVR router; netagent refuses to implement these (as ``ha``).
    :ivar external_network_id: ``external_gateway_info.network_id`` (or the gateway
        port's network).
    """

    id: str
    name: str = ""
    admin_state_up: bool = True
    enable_snat: bool = True
    gateway: RouterPort | None = None
    interfaces: tuple[RouterPort, ...] = ()
    routes: tuple[Route, ...] = ()
    floating_ips: tuple[FloatingIP, ...] = ()
    distributed: bool = False
    ha: bool = False
    external_network_id: str | None = None

    @property
    def ports(self) -> tuple[RouterPort, ...]:
        """Gateway (if any) then interfaces."""
        return ((self.gateway,) if self.gateway else ()) + self.interfaces

    @classmethod
    def from_sync(cls, data: object) -> Router:
        """Parse a router dict returned by ``sync_routers`` (``gw_port``, ``_interfaces``,
        ``_floatingips`` embedded).

        :raises ModelError: on any invalid field, nested ones named by path, e.g.
            ``_interfaces[0].fixed_ips[0].ip_address``.
        """
        r = Reader.root(data, "router")
        gateway = RouterPort.from_reader(r.child("gw_port")) if r.has("gw_port") else None
        interfaces = tuple(
            RouterPort.from_reader(r.sub(path, item))
            for path, item in r.items("_interfaces", max_len=MAX_ROUTER_PORTS)
        )
        floating_ips = tuple(
            FloatingIP.from_reader(r.sub(path, item))
            for path, item in r.items("_floatingips", max_len=MAX_FLOATING_IPS)
        )
        return cls._build(r, gateway, interfaces, floating_ips)

    @classmethod
    def from_api(
        cls,
        data: object,
        *,
        gateway: RouterPort | None = None,
        interfaces: tuple[RouterPort, ...] = (),
        floating_ips: tuple[FloatingIP, ...] = (),
    ) -> Router:
        """Parse a Neutron API router dict; its ports and floating IPs are given separately
        (the API links them through the ports' ``device_id`` and the FIPs' ``router_id``).

        :raises ModelError: on any invalid field.
        """
        return cls._build(Reader.root(data, "router"), gateway, interfaces, floating_ips)

    @classmethod
    def _build(
        cls,
        r: Reader,
        gateway: RouterPort | None,
        interfaces: tuple[RouterPort, ...],
        floating_ips: tuple[FloatingIP, ...],
    ) -> Router:
        router_id = r.req("id", v.uuid)
        info = r.opt_child("external_gateway_info")
        external = info.opt("network_id", v.uuid, None) if info else None
        if gateway is not None:
            if external is not None and external != gateway.network_id:
                r.fail("external_gateway_info.network_id", "differs from the gateway port's")
            external = gateway.network_id
        snat_default = info.opt("enable_snat", v.boolean, True) if info else True
        for index, fip in enumerate(floating_ips):
            if fip.router_id not in (None, router_id):
                r.fail(f"_floatingips[{index}].router_id", "names another router")
        return cls(
            id=router_id,
            name=r.opt("name", v.name, ""),
            admin_state_up=r.opt("admin_state_up", v.boolean, True),
            enable_snat=r.opt("enable_snat", v.boolean, snat_default),
            gateway=gateway,
            interfaces=interfaces,
            routes=tuple(
                Route.from_reader(r.sub(path, item))
                for path, item in r.items("routes", max_len=MAX_ROUTES)
            ),
            floating_ips=floating_ips,
            distributed=r.opt("distributed", v.boolean, False),
            ha=r.opt("ha", v.boolean, False),
            external_network_id=external,
        )
