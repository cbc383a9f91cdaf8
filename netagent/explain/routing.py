"""What a router does to a packet: the hop through a ``qrouter-`` namespace.

The router's layout is computed with the namespace L3 driver's own code
(:func:`~netagent.drivers.l3namespace.layout.compute`) from the router in the snapshot,
so the routes, policy rules and nat rules evaluated here are the ones the driver applies.
The kernel's order is followed: nat ``PREROUTING`` (floating IP DNAT), the routing
decision (policy rules by priority, then the longest prefix of the table they name, the
main table last), nat ``POSTROUTING`` (first matching rule: untranslated between internal
subnets, the floating IP's SNAT, the gateway's SNAT).
"""

from __future__ import annotations

import dataclasses

from netagent.drivers.l3namespace import layout as router_layout
from netagent.drivers.l3namespace.kernel import RouteSpec
from netagent.explain.iptables_eval import Context, match
from netagent.explain.packet import IPAddress, Packet
from netagent.explain.snapshot import Snapshot
from netagent.linux.iptables import ACCEPT, DNAT, SNAT
from netagent.linux.iptables.rules import Rule
from netagent.model.port import Port
from netagent.model.router import Router
from netagent.model.state import DesiredState

MAIN_TABLE = 254


@dataclasses.dataclass(frozen=True)
class Routed:
    """The router hop of a packet.

    :ivar router: the router the packet's network sends it to (first interface on it)
    :ivar host: the host of the router's ports (``None``: unbound)
    :ivar in_device: the router device on the source network (``qr-``)
    :ivar out_device: the device the packet leaves by; ``None`` when the router has no
        route (then ``drop`` says why)
    :ivar out_network: the network of ``out_device``
    :ivar nexthop: the gateway of the route taken, ``None`` when on-link
    :ivar packet: the packet as it leaves (after DNAT and SNAT)
    :ivar nat: what the nat table did, in order (readable)
    """

    router: Router
    host: str | None
    in_device: router_layout.Device
    out_device: router_layout.Device | None
    out_network: str | None
    nexthop: IPAddress | None
    packet: Packet
    nat: tuple[str, ...]
    drop: str | None = None

    @property
    def namespace(self) -> str:
        return f"qrouter-{self.router.id}"


def router_for(snap: Snapshot, port: Port) -> Router | None:
    """The router a packet from ``port`` to another subnet goes to: the one whose interface
    on the port's network holds that subnet's gateway address, else any router there."""
    on_network = [
        r
        for r in snap.routers.values()
        if any(i.network_id == port.network_id for i in r.interfaces)
    ]
    for router in sorted(on_network, key=lambda r: r.id):
        for rp in router.interfaces:
            gateways = {s.gateway_ip for s in rp.subnets}
            if rp.network_id == port.network_id and gateways & set(rp.port.addresses):
                return router
    return min(on_network, key=lambda r: r.id) if on_network else None


def _table_route(routes: frozenset[RouteSpec], table: int, dst: IPAddress) -> RouteSpec | None:
    found = [
        r
        for r in routes
        if r.table == table and r.destination.version == dst.version and dst in r.destination
    ]
    return max(found, key=lambda r: r.destination.prefixlen, default=None)


def _connected(devices: tuple[router_layout.Device, ...], dst: IPAddress) -> RouteSpec | None:
    """The kernel's connected routes (the main table's on-link prefixes)."""
    found = [
        RouteSpec(MAIN_TABLE, iface.network, None, d.name)
        for d in devices
        for iface in d.addresses
        if iface.version == dst.version and iface.network.prefixlen < iface.max_prefixlen
        if dst in iface.network
    ]
    return max(found, key=lambda r: r.destination.prefixlen, default=None)


def lookup(
    spec: router_layout.RouterLayout, src: IPAddress, dst: IPAddress
) -> tuple[RouteSpec | None, int]:
    """The route the namespace picks for ``src`` -> ``dst`` and the table it is in."""
    for rule in sorted(spec.rules, key=lambda r: r.priority):
        if rule.source.version == src.version and src in rule.source:
            route = _table_route(spec.routes, rule.table, dst)
            if route is not None:
                return route, rule.table
    candidates = [
        r for r in (_table_route(spec.routes, MAIN_TABLE, dst), _connected(spec.devices, dst)) if r
    ]
    best = max(candidates, key=lambda r: r.destination.prefixlen, default=None)
    return best, MAIN_TABLE


def _first(rules: tuple[Rule, ...], pkt: Packet, ctx: Context) -> Rule | None:
    return next((r for r in rules if all(match(m, pkt, ctx, 0, {}) for m in r.matches)), None)


def route(snap: Snapshot, port: Port, pkt: Packet) -> Routed | None:
    """The router hop of ``pkt`` from ``port`` to an address off its network; ``None`` when
    no router has an interface on the port's network.

    :raises ValueError: the router cannot be laid out (the driver refuses it too)
    """
    router = router_for(snap, port)
    if router is None:
        return None
    spec = router_layout.compute(router, DesiredState.build())
    in_device = next(
        d for d in spec.devices if not d.gateway and _network(router, d.port_id) == port.network_id
    )
    host = next((rp.port.host for rp in router.interfaces if rp.port.host), None)
    nat = dict(spec.nat.jumps)
    notes: list[str] = []
    dnated = False
    dnat = _first(nat.get("PREROUTING", ()), pkt, Context(in_device.name, "", ""))
    if dnat is not None and isinstance(dnat.target, DNAT):
        notes.append(f"DNAT {pkt.dst} -> {dnat.target.to} (floating IP)")
        pkt = dataclasses.replace(pkt, dst=dnat.target.to)
        dnated = True
    found, table = lookup(spec, pkt.src, pkt.dst)
    if found is None or found.device is None:
        return Routed(
            router, host, in_device, None, None, None, pkt, tuple(notes),
            drop=f"router {router.id} has no route to {pkt.dst}",
        )  # fmt: skip
    out = next(d for d in spec.devices if d.name == found.device)
    ctx = Context(found.device, "", "", ct_state="DNAT" if dnated else "NEW")
    post = _first(nat.get("POSTROUTING", ()), pkt, ctx)
    if post is not None and isinstance(post.target, SNAT):
        notes.append(f"SNAT {pkt.src} -> {post.target.to}")
        pkt = dataclasses.replace(pkt, src=post.target.to)
    elif post is None or post.target == ACCEPT:
        notes.append("no address translation")
    where = f"table {table}" if table != MAIN_TABLE else "main table"
    via = f"via {found.gateway}" if found.gateway else "on-link"
    notes.insert(0, f"route {found.destination} {via} ({where})")
    return Routed(
        router, host, in_device, out, _network(router, out.port_id), found.gateway, pkt,
        tuple(notes),
    )  # fmt: skip


def _network(router: Router, port_id: str) -> str:
    return next(rp.network_id for rp in router.ports if rp.port.id == port_id)
