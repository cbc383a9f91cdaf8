"""Builders: one operation dict (primitives only) to rtnetlink requests.

Each builder validates its input (names, addresses, ranges) and fills in pyroute2 message
objects (``ifinfmsg``, ``ifaddrmsg``, ``rtmsg``, ``fibmsg``, ``ndmsg``); they are encoded
by pyroute2 when sent (:func:`netagent.privileged.nlcodec.encode`). Builders get a
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
#: pyroute2 attribute list: ``[("IFLA_IFNAME", "eth0"), ("IFLA_MTU", 1500), ...]``
Attrs = list[tuple[Any, ...]]

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


def _ifinfo_fields(up: bool | None, index: int = 0) -> dict[str, int]:
    """``struct ifinfomsg``: ``up`` None leaves IFF_UP alone (``change`` 0)."""
    return {
        "family": socket.AF_UNSPEC,
        "ifi_type": 0,
        "index": index,
        "flags": nl.IFF_UP if up else 0,
        "change": nl.IFF_UP if up is not None else 0,
    }


def _ifinfo(attrs: Attrs, up: bool | None = None, index: int = 0) -> nl.Message:
    msg = nl.ifinfmsg()
    msg.update(_ifinfo_fields(up, index))
    msg["attrs"] = attrs
    return msg


def _common_attrs(op: Op, prefix: str, ctx: Context) -> Attrs:
    """IFLA_IFNAME/MTU/ADDRESS/MASTER from ``op[prefix + "name"]`` etc."""
    name = v.device_name(op[prefix + "name"], prefix + "name")
    attrs: Attrs = [("IFLA_IFNAME", name)]
    mtu = op.get(prefix + "mtu")
    if mtu is not None:
        attrs.append(("IFLA_MTU", v.int_range(mtu, 68, 65535, prefix + "mtu")))
    mac = op.get(prefix + "mac")
    if mac is not None:
        attrs.append(("IFLA_ADDRESS", v.mac_address(mac, prefix + "mac")))
    master = op.get(prefix + "master")
    if master:
        attrs.append(("IFLA_MASTER", ctx.resolve(v.device_name(master, prefix + "master"))))
    elif master == "":
        attrs.append(("IFLA_MASTER", 0))
    return attrs


def _linkinfo(kind: str, data: Attrs | None = None) -> tuple[Any, ...]:
    parts: Attrs = [("IFLA_INFO_KIND", kind)]
    if data is not None:
        parts.append(("IFLA_INFO_DATA", {"attrs": data}))
    return ("IFLA_LINKINFO", {"attrs": parts})


def _new_link(
    op: Op, ctx: Context, linkinfo: tuple[Any, ...], extra: Attrs | None = None
) -> Built:
    attrs = _common_attrs(op, "", ctx)
    if extra:
        attrs.extend(extra)
    attrs.append(linkinfo)
    msg = _ifinfo(attrs, op.get("up"))
    return [("link", op["name"], Request(nl.RTM_NEWLINK, _CREATE_EXCL, msg))]


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
        peer_attrs.append(("IFLA_NET_NS_FD", ctx.netns_fd(peer_namespace)))
    # IFF_UP on the peer at creation fails with ENOTCONN: the kernel opens the peer before
    # the pair is linked (veth_newlink), so the peer is brought up by a second request.
    peer = {**_ifinfo_fields(None), "attrs": peer_attrs}
    info = _linkinfo("veth", [("VETH_INFO_PEER", peer)])
    built = _new_link(op, ctx, info)
    if op.get("peer_up") is not None:
        name = v.device_name(op["peer_name"], "peer_name")
        msg = _ifinfo([("IFLA_IFNAME", name)], op["peer_up"])
        built.append(("link", name, Request(nl.RTM_SETLINK, 0, msg)))
    return built


def create_bridge(op: Op, ctx: Context) -> Built:
    ageing = v.int_range(op.get("ageing_time", 300), 10, 1000000, "ageing_time")
    delay = v.int_range(op.get("forward_delay", 0), 0, 30, "forward_delay")
    data: Attrs = [
        ("IFLA_BR_FORWARD_DELAY", delay * _USER_HZ),
        ("IFLA_BR_AGEING_TIME", ageing * _USER_HZ),
        ("IFLA_BR_STP_STATE", 0),
    ]
    return _new_link(op, ctx, _linkinfo("bridge", data))


def create_dummy(op: Op, ctx: Context) -> Built:
    return _new_link(op, ctx, _linkinfo("dummy"))


def create_vxlan(op: Op, ctx: Context) -> Built:
    vni = v.int_range(op["vni"], 1, 2**24 - 1, "vni")
    data: Attrs = [
        ("IFLA_VXLAN_ID", vni),
        # pyroute2's be16 puts the port in network byte order
        ("IFLA_VXLAN_PORT", v.int_range(op.get("port", 4789), 1, 65535, "port")),
        ("IFLA_VXLAN_LEARNING", 1 if op.get("learning", False) else 0),
    ]
    if op.get("local"):
        local = ipaddress.ip_address(_address(op["local"], "local"))
        data.append(
            ("IFLA_VXLAN_LOCAL" if local.version == 4 else "IFLA_VXLAN_LOCAL6", str(local))
        )
    if op.get("group"):
        group = ipaddress.ip_address(_address(op["group"], "group"))
        data.append(
            ("IFLA_VXLAN_GROUP" if group.version == 4 else "IFLA_VXLAN_GROUP6", str(group))
        )
    if op.get("underlay"):
        data.append(("IFLA_VXLAN_LINK", ctx.resolve(v.device_name(op["underlay"], "underlay"))))
    if op.get("ttl") is not None:
        data.append(("IFLA_VXLAN_TTL", v.int_range(op["ttl"], 0, 255, "ttl")))
    return _new_link(op, ctx, _linkinfo("vxlan", data))


def create_vlan(op: Op, ctx: Context) -> Built:
    """An 802.1q device ``name`` on ``link`` (needs the kernel's 8021q module)."""
    vlan_id = v.int_range(op["vlan_id"], 1, 4094, "vlan_id")
    parent = ctx.resolve(v.device_name(op["link"], "link"))
    info = _linkinfo("vlan", [("IFLA_VLAN_ID", vlan_id)])
    return _new_link(op, ctx, info, [("IFLA_LINK", parent)])


def delete_link(op: Op, ctx: Context) -> Built:
    name = v.device_name(op["name"], "name")
    msg = _ifinfo([("IFLA_IFNAME", name)])
    return [("link", name, Request(nl.RTM_DELLINK, 0, msg))]


def set_link(op: Op, ctx: Context) -> Built:
    msg = _ifinfo(_common_attrs(op, "", ctx), op.get("up"))
    return [("link", op["name"], Request(nl.RTM_SETLINK, 0, msg))]


#: ``set_bridge_port`` keys -> ``IFLA_BRPORT_*`` flags (u8 0/1) they set.
BRIDGE_PORT_FLAGS = {
    "neigh_suppress": "IFLA_BRPORT_NEIGH_SUPPRESS",
    "learning": "IFLA_BRPORT_LEARNING",
}


def set_bridge_port(op: Op, ctx: Context) -> Built:
    """Bridge port flags (``bridge link set dev X neigh_suppress on``).

    ``RTM_SETLINK`` with ``ifi_family = AF_BRIDGE`` goes to the master bridge's
    ``ndo_bridge_setlink``; it finds the port by ifindex only (no ``IFLA_IFNAME`` lookup),
    and reads ``IFLA_PROTINFO`` as nested port attributes only when ``NLA_F_NESTED`` is
    set (without it the kernel takes it for the old one-byte STP state).
    """
    name = v.device_name(op["name"], "name")
    attrs: Attrs = []
    for key, nla in BRIDGE_PORT_FLAGS.items():
        value = op.get(key)
        if value is None:
            continue
        if not isinstance(value, bool):
            raise InvalidArgument(key, value, "bool expected")
        attrs.append((nla, int(value)))
    if not attrs:
        raise InvalidArgument("flags", None, f"one of {sorted(BRIDGE_PORT_FLAGS)} expected")
    msg = nl.ifinfmsg()
    msg.update({**_ifinfo_fields(None, ctx.resolve(name)), "family": socket.AF_BRIDGE})
    msg["attrs"] = [("IFLA_PROTINFO", {"attrs": attrs}, nl.NLA_F_NESTED)]
    return [("link", name, Request(nl.RTM_SETLINK, 0, msg))]


def get_link(name: str, *, header_only: bool = False) -> Request:
    """RTM_GETLINK by name; ``header_only`` decodes the reply without attributes (index)."""
    msg = _ifinfo([("IFLA_IFNAME", v.device_name(name))])
    return Request(nl.RTM_GETLINK, 0, msg, nl.IfinfHeader if header_only else None)


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


def _family(version: int) -> int:
    return socket.AF_INET6 if version == 6 else socket.AF_INET


def _addr_msg(op: Op, ctx: Context) -> tuple[str, nl.Message]:
    device = v.device_name(op["device"])
    iface = _interface(op["cidr"])
    address = str(iface.ip)
    flags = nl.IFA_F_NODAD if op.get("nodad") and iface.version == 6 else 0
    msg = nl.ifaddrmsg()
    msg["family"] = _family(iface.version)
    msg["prefixlen"] = iface.network.prefixlen
    msg["flags"] = flags & 0xFF
    msg["scope"] = 0
    msg["index"] = ctx.resolve(device)
    attrs: Attrs = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
    if flags:
        attrs.append(("IFA_FLAGS", flags))
    if iface.version == 4 and iface.network.prefixlen < 31:
        attrs.append(("IFA_BROADCAST", str(iface.network.broadcast_address)))
    msg["attrs"] = attrs
    return f"{iface} dev {device}", msg


def add_address(op: Op, ctx: Context) -> Built:
    target, msg = _addr_msg(op, ctx)
    return [("address", target, Request(nl.RTM_NEWADDR, _CREATE_EXCL, msg))]


def delete_address(op: Op, ctx: Context) -> Built:
    target, msg = _addr_msg(op, ctx)
    return [("address", target, Request(nl.RTM_DELADDR, 0, msg))]


def _route_msg(op: Op, ctx: Context, protocol: int = nl.RTPROT_STATIC) -> tuple[str, nl.Message]:
    network = _network(op["destination"], "destination")
    table = v.int_range(op.get("table", 254), 1, 2**32 - 1, "table")
    rtype = ROUTE_TYPES.get(op.get("type", "unicast"))
    if rtype is None:
        raise InvalidArgument("type", op.get("type"), f"one of {sorted(ROUTE_TYPES)}")
    attrs: Attrs = [("RTA_TABLE", table)]
    if network.prefixlen:
        attrs.append(("RTA_DST", str(network.network_address)))
    gateway = op.get("gateway")
    device = op.get("device")
    if gateway:
        gw = ipaddress.ip_address(_address(gateway, "gateway"))
        if gw.version != network.version:
            raise InvalidArgument("gateway", gateway, "address family differs from destination")
        attrs.append(("RTA_GATEWAY", str(gw)))
    if device:
        attrs.append(("RTA_OIF", ctx.resolve(v.device_name(device))))
    if op.get("metric") is not None:
        attrs.append(("RTA_PRIORITY", v.int_range(op["metric"], 0, 2**32 - 1, "metric")))
    if op.get("source"):
        src = ipaddress.ip_address(_address(op["source"], "source"))
        if src.version != network.version:
            raise InvalidArgument(
                "source", op["source"], "address family differs from destination"
            )
        attrs.append(("RTA_PREFSRC", str(src)))
    scope_name = op.get("scope")
    if scope_name is None:
        scope_name = "link" if device and not gateway and rtype == nl.RTN_UNICAST else "universe"
    if scope_name not in SCOPES:
        raise InvalidArgument("scope", scope_name, f"one of {sorted(SCOPES)}")
    msg = nl.rtmsg()
    msg.update(
        {
            "family": _family(network.version),
            "dst_len": network.prefixlen,
            "src_len": 0,
            "tos": 0,
            "table": table if table < 256 else nl.RT_TABLE_COMPAT,
            "proto": protocol,
            "scope": SCOPES[scope_name],
            "type": rtype,
            "flags": nl.RTNH_F_ONLINK if op.get("onlink") else 0,
        }
    )
    msg["attrs"] = attrs
    return f"{network} table {table}", msg


def add_route(op: Op, ctx: Context) -> Built:
    target, msg = _route_msg(op, ctx)
    flags = _CREATE_REPLACE if op.get("replace") else _CREATE_EXCL
    return [("route", target, Request(nl.RTM_NEWROUTE, flags, msg))]


def delete_route(op: Op, ctx: Context) -> Built:
    # protocol 0 matches a route of any origin (static, kernel, boot, ...)
    target, msg = _route_msg(op, ctx, protocol=0)
    return [("route", target, Request(nl.RTM_DELROUTE, 0, msg))]


def _rule_msg(op: Op, ctx: Context) -> tuple[str, nl.Message]:
    family_num = op.get("family", 4)
    if family_num not in (4, 6):
        raise InvalidArgument("family", family_num, "4 or 6")
    table = v.int_range(op.get("table", 254), 1, 2**32 - 1, "table")
    attrs: Attrs = [("FRA_TABLE", table)]
    lengths = {"source": 0, "destination": 0}
    for key, name in (("source", "FRA_SRC"), ("destination", "FRA_DST")):
        if op.get(key):
            net = _network(op[key], key)
            if net.version != family_num:
                raise InvalidArgument(key, op[key], "address family differs from rule family")
            lengths[key] = net.prefixlen
            attrs.append((name, str(net.network_address)))
    if op.get("priority") is not None:
        attrs.append(("FRA_PRIORITY", v.int_range(op["priority"], 0, 2**32 - 1, "priority")))
    if op.get("iif"):
        attrs.append(("FRA_IIFNAME", v.device_name(op["iif"], "iif")))
    if op.get("oif"):
        attrs.append(("FRA_OIFNAME", v.device_name(op["oif"], "oif")))
    if op.get("fwmark") is not None:
        attrs.append(("FRA_FWMARK", v.int_range(op["fwmark"], 0, 2**32 - 1, "fwmark")))
        mask = op.get("fwmask", 0xFFFFFFFF)
        attrs.append(("FRA_FWMASK", v.int_range(mask, 0, 2**32 - 1, "fwmask")))
    msg = nl.fibmsg()
    msg.update(
        {
            "family": _family(family_num),
            "dst_len": lengths["destination"],
            "src_len": lengths["source"],
            "tos": 0,
            "table": table if table < 256 else 0,
            "res1": 0,
            "res2": 0,
            "action": nl.FR_ACT_TO_TBL,
            "flags": 0,
        }
    )
    msg["attrs"] = attrs
    return f"rule prio {op.get('priority')} table {table}", msg


def add_rule(op: Op, ctx: Context) -> Built:
    target, msg = _rule_msg(op, ctx)
    return [("rule", target, Request(nl.RTM_NEWRULE, _CREATE_EXCL, msg))]


def delete_rule(op: Op, ctx: Context) -> Built:
    target, msg = _rule_msg(op, ctx)
    return [("rule", target, Request(nl.RTM_DELRULE, 0, msg))]


def _ndmsg(family: int, ifindex: int, state: int, flags: int, attrs: Attrs) -> nl.Message:
    msg = nl.ndmsg()
    msg.update({"family": family, "ifindex": ifindex, "state": state, "flags": flags})
    msg["ndm_type"] = 0
    msg["attrs"] = attrs
    return msg


def _neigh_msg(op: Op, ctx: Context, *, for_delete: bool) -> tuple[str, nl.Message]:
    device = v.device_name(op["device"])
    address = ipaddress.ip_address(_address(op["address"], "address"))
    proxy = bool(op.get("proxy"))
    attrs: Attrs = [("NDA_DST", str(address))]
    if not proxy and not for_delete:
        attrs.append(("NDA_LLADDR", v.mac_address(op["mac"])))
    flags = nl.NTF_PROXY if proxy else 0
    msg = _ndmsg(_family(address.version), ctx.resolve(device), nl.NUD_PERMANENT, flags, attrs)
    kind = "proxy " if proxy else ""
    return f"{kind}neighbour {address} dev {device}", msg


def add_neighbour(op: Op, ctx: Context) -> Built:
    target, msg = _neigh_msg(op, ctx, for_delete=False)
    return [("neighbour", target, Request(nl.RTM_NEWNEIGH, _CREATE_REPLACE, msg))]


def delete_neighbour(op: Op, ctx: Context) -> Built:
    target, msg = _neigh_msg(op, ctx, for_delete=True)
    return [("neighbour", target, Request(nl.RTM_DELNEIGH, 0, msg))]


def _fdb_msg(op: Op, ctx: Context) -> tuple[str, nl.Message]:
    device = v.device_name(op["device"])
    mac = v.mac_address(op["mac"])
    attrs: Attrs = [("NDA_LLADDR", mac)]
    dst = op.get("destination")
    if dst:
        attrs.append(("NDA_DST", _address(dst, "destination")))
    if op.get("master"):
        # a MAC behind a bridge port: "static" (NUD_NOARP); NUD_PERMANENT would make it a
        # local address of the bridge itself
        flags, state = nl.NTF_MASTER, nl.NUD_NOARP
    else:
        flags, state = nl.NTF_SELF, nl.NUD_PERMANENT | nl.NUD_NOARP
    msg = _ndmsg(socket.AF_BRIDGE, ctx.resolve(device), state, flags, attrs)
    return f"fdb {mac} dev {device} dst {dst}", msg


def add_fdb(op: Op, ctx: Context) -> Built:
    target, msg = _fdb_msg(op, ctx)
    flags = nl.NLM_F_CREATE | nl.NLM_F_APPEND if op.get("append") else _CREATE_REPLACE
    return [("fdb", target, Request(nl.RTM_NEWNEIGH, flags, msg))]


def delete_fdb(op: Op, ctx: Context) -> Built:
    target, msg = _fdb_msg(op, ctx)
    return [("fdb", target, Request(nl.RTM_DELNEIGH, 0, msg))]


BUILDERS: dict[str, Callable[[Op, Context], Built]] = {
    "create_veth": create_veth,
    "create_bridge": create_bridge,
    "create_dummy": create_dummy,
    "create_vxlan": create_vxlan,
    "create_vlan": create_vlan,
    "delete_link": delete_link,
    "set_link": set_link,
    "set_bridge_port": set_bridge_port,
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
    {"create_veth", "create_bridge", "create_dummy", "create_vxlan", "create_vlan", "delete_link"}
)
