"""Typed netlink operations: the one definition of every change netagent makes with netlink.

Each operation is a frozen dataclass whose fields are primitives only (``str``, ``int``,
``bool``, ``None``), so that a privsep daemon could carry it (:meth:`Op.primitives` and
:func:`from_primitives` are the two directions). Constructing one validates every field
(names, addresses, ranges, types) and raises
:class:`~netagent.privileged.errors.InvalidArgument`; an operation that exists is valid, so
a batch never sends part of a list and then finds a bad entry. Unknown fields are refused:
by the constructor (``TypeError``, which mypy reports first) and by :func:`from_primitives`
(``InvalidArgument``).

:meth:`Op.build` turns an operation into rtnetlink requests
(:mod:`netagent.privileged.nlbuild` has the message helpers); operations are executed by
:func:`netagent.privileged.batch.execute`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from typing import Any, ClassVar

from netagent.privileged import nlbuild as b
from netagent.privileged import nlcodec as nl
from netagent.privileged import validate as v
from netagent.privileged.errors import InvalidArgument
from netagent.privileged.nlsocket import Request

ROUTE_TYPES = {
    "unicast": nl.RTN_UNICAST,
    "blackhole": nl.RTN_BLACKHOLE,
    "unreachable": nl.RTN_UNREACHABLE,
    "prohibit": nl.RTN_PROHIBIT,
    "local": nl.RTN_LOCAL,
}
SCOPES = {"universe": nl.RT_SCOPE_UNIVERSE, "link": nl.RT_SCOPE_LINK, "host": nl.RT_SCOPE_HOST}
_RT_SCOPE_NOWHERE = 255


class Op:
    """Base of every operation.

    :cvar kind: ``"link"`` for device operations, else the entry kind (address, route,
        rule, neighbour, fdb): selects the error translation.
    :cvar invalidates: after it, a name's cached ifindex is no longer valid.
    """

    kind: ClassVar[str] = "link"
    invalidates: ClassVar[bool] = False
    __slots__ = ()

    @property
    def opname(self) -> str:
        """``SetLink`` -> ``set_link`` (for logs and errors)."""
        return _snake(type(self).__name__)

    @property
    def target(self) -> str:
        """The resource the operation is about, for logs and errors."""
        return str(getattr(self, "name", ""))

    def build(self, ctx: b.Context) -> b.Built:
        """The rtnetlink requests of this operation (``ctx`` resolves names to ifindexes)."""
        raise NotImplementedError

    def primitives(self) -> dict[str, Any]:
        """``{"op": "set_link", field: value, ...}``, the form a privsep call would carry."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return {"op": self.opname, **fields}


def _snake(name: str) -> str:
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in name).lstrip("_")


def _opt_int(value: object, low: int, high: int, field: str) -> None:
    if value is not None:
        v.int_range(value, low, high, field)


def _bool(value: object, field: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, bool):
        raise InvalidArgument(field, value, "bool expected")


def _opt_dev(value: object, field: str) -> None:
    if value is not None:
        v.device_name(value, field)


def _opt_mac(value: object, field: str) -> None:
    if value is not None:
        _mac(value, field)


def _mac(value: object, field: str) -> None:
    if v.mac_address(value, field) != value:
        raise InvalidArgument(field, value, "lower-case aa:bb:cc:dd:ee:ff expected")


def _address(value: object, field: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if not isinstance(value, str):
        raise InvalidArgument(field, value, "IP address expected")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise InvalidArgument(field, value, "IP address expected") from None


def _network(value: object, field: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if not isinstance(value, str):
        raise InvalidArgument(field, value, "network/prefixlen expected")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise InvalidArgument(field, value, "network/prefixlen expected") from None


def _interface(value: object, field: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    if not isinstance(value, str) or "/" not in value:
        raise InvalidArgument(field, value, "address/prefixlen expected")
    try:
        return ipaddress.ip_interface(value)
    except ValueError:
        raise InvalidArgument(field, value, "address/prefixlen expected") from None


def _link_attrs(
    ctx: b.Context, name: str, mtu: int | None, mac: str | None, master: str | None
) -> b.Attrs:
    attrs: b.Attrs = [("IFLA_IFNAME", name)]
    if mtu is not None:
        attrs.append(("IFLA_MTU", mtu))
    if mac is not None:
        attrs.append(("IFLA_ADDRESS", mac))
    if master:
        attrs.append(("IFLA_MASTER", ctx.resolve(master)))
    return attrs


def _new_link(
    ctx: b.Context,
    op: _NewLink,
    linkinfo: tuple[Any, ...],
    extra: b.Attrs | None = None,
) -> b.Built:
    attrs = _link_attrs(ctx, op.name, op.mtu, op.mac, op.master)
    attrs.extend(extra or [])
    attrs.append(linkinfo)
    msg = b.ifinfo(attrs, op.up or None)
    return [(op.kind, op.name, Request(nl.RTM_NEWLINK, b.CREATE_EXCL, msg))]


# --- devices -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _NewLink(Op):
    """Fields every created device has."""

    invalidates: ClassVar[bool] = True
    name: str
    mtu: int | None = None
    mac: str | None = None
    master: str | None = None
    up: bool = False

    def __post_init__(self) -> None:
        v.device_name(self.name, "name")
        _opt_int(self.mtu, 68, 65535, "mtu")
        _opt_mac(self.mac, "mac")
        _opt_dev(self.master, "master")
        _bool(self.up, "up")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CreateVeth(_NewLink):
    """A veth pair ``name``/``peer``; the peer may be created straight in another namespace.

    ``peer_up`` needs the peer in the same namespace (the kernel refuses IFF_UP on the
    peer at creation, so it is a second request, which can only address this namespace).
    """

    peer: str
    peer_namespace: str | None = None
    peer_mtu: int | None = None
    peer_mac: str | None = None
    peer_up: bool = False

    def __post_init__(self) -> None:
        _NewLink.__post_init__(self)
        v.device_name(self.peer, "peer")
        if self.peer_namespace is not None:
            v.namespace_name(self.peer_namespace, "peer_namespace")
        _opt_int(self.peer_mtu, 68, 65535, "peer_mtu")
        _opt_mac(self.peer_mac, "peer_mac")
        _bool(self.peer_up, "peer_up")
        if self.peer_up and self.peer_namespace is not None:
            raise InvalidArgument("peer_up", True, "peer is in another namespace")

    def build(self, ctx: b.Context) -> b.Built:
        peer_attrs = _link_attrs(ctx, self.peer, self.peer_mtu, self.peer_mac, None)
        if self.peer_namespace is not None:
            peer_attrs.append(("IFLA_NET_NS_FD", ctx.netns_fd(self.peer_namespace)))
        peer = {**b.ifinfo_fields(None), "attrs": peer_attrs}
        built = _new_link(ctx, self, b.linkinfo("veth", [("VETH_INFO_PEER", peer)]))
        if self.peer_up:
            msg = b.ifinfo([("IFLA_IFNAME", self.peer)], True)
            built.append(("link", self.peer, Request(nl.RTM_SETLINK, 0, msg)))
        return built


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CreateBridge(_NewLink):
    """A Linux bridge, STP off; ``ageing_time`` never 0 (a hub), in seconds."""

    ageing_time: int = 300
    forward_delay: int = 0

    def __post_init__(self) -> None:
        _NewLink.__post_init__(self)
        v.int_range(self.ageing_time, 10, 1000000, "ageing_time")
        v.int_range(self.forward_delay, 0, 30, "forward_delay")

    def build(self, ctx: b.Context) -> b.Built:
        data: b.Attrs = [
            ("IFLA_BR_FORWARD_DELAY", self.forward_delay * b.USER_HZ),
            ("IFLA_BR_AGEING_TIME", self.ageing_time * b.USER_HZ),
            ("IFLA_BR_STP_STATE", 0),
        ]
        return _new_link(ctx, self, b.linkinfo("bridge", data))


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CreateVxlan(_NewLink):
    """A VXLAN device; ``group`` None means FDB-driven unicast."""

    vni: int
    local: str | None = None
    group: str | None = None
    port: int = 4789
    learning: bool = False
    underlay: str | None = None
    ttl: int | None = None

    def __post_init__(self) -> None:
        _NewLink.__post_init__(self)
        v.int_range(self.vni, 1, 2**24 - 1, "vni")
        for field in ("local", "group"):
            if getattr(self, field) is not None:
                _address(getattr(self, field), field)
        v.int_range(self.port, 1, 65535, "port")
        _bool(self.learning, "learning")
        _opt_dev(self.underlay, "underlay")
        _opt_int(self.ttl, 0, 255, "ttl")

    def build(self, ctx: b.Context) -> b.Built:
        data: b.Attrs = [
            ("IFLA_VXLAN_ID", self.vni),
            # pyroute2's be16 puts the port in network byte order
            ("IFLA_VXLAN_PORT", self.port),
            ("IFLA_VXLAN_LEARNING", int(self.learning)),
        ]
        if self.local is not None:
            local = ipaddress.ip_address(self.local)
            six = "6" if local.version == 6 else ""
            data.append((f"IFLA_VXLAN_LOCAL{six}", str(local)))
        if self.group is not None:
            group = ipaddress.ip_address(self.group)
            six = "6" if group.version == 6 else ""
            data.append((f"IFLA_VXLAN_GROUP{six}", str(group)))
        if self.underlay is not None:
            data.append(("IFLA_VXLAN_LINK", ctx.resolve(self.underlay)))
        if self.ttl is not None:
            data.append(("IFLA_VXLAN_TTL", self.ttl))
        return _new_link(ctx, self, b.linkinfo("vxlan", data))


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AdoptVxlan(Op):
    """Rename a live VXLAN device and set its learning flag, keeping its ifindex.

    The takeover of a Neutron Linux bridge agent's ``vxlan-<VNI>`` as netagent's
    ``nvx-<VNI>``: the kernel renames it in place (an up device since Linux 6.2), so the
    bridge port, its FDB and the traffic stay as they are; a second device with the same
    VNI, address and port could not even be created.
    """

    invalidates: ClassVar[bool] = True
    name: str
    new_name: str
    learning: bool = False

    def __post_init__(self) -> None:
        v.device_name(self.name, "name")
        v.device_name(self.new_name, "new_name")
        _bool(self.learning, "learning")

    @property
    def target(self) -> str:
        return self.new_name

    def build(self, ctx: b.Context) -> b.Built:
        info = b.linkinfo("vxlan", [("IFLA_VXLAN_LEARNING", int(self.learning))])
        msg = b.ifinfo([("IFLA_IFNAME", self.new_name), info], None, ctx.resolve(self.name))
        return [(self.kind, self.name, Request(nl.RTM_NEWLINK, 0, msg))]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CreateVlan(_NewLink):
    """An 802.1q device on ``link`` (needs the kernel's 8021q module)."""

    link: str
    vlan_id: int

    def __post_init__(self) -> None:
        _NewLink.__post_init__(self)
        v.device_name(self.link, "link")
        v.int_range(self.vlan_id, 1, 4094, "vlan_id")

    def build(self, ctx: b.Context) -> b.Built:
        info = b.linkinfo("vlan", [("IFLA_VLAN_ID", self.vlan_id)])
        return _new_link(ctx, self, info, [("IFLA_LINK", ctx.resolve(self.link))])


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class DeleteLink(Op):
    """Delete a device (a veth takes its peer along)."""

    invalidates: ClassVar[bool] = True
    name: str

    def __post_init__(self) -> None:
        v.device_name(self.name, "name")

    def build(self, ctx: b.Context) -> b.Built:
        msg = b.ifinfo([("IFLA_IFNAME", self.name)])
        return [("link", self.name, Request(nl.RTM_DELLINK, 0, msg))]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class SetLink(Op):
    """Change what is given of a device, in one request; ``nomaster`` releases it."""

    name: str
    mtu: int | None = None
    mac: str | None = None
    up: bool | None = None
    master: str | None = None
    nomaster: bool = False

    def __post_init__(self) -> None:
        v.device_name(self.name, "name")
        _opt_int(self.mtu, 68, 65535, "mtu")
        _opt_mac(self.mac, "mac")
        _bool(self.up, "up", optional=True)
        _opt_dev(self.master, "master")
        _bool(self.nomaster, "nomaster")
        if self.nomaster and self.master is not None:
            raise InvalidArgument("nomaster", True, "master given too")

    def build(self, ctx: b.Context) -> b.Built:
        attrs = [b.nla_string(b.IFLA_IFNAME, self.name)]
        if self.mtu is not None:
            attrs.append(b.nla_u32(b.IFLA_MTU, self.mtu))
        if self.mac is not None:
            attrs.append(b.nla(b.IFLA_ADDRESS, bytes.fromhex(self.mac.replace(":", ""))))
        if self.master is not None:
            attrs.append(b.nla_u32(b.IFLA_MASTER, ctx.resolve(self.master)))
        if self.nomaster:
            attrs.append(b.nla_u32(b.IFLA_MASTER, 0))
        msg = b.raw_ifinfo(b"".join(attrs), self.up)
        return [("link", self.name, Request(nl.RTM_SETLINK, 0, msg))]


#: :class:`SetBridgePort` fields -> the ``IFLA_BRPORT_*`` flags (u8 0/1) they set.
BRIDGE_PORT_FLAGS = {
    "neigh_suppress": "IFLA_BRPORT_NEIGH_SUPPRESS",
    "learning": "IFLA_BRPORT_LEARNING",
}


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class SetBridgePort(Op):
    """Bridge port flags (``bridge link set dev X neigh_suppress on``).

    ``RTM_SETLINK`` with ``ifi_family = AF_BRIDGE`` goes to the master bridge's
    ``ndo_bridge_setlink``; it finds the port by ifindex only (no ``IFLA_IFNAME`` lookup),
    and reads ``IFLA_PROTINFO`` as nested port attributes only when ``NLA_F_NESTED`` is
    set (without it the kernel takes it for the old one-byte STP state).
    """

    name: str
    neigh_suppress: bool | None = None
    learning: bool | None = None

    def __post_init__(self) -> None:
        v.device_name(self.name, "name")
        _bool(self.neigh_suppress, "neigh_suppress", optional=True)
        _bool(self.learning, "learning", optional=True)
        if self.neigh_suppress is None and self.learning is None:
            raise InvalidArgument("flags", None, f"one of {sorted(BRIDGE_PORT_FLAGS)} expected")

    def build(self, ctx: b.Context) -> b.Built:
        attrs: b.Attrs = [
            (nla, int(getattr(self, key)))
            for key, nla in BRIDGE_PORT_FLAGS.items()
            if getattr(self, key) is not None
        ]
        msg = nl.ifinfmsg()
        msg.update({**b.ifinfo_fields(None, ctx.resolve(self.name)), "family": socket.AF_BRIDGE})
        msg["attrs"] = [("IFLA_PROTINFO", {"attrs": attrs}, nl.NLA_F_NESTED)]
        return [("link", self.name, Request(nl.RTM_SETLINK, 0, msg))]


# --- addresses, routes, policy rules -------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _Address(Op):
    kind: ClassVar[str] = "address"
    device: str
    cidr: str
    #: IPv6: usable at once, no duplicate address detection
    nodad: bool = False

    def __post_init__(self) -> None:
        v.device_name(self.device)
        _interface(self.cidr, "cidr")
        _bool(self.nodad, "nodad")

    @property
    def target(self) -> str:
        return f"{self.cidr} dev {self.device}"

    def _msg(self, ctx: b.Context) -> nl.Message:
        iface = ipaddress.ip_interface(self.cidr)
        address = str(iface.ip)
        flags = nl.IFA_F_NODAD if self.nodad and iface.version == 6 else 0
        msg = nl.ifaddrmsg()
        msg["family"] = b.family(iface.version)
        msg["prefixlen"] = iface.network.prefixlen
        msg["flags"] = flags & 0xFF
        msg["scope"] = 0
        msg["index"] = ctx.resolve(self.device)
        attrs: b.Attrs = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
        if flags:
            attrs.append(("IFA_FLAGS", flags))
        if iface.version == 4 and iface.network.prefixlen < 31:
            attrs.append(("IFA_BROADCAST", str(iface.network.broadcast_address)))
        msg["attrs"] = attrs
        return msg


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AddAddress(_Address):
    """Add ``cidr`` (``198.51.100.1/24``) to ``device``."""

    def build(self, ctx: b.Context) -> b.Built:
        return [(self.kind, self.target, Request(nl.RTM_NEWADDR, b.CREATE_EXCL, self._msg(ctx)))]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class DeleteAddress(_Address):
    """Remove ``cidr`` from ``device``."""

    def build(self, ctx: b.Context) -> b.Built:
        return [(self.kind, self.target, Request(nl.RTM_DELADDR, 0, self._msg(ctx)))]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _Route(Op):
    kind: ClassVar[str] = "route"
    destination: str
    table: int = 254
    type: str = "unicast"
    gateway: str | None = None
    device: str | None = None
    metric: int | None = None
    source: str | None = None
    #: None: ``link`` for a unicast route through a device without gateway, else universe
    scope: str | None = None
    onlink: bool = False

    def __post_init__(self) -> None:
        network = _network(self.destination, "destination")
        v.int_range(self.table, 1, 2**32 - 1, "table")
        if self.type not in ROUTE_TYPES:
            raise InvalidArgument("type", self.type, f"one of {sorted(ROUTE_TYPES)}")
        for field in ("gateway", "source"):
            value = getattr(self, field)
            if value is not None and _address(value, field).version != network.version:
                raise InvalidArgument(field, value, "address family differs from destination")
        _opt_dev(self.device, "device")
        _opt_int(self.metric, 0, 2**32 - 1, "metric")
        if self.scope is not None and self.scope not in SCOPES:
            raise InvalidArgument("scope", self.scope, f"one of {sorted(SCOPES)}")
        _bool(self.onlink, "onlink")

    @property
    def target(self) -> str:
        return f"{self.destination} table {self.table}"

    def _msg(self, ctx: b.Context, protocol: int) -> nl.Message:
        network = ipaddress.ip_network(self.destination)
        rtype = ROUTE_TYPES[self.type]
        attrs: b.Attrs = [("RTA_TABLE", self.table)]
        if network.prefixlen:
            attrs.append(("RTA_DST", str(network.network_address)))
        if self.gateway is not None:
            attrs.append(("RTA_GATEWAY", self.gateway))
        if self.device is not None:
            attrs.append(("RTA_OIF", ctx.resolve(self.device)))
        if self.metric is not None:
            attrs.append(("RTA_PRIORITY", self.metric))
        if self.source is not None:
            attrs.append(("RTA_PREFSRC", self.source))
        scope = self.scope
        if scope is None and protocol:
            direct = self.device and not self.gateway and rtype == nl.RTN_UNICAST
            scope = "link" if direct else "universe"
        scope_id = SCOPES[scope] if scope is not None else None
        if scope_id is None:
            # a deletion: IPv4 matches a route of any scope only with RT_SCOPE_NOWHERE, as
            # ``ip route del`` sends (universe matched only universe routes: a scope-link
            # route was never deleted, and the ESRCH read as "gone already")
            scope_id = _RT_SCOPE_NOWHERE
        msg = nl.rtmsg()
        msg.update(
            {
                "family": b.family(network.version),
                "dst_len": network.prefixlen,
                "src_len": 0,
                "tos": 0,
                "table": self.table if self.table < 256 else nl.RT_TABLE_COMPAT,
                "proto": protocol,
                "scope": scope_id,
                "type": rtype,
                "flags": nl.RTNH_F_ONLINK if self.onlink else 0,
            }
        )
        msg["attrs"] = attrs
        return msg


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AddRoute(_Route):
    """A static route; ``replace`` replaces one with the same key instead of failing."""

    replace: bool = False

    def __post_init__(self) -> None:
        _Route.__post_init__(self)
        _bool(self.replace, "replace")

    def build(self, ctx: b.Context) -> b.Built:
        flags = b.CREATE_REPLACE if self.replace else b.CREATE_EXCL
        msg = self._msg(ctx, nl.RTPROT_STATIC)
        return [(self.kind, self.target, Request(nl.RTM_NEWROUTE, flags, msg))]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class DeleteRoute(_Route):
    """Delete a route of any origin (protocol 0 matches static, kernel, boot...)."""

    def build(self, ctx: b.Context) -> b.Built:
        return [(self.kind, self.target, Request(nl.RTM_DELROUTE, 0, self._msg(ctx, 0)))]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _Rule(Op):
    kind: ClassVar[str] = "rule"
    family: int = 4
    table: int = 254
    priority: int | None = None
    source: str | None = None
    destination: str | None = None
    iif: str | None = None
    oif: str | None = None
    fwmark: int | None = None
    fwmask: int = 0xFFFFFFFF

    def __post_init__(self) -> None:
        if self.family not in (4, 6) or isinstance(self.family, bool):
            raise InvalidArgument("family", self.family, "4 or 6")
        v.int_range(self.table, 1, 2**32 - 1, "table")
        _opt_int(self.priority, 0, 2**32 - 1, "priority")
        for field in ("source", "destination"):
            value = getattr(self, field)
            if value is not None and _network(value, field).version != self.family:
                raise InvalidArgument(field, value, "address family differs from rule family")
        _opt_dev(self.iif, "iif")
        _opt_dev(self.oif, "oif")
        _opt_int(self.fwmark, 0, 2**32 - 1, "fwmark")
        v.int_range(self.fwmask, 0, 2**32 - 1, "fwmask")

    @property
    def target(self) -> str:
        return f"rule prio {self.priority} table {self.table}"

    def _msg(self) -> nl.Message:
        attrs: b.Attrs = [("FRA_TABLE", self.table)]
        lengths = {"source": 0, "destination": 0}
        for field, nla in (("source", "FRA_SRC"), ("destination", "FRA_DST")):
            value = getattr(self, field)
            if value is not None:
                net = ipaddress.ip_network(value)
                lengths[field] = net.prefixlen
                attrs.append((nla, str(net.network_address)))
        if self.priority is not None:
            attrs.append(("FRA_PRIORITY", self.priority))
        if self.iif is not None:
            attrs.append(("FRA_IIFNAME", self.iif))
        if self.oif is not None:
            attrs.append(("FRA_OIFNAME", self.oif))
        if self.fwmark is not None:
            attrs.append(("FRA_FWMARK", self.fwmark))
            attrs.append(("FRA_FWMASK", self.fwmask))
        msg = nl.fibmsg()
        msg.update(
            {
                "family": b.family(self.family),
                "dst_len": lengths["destination"],
                "src_len": lengths["source"],
                "tos": 0,
                "table": self.table if self.table < 256 else 0,
                "res1": 0,
                "res2": 0,
                "action": nl.FR_ACT_TO_TBL,
                "flags": 0,
            }
        )
        msg["attrs"] = attrs
        return msg


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AddRule(_Rule):
    """A policy routing rule: matching packets look up ``table``."""

    def build(self, ctx: b.Context) -> b.Built:
        return [(self.kind, self.target, Request(nl.RTM_NEWRULE, b.CREATE_EXCL, self._msg()))]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class DeleteRule(_Rule):
    """Delete the rule with these selectors."""

    def build(self, ctx: b.Context) -> b.Built:
        return [(self.kind, self.target, Request(nl.RTM_DELRULE, 0, self._msg()))]


# --- neighbours and forwarding entries -----------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _Neighbour(Op):
    kind: ClassVar[str] = "neighbour"
    device: str
    address: str

    def __post_init__(self) -> None:
        v.device_name(self.device)
        _address(self.address, "address")

    @property
    def target(self) -> str:
        return f"neighbour {self.address} dev {self.device}"

    def _msg(self, ctx: b.Context, mac: str | None) -> nl.Message:
        address = ipaddress.ip_address(self.address)
        attrs: b.Attrs = [("NDA_DST", str(address))]
        if mac is not None:
            attrs.append(("NDA_LLADDR", mac))
        family = b.family(address.version)
        return b.ndmsg(family, ctx.resolve(self.device), nl.NUD_PERMANENT, 0, attrs)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AddNeighbour(_Neighbour):
    """A permanent neighbour entry ``address -> mac`` on ``device`` (replaced if present)."""

    mac: str

    def __post_init__(self) -> None:
        _Neighbour.__post_init__(self)
        _mac(self.mac, "mac")

    def build(self, ctx: b.Context) -> b.Built:
        msg = self._msg(ctx, self.mac)
        return [(self.kind, self.target, Request(nl.RTM_NEWNEIGH, b.CREATE_REPLACE, msg))]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class DeleteNeighbour(_Neighbour):
    """Delete the neighbour entry of ``address`` on ``device``."""

    def build(self, ctx: b.Context) -> b.Built:
        msg = self._msg(ctx, None)
        return [(self.kind, self.target, Request(nl.RTM_DELNEIGH, 0, msg))]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class _Fdb(Op):
    kind: ClassVar[str] = "fdb"
    device: str
    mac: str
    destination: str | None = None
    #: an entry in the master bridge's table (a MAC behind a bridge port), not the
    #: device's own (a VXLAN tunnel destination)
    master: bool = False

    def __post_init__(self) -> None:
        v.device_name(self.device)
        _mac(self.mac, "mac")
        if self.destination is not None:
            _address(self.destination, "destination")
        _bool(self.master, "master")

    @property
    def target(self) -> str:
        return f"fdb {self.mac} dev {self.device} dst {self.destination}"

    def _msg(self, ctx: b.Context) -> nl.Message:
        attrs: b.Attrs = [("NDA_LLADDR", self.mac)]
        if self.destination is not None:
            attrs.append(("NDA_DST", self.destination))
        if self.master:
            # "static" (NUD_NOARP); NUD_PERMANENT would make it a local address of the bridge
            flags, state = nl.NTF_MASTER, nl.NUD_NOARP
        else:
            flags, state = nl.NTF_SELF, nl.NUD_PERMANENT | nl.NUD_NOARP
        return b.ndmsg(socket.AF_BRIDGE, ctx.resolve(self.device), state, flags, attrs)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AddFdb(_Fdb):
    """A static forwarding entry; ``append`` adds a destination to a flooding entry's
    list, otherwise the MAC's entry is replaced."""

    append: bool = False

    def __post_init__(self) -> None:
        _Fdb.__post_init__(self)
        _bool(self.append, "append")

    def build(self, ctx: b.Context) -> b.Built:
        flags = nl.NLM_F_CREATE | nl.NLM_F_APPEND if self.append else b.CREATE_REPLACE
        return [(self.kind, self.target, Request(nl.RTM_NEWNEIGH, flags, self._msg(ctx)))]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class DeleteFdb(_Fdb):
    """Delete a forwarding entry (with ``destination``: only that destination)."""

    def build(self, ctx: b.Context) -> b.Built:
        return [(self.kind, self.target, Request(nl.RTM_DELNEIGH, 0, self._msg(ctx)))]


#: Every operation by its :attr:`Op.opname`.
OPERATIONS: dict[str, type[Op]] = {
    _snake(cls.__name__): cls
    for cls in (
        CreateVeth,
        CreateBridge,
        CreateVxlan,
        AdoptVxlan,
        CreateVlan,
        DeleteLink,
        SetLink,
        SetBridgePort,
        AddAddress,
        DeleteAddress,
        AddRoute,
        DeleteRoute,
        AddRule,
        DeleteRule,
        AddNeighbour,
        DeleteNeighbour,
        AddFdb,
        DeleteFdb,
    )
}


def from_primitives(data: object) -> Op:
    """The operation a privsep call carried (:meth:`Op.primitives`), validated.

    :raises InvalidArgument: not a dict, unknown operation, unknown or missing field, or a
        field that does not validate.
    """
    if not isinstance(data, dict):
        raise InvalidArgument("op", data, "dict expected")
    fields = dict(data)
    name = fields.pop("op", None)
    cls = OPERATIONS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise InvalidArgument("op", name, "unknown operation")
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(fields) - known)
    if unknown:
        raise InvalidArgument(unknown[0], fields[unknown[0]], f"unknown field of {name}")
    try:
        return cls(**fields)
    except TypeError as exc:
        raise InvalidArgument("op", name, str(exc)) from None
