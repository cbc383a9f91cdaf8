"""Builders: one operation dict (primitives only) to one rtnetlink request.

Each builder validates its input (names, addresses, ranges) before encoding, and gets a
``resolve(name) -> ifindex`` callback for attributes that need an interface index.
A builder returns a list of ``(kind, target, request)``: ``kind`` selects the error translation
(``"link"`` or an entry kind), ``target`` names the resource in messages and logs.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable
from typing import Any

from netagent.privileged import nlcodec as nl
from netagent.privileged import nsenter
from netagent.privileged import validate as v
from netagent.privileged.errors import InvalidArgument
from netagent.privileged.nlsocket import Request

Op = dict[str, Any]
Resolver = Callable[[str], int]
Built = list[tuple[str, str, Request]]

_CREATE_EXCL = nl.NLM_F_CREATE | nl.NLM_F_EXCL
_CREATE_REPLACE = nl.NLM_F_CREATE | nl.NLM_F_REPLACE
_USER_HZ = 100
ROUTE_TYPES = {
    "unicast": nl.RTN_UNICAST,
    "blackhole": nl.RTN_BLACKHOLE,
    "unreachable": nl.RTN_UNREACHABLE,
    "prohibit": nl.RTN_PROHIBIT,
    "local": nl.RTN_LOCAL,
}
SCOPES = {"universe": nl.RT_SCOPE_UNIVERSE, "link": nl.RT_SCOPE_LINK, "host": nl.RT_SCOPE_HOST}


class Context:
    """What builders need besides the op: index resolution and fds to close after send."""

    def __init__(self, resolve: Resolver) -> None:
        self.resolve = resolve
        self.fds: list[int] = []

    def netns_fd(self, namespace: str) -> int:
        fd = nsenter.open_netns(v.namespace_name(namespace, "peer_namespace"))
        self.fds.append(fd)
        return fd

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


def _ifinfo(attrs: list[bytes], up: bool | None = None, index: int = 0) -> bytes:
    flags = nl.IFF_UP if up else 0
    change = nl.IFF_UP if up is not None else 0
    return nl.IFINFOMSG.pack(0, 0, index, flags, change) + b"".join(attrs)


def _common_attrs(op: Op, prefix: str, ctx: Context) -> list[bytes]:
    """IFLA_IFNAME/MTU/ADDRESS/MASTER from ``op[prefix + "name"]`` etc."""
    name = v.device_name(op[prefix + "name"], prefix + "name")
    attrs = [nl.attr_str(nl.IFLA_IFNAME, name)]
    mtu = op.get(prefix + "mtu")
    if mtu is not None:
        attrs.append(nl.attr_u32(nl.IFLA_MTU, v.int_range(mtu, 68, 65535, prefix + "mtu")))
    mac = op.get(prefix + "mac")
    if mac is not None:
        attrs.append(nl.attr(nl.IFLA_ADDRESS, nl.mac_bytes(v.mac_address(mac, prefix + "mac"))))
    master = op.get(prefix + "master")
    if master:
        index = ctx.resolve(v.device_name(master, prefix + "master"))
        attrs.append(nl.attr_u32(nl.IFLA_MASTER, index))
    elif master == "":
        attrs.append(nl.attr_u32(nl.IFLA_MASTER, 0))
    return attrs


def _linkinfo(kind: str, data: list[bytes] | None = None) -> bytes:
    parts = [nl.attr_str(nl.IFLA_INFO_KIND, kind)]
    if data is not None:
        parts.append(nl.attr_nested(nl.IFLA_INFO_DATA, data))
    return nl.attr_nested(nl.IFLA_LINKINFO, parts)


def _new_link(op: Op, ctx: Context, linkinfo: bytes) -> Built:
    attrs = _common_attrs(op, "", ctx)
    attrs.append(linkinfo)
    body = _ifinfo(attrs, op.get("up"))
    return [("link", op["name"], Request(nl.RTM_NEWLINK, _CREATE_EXCL, body))]


def create_veth(op: Op, ctx: Context) -> Built:
    peer_namespace = op.get("peer_namespace")
    if peer_namespace is not None:
        # an ifindex from this namespace means nothing in the peer's namespace, and the
        # peer cannot be brought up from here
        for key in ("peer_master", "peer_up"):
            if op.get(key):
                raise InvalidArgument(key, op[key], "peer is in another namespace")
    peer_attrs = _common_attrs(op, "peer_", ctx)
    if peer_namespace is not None:
        peer_attrs.append(nl.attr_u32(nl.IFLA_NET_NS_FD, ctx.netns_fd(peer_namespace)))
    # IFF_UP on the peer at creation fails with ENOTCONN: the kernel opens the peer before
    # the pair is linked (veth_newlink), so the peer is brought up by a second request.
    peer = _ifinfo(peer_attrs)
    info = _linkinfo("veth", [nl.attr(nl.VETH_INFO_PEER, peer)])
    built = _new_link(op, ctx, info)
    if op.get("peer_up") is not None:
        name = v.device_name(op["peer_name"], "peer_name")
        body = _ifinfo([nl.attr_str(nl.IFLA_IFNAME, name)], op["peer_up"])
        built.append(("link", name, Request(nl.RTM_SETLINK, 0, body)))
    return built


def create_bridge(op: Op, ctx: Context) -> Built:
    ageing = v.int_range(op.get("ageing_time", 300), 10, 1000000, "ageing_time")
    delay = v.int_range(op.get("forward_delay", 0), 0, 30, "forward_delay")
    data = [
        nl.attr_u32(nl.IFLA_BR_FORWARD_DELAY, delay * _USER_HZ),
        nl.attr_u32(nl.IFLA_BR_AGEING_TIME, ageing * _USER_HZ),
        nl.attr_u32(nl.IFLA_BR_STP_STATE, 0),
    ]
    return _new_link(op, ctx, _linkinfo("bridge", data))


def create_dummy(op: Op, ctx: Context) -> Built:
    return _new_link(op, ctx, _linkinfo("dummy"))


def create_vxlan(op: Op, ctx: Context) -> Built:
    vni = v.int_range(op["vni"], 1, 2**24 - 1, "vni")
    data = [
        nl.attr_u32(nl.IFLA_VXLAN_ID, vni),
        nl.attr_be16(nl.IFLA_VXLAN_PORT, v.int_range(op.get("port", 4789), 1, 65535, "port")),
        nl.attr_u8(nl.IFLA_VXLAN_LEARNING, 1 if op.get("learning", False) else 0),
    ]
    if op.get("local"):
        family, packed = nl.ip_bytes(_address(op["local"], "local"))
        atype = nl.IFLA_VXLAN_LOCAL if family == socket.AF_INET else nl.IFLA_VXLAN_LOCAL6
        data.append(nl.attr(atype, packed))
    if op.get("group"):
        family, packed = nl.ip_bytes(_address(op["group"], "group"))
        atype = nl.IFLA_VXLAN_GROUP if family == socket.AF_INET else nl.IFLA_VXLAN_GROUP6
        data.append(nl.attr(atype, packed))
    if op.get("underlay"):
        index = ctx.resolve(v.device_name(op["underlay"], "underlay"))
        data.append(nl.attr_u32(nl.IFLA_VXLAN_LINK, index))
    if op.get("ttl") is not None:
        data.append(nl.attr_u8(nl.IFLA_VXLAN_TTL, v.int_range(op["ttl"], 0, 255, "ttl")))
    return _new_link(op, ctx, _linkinfo("vxlan", data))


def delete_link(op: Op, ctx: Context) -> Built:
    name = v.device_name(op["name"], "name")
    body = _ifinfo([nl.attr_str(nl.IFLA_IFNAME, name)])
    return [("link", name, Request(nl.RTM_DELLINK, 0, body))]


def set_link(op: Op, ctx: Context) -> Built:
    body = _ifinfo(_common_attrs(op, "", ctx), op.get("up"))
    return [("link", op["name"], Request(nl.RTM_SETLINK, 0, body))]


def get_link(name: str) -> Request:
    body = _ifinfo([nl.attr_str(nl.IFLA_IFNAME, v.device_name(name))])
    return Request(nl.RTM_GETLINK, 0, body)


def _interface(value: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    try:
        return ipaddress.ip_interface(value)
    except (TypeError, ValueError):
        raise InvalidArgument("cidr", value, "address/prefixlen expected") from None


def _network(value: str, field: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value, strict=True)
    except (TypeError, ValueError):
        raise InvalidArgument(field, value, "network/prefixlen expected") from None


def _address(value: str, field: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except (TypeError, ValueError):
        raise InvalidArgument(field, value, "IP address expected") from None


def _addr_body(op: Op, ctx: Context) -> tuple[str, bytes]:
    device = v.device_name(op["device"])
    iface = _interface(op["cidr"])
    family, packed = nl.ip_bytes(str(iface.ip))
    flags = nl.IFA_F_NODAD if op.get("nodad") and family == socket.AF_INET6 else 0
    head = nl.IFADDRMSG.pack(family, iface.network.prefixlen, flags & 0xFF, 0, ctx.resolve(device))
    attrs = [nl.attr(nl.IFA_LOCAL, packed), nl.attr(nl.IFA_ADDRESS, packed)]
    if flags:
        attrs.append(nl.attr_u32(nl.IFA_FLAGS, flags))
    if family == socket.AF_INET and iface.network.prefixlen < 31:
        attrs.append(nl.attr(nl.IFA_BROADCAST, iface.network.broadcast_address.packed))
    return f"{iface} dev {device}", head + b"".join(attrs)


def add_address(op: Op, ctx: Context) -> Built:
    target, body = _addr_body(op, ctx)
    return [("address", target, Request(nl.RTM_NEWADDR, _CREATE_EXCL, body))]


def delete_address(op: Op, ctx: Context) -> Built:
    target, body = _addr_body(op, ctx)
    return [("address", target, Request(nl.RTM_DELADDR, 0, body))]


def _route_body(op: Op, ctx: Context, protocol: int = nl.RTPROT_STATIC) -> tuple[str, bytes]:
    network = _network(op["destination"], "destination")
    family = socket.AF_INET6 if network.version == 6 else socket.AF_INET
    table = v.int_range(op.get("table", 254), 1, 2**32 - 1, "table")
    rtype = ROUTE_TYPES.get(op.get("type", "unicast"))
    if rtype is None:
        raise InvalidArgument("type", op.get("type"), f"one of {sorted(ROUTE_TYPES)}")
    attrs = [nl.attr_u32(nl.RTA_TABLE, table)]
    if network.prefixlen:
        attrs.append(nl.attr(nl.RTA_DST, network.network_address.packed))
    gateway = op.get("gateway")
    device = op.get("device")
    if gateway:
        gw = ipaddress.ip_address(_address(gateway, "gateway"))
        if gw.version != network.version:
            raise InvalidArgument("gateway", gateway, "address family differs from destination")
        attrs.append(nl.attr(nl.RTA_GATEWAY, gw.packed))
    if device:
        attrs.append(nl.attr_u32(nl.RTA_OIF, ctx.resolve(v.device_name(device))))
    if op.get("metric") is not None:
        metric = v.int_range(op["metric"], 0, 2**32 - 1, "metric")
        attrs.append(nl.attr_u32(nl.RTA_PRIORITY, metric))
    if op.get("source"):
        src = ipaddress.ip_address(_address(op["source"], "source"))
        attrs.append(nl.attr(nl.RTA_PREFSRC, src.packed))
    scope_name = op.get("scope")
    if scope_name is None:
        scope_name = "link" if device and not gateway and rtype == nl.RTN_UNICAST else "universe"
    if scope_name not in SCOPES:
        raise InvalidArgument("scope", scope_name, f"one of {sorted(SCOPES)}")
    flags = nl.RTNH_F_ONLINK if op.get("onlink") else 0
    head = nl.RTMSG.pack(
        family,
        network.prefixlen,
        0,
        0,
        table if table < 256 else nl.RT_TABLE_COMPAT,
        protocol,
        SCOPES[scope_name],
        rtype,
        flags,
    )
    target = f"{network} table {table}"
    return target, head + b"".join(attrs)


def add_route(op: Op, ctx: Context) -> Built:
    target, body = _route_body(op, ctx)
    flags = _CREATE_REPLACE if op.get("replace") else _CREATE_EXCL
    return [("route", target, Request(nl.RTM_NEWROUTE, flags, body))]


def delete_route(op: Op, ctx: Context) -> Built:
    # protocol 0 matches a route of any origin (static, kernel, boot, ...)
    target, body = _route_body(op, ctx, protocol=0)
    return [("route", target, Request(nl.RTM_DELROUTE, 0, body))]


def _rule_body(op: Op, ctx: Context) -> tuple[str, bytes]:
    family_num = op.get("family", 4)
    if family_num not in (4, 6):
        raise InvalidArgument("family", family_num, "4 or 6")
    family = socket.AF_INET6 if family_num == 6 else socket.AF_INET
    table = v.int_range(op.get("table", 254), 1, 2**32 - 1, "table")
    attrs = [nl.attr_u32(nl.FRA_TABLE, table)]
    lengths = {"source": 0, "destination": 0}
    for key, atype in (("source", nl.FRA_SRC), ("destination", nl.FRA_DST)):
        if op.get(key):
            net = _network(op[key], key)
            if net.version != family_num:
                raise InvalidArgument(key, op[key], "address family differs from rule family")
            lengths[key] = net.prefixlen
            attrs.append(nl.attr(atype, net.network_address.packed))
    if op.get("priority") is not None:
        prio = v.int_range(op["priority"], 0, 2**32 - 1, "priority")
        attrs.append(nl.attr_u32(nl.FRA_PRIORITY, prio))
    if op.get("iif"):
        attrs.append(nl.attr_str(nl.FRA_IIFNAME, v.device_name(op["iif"], "iif")))
    if op.get("oif"):
        attrs.append(nl.attr_str(nl.FRA_OIFNAME, v.device_name(op["oif"], "oif")))
    if op.get("fwmark") is not None:
        attrs.append(nl.attr_u32(nl.FRA_FWMARK, v.int_range(op["fwmark"], 0, 2**32 - 1, "fwmark")))
        mask = op.get("fwmask", 0xFFFFFFFF)
        attrs.append(nl.attr_u32(nl.FRA_FWMASK, v.int_range(mask, 0, 2**32 - 1, "fwmask")))
    head = nl.FIBRULEHDR.pack(
        family,
        lengths["destination"],
        lengths["source"],
        0,
        table if table < 256 else 0,
        0,
        0,
        nl.FR_ACT_TO_TBL,
        0,
    )
    target = f"rule prio {op.get('priority')} table {table}"
    return target, head + b"".join(attrs)


def add_rule(op: Op, ctx: Context) -> Built:
    target, body = _rule_body(op, ctx)
    return [("rule", target, Request(nl.RTM_NEWRULE, _CREATE_EXCL, body))]


def delete_rule(op: Op, ctx: Context) -> Built:
    target, body = _rule_body(op, ctx)
    return [("rule", target, Request(nl.RTM_DELRULE, 0, body))]


def _neigh_body(op: Op, ctx: Context, *, for_delete: bool) -> tuple[str, bytes]:
    device = v.device_name(op["device"])
    address = _address(op["address"], "address")
    family, packed = nl.ip_bytes(address)
    proxy = bool(op.get("proxy"))
    attrs = [nl.attr(nl.NDA_DST, packed)]
    if not proxy and not for_delete:
        attrs.append(nl.attr(nl.NDA_LLADDR, nl.mac_bytes(v.mac_address(op["mac"]))))
    head = nl.NDMSG.pack(
        family, 0, 0, ctx.resolve(device), nl.NUD_PERMANENT, nl.NTF_PROXY if proxy else 0, 0
    )
    kind = "proxy " if proxy else ""
    return f"{kind}neighbour {address} dev {device}", head + b"".join(attrs)


def add_neighbour(op: Op, ctx: Context) -> Built:
    target, body = _neigh_body(op, ctx, for_delete=False)
    return [("neighbour", target, Request(nl.RTM_NEWNEIGH, _CREATE_REPLACE, body))]


def delete_neighbour(op: Op, ctx: Context) -> Built:
    target, body = _neigh_body(op, ctx, for_delete=True)
    return [("neighbour", target, Request(nl.RTM_DELNEIGH, 0, body))]


def _fdb_body(op: Op, ctx: Context) -> tuple[str, bytes]:
    device = v.device_name(op["device"])
    mac = v.mac_address(op["mac"])
    attrs = [nl.attr(nl.NDA_LLADDR, nl.mac_bytes(mac))]
    dst = op.get("destination")
    if dst:
        attrs.append(nl.attr(nl.NDA_DST, nl.ip_bytes(_address(dst, "destination"))[1]))
    if op.get("master"):
        # a MAC behind a bridge port: "static" (NUD_NOARP); NUD_PERMANENT would make it a
        # local address of the bridge itself
        flags, state = nl.NTF_MASTER, nl.NUD_NOARP
    else:
        flags, state = nl.NTF_SELF, nl.NUD_PERMANENT | nl.NUD_NOARP
    head = nl.NDMSG.pack(nl.AF_BRIDGE, 0, 0, ctx.resolve(device), state, flags, 0)
    return f"fdb {mac} dev {device} dst {dst}", head + b"".join(attrs)


def add_fdb(op: Op, ctx: Context) -> Built:
    target, body = _fdb_body(op, ctx)
    flags = nl.NLM_F_CREATE | nl.NLM_F_APPEND if op.get("append") else _CREATE_REPLACE
    return [("fdb", target, Request(nl.RTM_NEWNEIGH, flags, body))]


def delete_fdb(op: Op, ctx: Context) -> Built:
    target, body = _fdb_body(op, ctx)
    return [("fdb", target, Request(nl.RTM_DELNEIGH, 0, body))]


BUILDERS: dict[str, Callable[[Op, Context], Built]] = {
    "create_veth": create_veth,
    "create_bridge": create_bridge,
    "create_dummy": create_dummy,
    "create_vxlan": create_vxlan,
    "delete_link": delete_link,
    "set_link": set_link,
    "add_address": add_address,
    "delete_address": delete_address,
    "add_route": add_route,
    "delete_route": delete_route,
    "add_rule": add_rule,
    "delete_rule": delete_rule,
    "add_neighbour": add_neighbour,
    "delete_neighbour": delete_neighbour,
    "add_fdb": add_fdb,
    "delete_fdb": delete_fdb,
}

#: Operations after which a name's cached ifindex is no longer valid.
INVALIDATING = frozenset(
    {"create_veth", "create_bridge", "create_dummy", "create_vxlan", "delete_link"}
)
