"""What one router should look like, computed from the model: pure functions, no I/O.

A :class:`RouterLayout` lists the router's devices with their addresses, the routes and
policy rules it owns, its floating IP translations and its nat rules. The driver diffs it
against what the kernel has; the unit tests check it by value.

Numbers (doc/routers.md):

* each IPv4 external subnet the gateway port has an address on gets routing table
  ``TABLE_BASE + i`` (``i``: its rank among those subnets ordered by id); the table holds
  the router's on-link routes, its extra routes and a default route via that subnet's
  gateway;
* rule ``from <floating IP>`` and ``from <its fixed IP>`` (priority ``FLOATING_PRIORITY``)
  and ``from <gateway address in the subnet>`` (``GATEWAY_PRIORITY``) look up that table,
  so each floating IP's traffic leaves through the gateway of the floating IP's own subnet;
* the main table has the default route via the first gateway subnet's gateway (the subnet
  of the gateway port's first IPv4 address), the extra routes and an on-link route on the
  gateway port to each other subnet of the external network (``extra_subnets``), which
  every IPv4 policy table holds too.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable

from netagent.common import names
from netagent.drivers.l3namespace.kernel import (
    IPAddress,
    IPInterface,
    IPNetwork,
    NatSpec,
    RouteSpec,
    RuleSpec,
)
from netagent.linux.iptables import ACCEPT, DNAT, SNAT, Conntrack, DstNet, OutIface, Rule, SrcNet
from netagent.model import DesiredState, Router
from netagent.model.router import RouterPort

TABLE_BASE = 1000
#: at most this many policy tables per router (one per external IPv4 subnet)
MAX_TABLES = 1024
FLOATING_PRIORITY = 1000
GATEWAY_PRIORITY = 2000
#: the rule priorities the driver owns in a router namespace
OWNED_PRIORITIES = range(FLOATING_PRIORITY, GATEWAY_PRIORITY + 1)
DEFAULT_MTU = 1500
_V4_ANY = ipaddress.IPv4Network("0.0.0.0/0")
_V6_ANY = ipaddress.IPv6Network("::/0")


class LayoutError(ValueError):
    """The router cannot be built as given (the message says why)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Device:
    """One router port: ``name`` in the router namespace, ``host_name`` on the host."""

    port_id: str
    name: str
    host_name: str
    mac: str
    mtu: int
    gateway: bool
    addresses: tuple[IPInterface, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class FloatingNat:
    """A floating IP translated to a fixed IP."""

    floating_ip_id: str
    floating: IPAddress
    fixed: IPAddress


@dataclasses.dataclass(frozen=True, slots=True)
class RouterLayout:
    """Everything the driver builds for one router."""

    router_id: str
    namespace: str
    devices: tuple[Device, ...]
    routes: frozenset[RouteSpec]
    tables: tuple[int, ...]
    rules: frozenset[RuleSpec]
    floating: tuple[FloatingNat, ...]
    snat_address: IPAddress | None
    nat: NatSpec

    def device(self, name: str) -> Device | None:
        return next((d for d in self.devices if d.name == name), None)

    @property
    def gateway(self) -> Device | None:
        return next((d for d in self.devices if d.gateway), None)


def _interfaces(rp: RouterPort) -> tuple[IPInterface, ...]:
    result: list[IPInterface] = []
    for fixed in rp.port.fixed_ips:
        subnet = next(
            (s for s in rp.subnets if s.id == fixed.subnet_id or fixed.ip_address in s.cidr),
            None,
        )
        if subnet is None or fixed.ip_address not in subnet.cidr:
            raise LayoutError(
                f"port {rp.port.id}: no subnet of the router port contains {fixed.ip_address}"
            )
        result.append(ipaddress.ip_interface(f"{fixed.ip_address}/{subnet.cidr.prefixlen}"))
    return tuple(result)


def _mtu(rp: RouterPort, state: DesiredState) -> int:
    if rp.mtu is not None:
        return rp.mtu
    network = state.networks.get(rp.network_id)
    return network.mtu if network is not None else DEFAULT_MTU


def compute(router: Router, state: DesiredState) -> RouterLayout:
    """The layout of ``router``.

    :raises LayoutError: a router port address outside its subnets, too many external
        subnets, an extra route of another family than any router address.
    """
    if router.distributed or router.ha:
        raise LayoutError("distributed and HA routers are not implemented by this driver")
    namespace = names.router_namespace(router.id)
    devices: list[Device] = []
    gateway_subnets: list[tuple[IPNetwork, IPInterface, IPAddress | None, str]] = []
    gw = router.gateway
    if gw is not None:
        addresses = _interfaces(gw)
        devices.append(
            Device(
                gw.port.id,
                names.router_gateway_device(gw.port.id),
                gw.port.device_name,
                gw.port.mac_address,
                _mtu(gw, state),
                True,
                addresses,
            )
        )
        for iface in addresses:
            subnet = next(s for s in gw.subnets if iface.ip in s.cidr)
            gateway_subnets.append((subnet.cidr, iface, subnet.gateway_ip, subnet.id))
    for rp in sorted(router.interfaces, key=lambda p: p.port.id):
        devices.append(
            Device(
                rp.port.id,
                names.router_internal_device(rp.port.id),
                rp.port.device_name,
                rp.port.mac_address,
                _mtu(rp, state),
                False,
                _interfaces(rp),
            )
        )
    gw_device = devices[0].name if gw is not None else None
    floating = tuple(
        sorted(
            (
                FloatingNat(f.id, f.floating_ip_address, f.fixed_ip_address)
                for f in router.floating_ips
                if f.fixed_ip_address is not None and f.floating_ip_address.version == 4
            ),
            key=lambda f: int(f.floating),
        )
    )
    if gw_device is None:
        floating = ()
    elif floating:
        # the floating addresses live on the gateway device as /32s
        extra = tuple(ipaddress.ip_interface(f"{f.floating}/32") for f in floating)
        own = {a.ip for a in devices[0].addresses}
        devices[0] = dataclasses.replace(
            devices[0],
            addresses=devices[0].addresses + tuple(a for a in extra if a.ip not in own),
        )

    # routes and policy tables
    v4_gateways = [g for g in gateway_subnets if g[0].version == 4]
    by_id = sorted(v4_gateways, key=lambda g: g[3])
    if len(by_id) > MAX_TABLES:
        raise LayoutError(f"more than {MAX_TABLES} external IPv4 subnets")
    table_of = {g[0]: TABLE_BASE + i for i, g in enumerate(by_id)}
    onlink: list[RouteSpec] = []
    for device in devices:
        for iface in device.addresses:
            if iface.version == 4 and iface.network.prefixlen < 32:
                onlink.append(RouteSpec(0, iface.network, None, device.name, iface.ip))
    extra_routes = [
        RouteSpec(0, route.destination, route.nexthop, _nexthop_device(route.nexthop, devices))
        for route in router.routes
    ]
    extra_onlink = _extra_subnet_routes(router, gw_device, devices, extra_routes)
    routes: set[RouteSpec] = {dataclasses.replace(r, table=254) for r in extra_routes}
    routes.update(dataclasses.replace(r, table=254) for r in extra_onlink)
    primary = v4_gateways[0] if v4_gateways else None
    if primary is not None and primary[2] is not None:
        routes.add(RouteSpec(254, _V4_ANY, primary[2], gw_device))
    v6_gateway = next((g for g in gateway_subnets if g[0].version == 6 and g[2]), None)
    if v6_gateway is not None and v6_gateway[2] is not None:
        routes.add(RouteSpec(254, _V6_ANY, v6_gateway[2], gw_device))
    rules: set[RuleSpec] = set()
    for cidr, iface, gateway_ip, _ in v4_gateways:
        table = table_of[cidr]
        seen: set[IPNetwork] = set()
        for route in onlink:
            if route.destination not in seen:
                seen.add(route.destination)
                routes.add(dataclasses.replace(route, table=table))
        routes.update(
            dataclasses.replace(r, table=table)
            for r in extra_routes + extra_onlink
            if r.destination.version == 4
        )
        if gateway_ip is not None:
            routes.add(RouteSpec(table, _V4_ANY, gateway_ip, gw_device))
        rules.add(RuleSpec(GATEWAY_PRIORITY, _host(iface.ip), table))
    for fip in floating:
        home = next((n for n in table_of if fip.floating in n), None)
        if home is None:
            continue  # a floating IP outside every gateway subnet follows the main table
        rules.add(RuleSpec(FLOATING_PRIORITY, _host(fip.floating), table_of[home]))
        rules.add(RuleSpec(FLOATING_PRIORITY, _host(fip.fixed), table_of[home]))
    snat_address = primary[1].ip if primary is not None else None
    internal = [
        iface.network
        for d in devices
        if not d.gateway
        for iface in d.addresses
        if iface.version == 4
    ]
    nat = nat_spec(gw_device, floating, internal, snat_address, router.enable_snat)
    return RouterLayout(
        router_id=router.id,
        namespace=namespace,
        devices=tuple(devices),
        routes=frozenset(routes),
        tables=tuple(sorted(table_of.values())),
        rules=frozenset(rules),
        floating=floating,
        snat_address=snat_address if router.enable_snat else None,
        nat=nat,
    )


def _extra_subnet_routes(
    router: Router, gw_device: str | None, devices: Iterable[Device], extra: list[RouteSpec]
) -> list[RouteSpec]:
    """On-link routes through the gateway port to the other subnets of the external
    network (``extra_subnets``), as Neutron's L3 agent adds them: hosts there are reached
    directly, not through the upstream gateway. A subnet the router is connected to (the
    kernel's route) or that an extra route names is left to those."""
    if router.gateway is None or gw_device is None:
        return []
    taken = {iface.network for d in devices for iface in d.addresses}
    taken |= {r.destination for r in extra}
    return [
        RouteSpec(0, subnet.cidr, None, gw_device)
        for subnet in sorted(router.gateway.extra_subnets, key=lambda s: s.id)
        if subnet.cidr not in taken
    ]


def _nexthop_device(nexthop: IPAddress, devices: Iterable[Device]) -> str:
    for device in devices:
        for iface in device.addresses:
            if iface.network.prefixlen < iface.max_prefixlen and nexthop in iface.network:
                return device.name
    raise LayoutError(f"extra route nexthop {nexthop} is on none of the router's subnets")


def _host(address: IPAddress) -> IPNetwork:
    return ipaddress.ip_network(f"{address}/{address.max_prefixlen}")


def nat_spec(
    gateway_device: str | None,
    floating: Iterable[FloatingNat],
    internal: Iterable[IPNetwork],
    snat_address: IPAddress | None,
    enable_snat: bool,
) -> NatSpec:
    """The nat rules of a router (IPv4).

    PREROUTING and OUTPUT: ``-d <floating>/32 -j DNAT --to-destination <fixed>``.
    POSTROUTING, in order: traffic that leaves through an internal port and was not
    DNATed is accepted untranslated (between internal subnets); ``-s <fixed>/32 -j SNAT
    --to-source <floating>`` per floating IP (outbound and hairpin); with SNAT enabled,
    ``-s <internal subnet> -o qg- -j SNAT --to-source <gateway address>``; and hairpin:
    a connection from an internal subnet DNATed to another VM's fixed IP is SNATed to the
    gateway address, so the reply comes back through the router.
    """
    floating = list(floating)
    internal = sorted(set(internal), key=lambda n: (int(n.network_address), n.prefixlen))
    if gateway_device is None:
        return NatSpec(())
    dnat = tuple(Rule((DstNet(_host(f.floating)),), DNAT(f.fixed)) for f in floating)
    post: list[Rule] = [
        Rule(
            (OutIface(gateway_device, negate=True), Conntrack(frozenset({"DNAT"}), negate=True)),
            ACCEPT,
        )
    ]
    post += [Rule((SrcNet(_host(f.fixed)),), SNAT(f.floating)) for f in floating]
    if snat_address is not None and snat_address.version == 4:
        if enable_snat:
            post += [
                Rule((SrcNet(net), OutIface(gateway_device)), SNAT(snat_address))
                for net in internal
            ]
        post += [
            Rule((SrcNet(net), Conntrack(frozenset({"DNAT"}))), SNAT(snat_address))
            for net in internal
        ]
    return NatSpec((("PREROUTING", dnat), ("OUTPUT", dnat), ("POSTROUTING", tuple(post))))
