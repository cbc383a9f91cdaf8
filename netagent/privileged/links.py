"""Network devices: create, delete, change, get and list, over the namespace's socket.

All functions take and return primitives. ``namespace=None`` means the agent's own
namespace. Devices are addressed by name; the kernel looks the name up itself.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
from typing import Any

from netagent.privileged import batch, nsenter
from netagent.privileged import nlcodec as nl
from netagent.privileged import validate as v
from netagent.privileged.errors import DeviceExists, DeviceNotFound, translate
from netagent.privileged.nlbuild import get_link as _get_link_request
from netagent.privileged.nlsocket import get_socket

LOG = logging.getLogger(__name__)

_TUNSETIFF = 0x400454CA
_TUNSETPERSIST = 0x400454CB
_IFF_TAP = 0x0002
_IFF_NO_PI = 0x1000


def create_veth(namespace: str | None, name: str, peer: str, **options: Any) -> None:
    """Create a veth pair ``name``/``peer``.

    :param namespace: where ``name`` is created.
    :param name: first end.
    :param peer: second end.
    :param options: ``peer_namespace`` (created straight there), ``mtu``, ``peer_mtu``,
        ``mac``, ``peer_mac``, ``master``, ``up``, ``peer_up``.
    :raises DeviceExists: a device of that name exists.
    """
    batch.execute_one(namespace, {"op": "create_veth", "name": name, "peer_name": peer, **options})


def create_bridge(namespace: str | None, name: str, **options: Any) -> None:
    """Create a Linux bridge with STP off (``ageing_time`` s, ``forward_delay`` s).

    :param options: ``ageing_time`` (default 300, never 0), ``forward_delay`` (default 0),
        ``mtu``, ``mac``, ``up``.
    """
    batch.execute_one(namespace, {"op": "create_bridge", "name": name, **options})


def create_dummy(namespace: str | None, name: str, **options: Any) -> None:
    """Create a dummy device (``mtu``, ``mac``, ``master``, ``up`` options)."""
    batch.execute_one(namespace, {"op": "create_dummy", "name": name, **options})


def create_vxlan(namespace: str | None, name: str, vni: int, **options: Any) -> None:
    """Create a VXLAN device.

    :param options: ``local`` address, ``group`` (multicast group or remote), ``port``
        (UDP destination port, default 4789), ``learning`` (default False), ``underlay``
        device name, ``ttl``, ``mtu``, ``mac``, ``master``, ``up``.
    """
    batch.execute_one(namespace, {"op": "create_vxlan", "name": name, "vni": vni, **options})


def create_tap(namespace: str | None, name: str) -> None:
    """Create a persistent tap device (IFF_TAP | IFF_NO_PI), down, owned by root.

    TUNSETIFF on an existing persistent tap would attach to it rather than fail, so the
    name is checked first.

    :raises DeviceExists: a device of that name exists.
    """
    v.device_name(name)
    v.optional_namespace(namespace)
    try:
        get_link(namespace, name)
    except DeviceNotFound:
        pass
    else:
        raise DeviceExists(errno.EEXIST, "create_tap", name, namespace)

    def make() -> None:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        try:
            ifreq = struct.pack("16sH22x", name.encode(), _IFF_TAP | _IFF_NO_PI)
            fcntl.ioctl(fd, _TUNSETIFF, ifreq)
            fcntl.ioctl(fd, _TUNSETPERSIST, 1)
        finally:
            os.close(fd)

    try:
        nsenter.call_in_namespace(namespace, make)
    except OSError as exc:
        raise translate(exc.errno or errno.EIO, "link", "create_tap", name, namespace) from None
    LOG.info("create_tap %s (namespace %s)", name, namespace)


def delete_link(namespace: str | None, name: str) -> None:
    """Delete a device (a veth deletes its peer too).

    :raises DeviceNotFound: no such device.
    """
    batch.execute_one(namespace, {"op": "delete_link", "name": name})


def set_link(namespace: str | None, name: str, **changes: Any) -> None:
    """Change a device: ``mtu``, ``mac``, ``up`` (bool), ``master`` (name; "" releases).

    :raises DeviceNotFound: the device (or the master) does not exist.
    """
    batch.execute_one(namespace, {"op": "set_link", "name": name, **changes})


def _decode_link(payload: bytes) -> dict[str, Any]:
    _family, _type, index, flags, _change = nl.IFINFOMSG.unpack_from(payload)
    attrs = nl.parse_attrs(payload, nl.IFINFOMSG.size)
    link: dict[str, Any] = {
        "index": index,
        "name": nl.cstr(attrs.get(nl.IFLA_IFNAME, b"")),
        "up": bool(flags & nl.IFF_UP),
        "mtu": nl.u32(attrs[nl.IFLA_MTU]) if nl.IFLA_MTU in attrs else None,
        "mac": nl.mac_text(attrs[nl.IFLA_ADDRESS]) if nl.IFLA_ADDRESS in attrs else None,
        "master": nl.u32(attrs[nl.IFLA_MASTER]) if nl.IFLA_MASTER in attrs else None,
        "kind": None,
        "slave_kind": None,
        "data": {},
    }
    info = attrs.get(nl.IFLA_LINKINFO)
    if info:
        info_attrs = nl.parse_attrs(info)
        if nl.IFLA_INFO_KIND in info_attrs:
            link["kind"] = nl.cstr(info_attrs[nl.IFLA_INFO_KIND])
        if nl.IFLA_INFO_SLAVE_KIND in info_attrs:
            link["slave_kind"] = nl.cstr(info_attrs[nl.IFLA_INFO_SLAVE_KIND])
        data = info_attrs.get(nl.IFLA_INFO_DATA)
        if data and link["kind"] in _DATA_DECODERS:
            link["data"] = _DATA_DECODERS[link["kind"]](nl.parse_attrs(data))
    return link


def _bridge_data(attrs: dict[int, bytes]) -> dict[str, Any]:
    return {
        "stp_state": nl.u32(attrs[nl.IFLA_BR_STP_STATE]),
        "ageing_time": nl.u32(attrs[nl.IFLA_BR_AGEING_TIME]) // 100,
        "forward_delay": nl.u32(attrs[nl.IFLA_BR_FORWARD_DELAY]) // 100,
    }


def _vxlan_data(attrs: dict[int, bytes]) -> dict[str, Any]:
    local = None
    if nl.IFLA_VXLAN_LOCAL in attrs:
        local = nl.ip_text(2, attrs[nl.IFLA_VXLAN_LOCAL])
    elif nl.IFLA_VXLAN_LOCAL6 in attrs:
        local = nl.ip_text(10, attrs[nl.IFLA_VXLAN_LOCAL6])
    return {
        "vni": nl.u32(attrs[nl.IFLA_VXLAN_ID]),
        "port": int.from_bytes(attrs[nl.IFLA_VXLAN_PORT], "big"),
        "learning": bool(attrs[nl.IFLA_VXLAN_LEARNING][0]),
        "local": local,
        "underlay": nl.u32(attrs[nl.IFLA_VXLAN_LINK]) if nl.IFLA_VXLAN_LINK in attrs else None,
    }


_DATA_DECODERS = {"bridge": _bridge_data, "vxlan": _vxlan_data}


def get_link(namespace: str | None, name: str) -> dict[str, Any]:
    """One device as a dict (see :func:`list_links`).

    :raises DeviceNotFound: no such device.
    """
    reply = get_socket(v.optional_namespace(namespace)).run([_get_link_request(name)])[0]
    if reply.error:
        raise translate(reply.error, "link", "get_link", name, namespace)
    return _decode_link(reply.payloads[0][1])


def list_links(namespace: str | None) -> list[dict[str, Any]]:
    """All devices of a namespace, from one dump.

    :returns: dicts with ``index``, ``name``, ``up``, ``mtu``, ``mac``, ``master``
        (ifindex or None), ``kind`` (``veth``, ``bridge``, ``vxlan``, ``tun``, ...),
        ``slave_kind`` and ``data`` (bridge: stp_state, ageing_time, forward_delay;
        vxlan: vni, port, learning, local, underlay ifindex).
    """
    sock = get_socket(v.optional_namespace(namespace))
    body = nl.IFINFOMSG.pack(0, 0, 0, 0, 0)
    return [_decode_link(p) for p in sock.dump(nl.RTM_GETLINK, body)]
