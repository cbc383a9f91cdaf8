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
from netagent.privileged.nlsocket import Request, get_socket

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


def create_vlan(namespace: str | None, name: str, link: str, vlan_id: int, **options: Any) -> None:
    """Create an 802.1q device ``name`` on ``link`` (``mtu``, ``mac``, ``up`` options).

    :raises DeviceNotFound: ``link`` does not exist.
    :raises KernelError: e.g. EOPNOTSUPP when the kernel has no 8021q support.
    """
    op = {"op": "create_vlan", "name": name, "link": link, "vlan_id": vlan_id, **options}
    batch.execute_one(namespace, op)


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


def set_bridge_port(namespace: str | None, name: str, **flags: bool) -> None:
    """Set bridge port flags of ``name``: ``neigh_suppress``, ``learning``.

    :raises DeviceNotFound: no such device.
    :raises KernelError: EOPNOTSUPP when ``name`` is not a bridge port.
    """
    batch.execute_one(namespace, {"op": "set_bridge_port", "name": name, **flags})


def set_link(namespace: str | None, name: str, **changes: Any) -> None:
    """Change a device: ``mtu``, ``mac``, ``up`` (bool), ``master`` (name; "" releases).

    :raises DeviceNotFound: the device (or the master) does not exist.
    """
    batch.execute_one(namespace, {"op": "set_link", "name": name, **changes})


def _decode_link(msg: nl.Message) -> dict[str, Any]:
    """A pyroute2 ``ifinfmsg`` as the primitives :func:`list_links` returns."""
    link: dict[str, Any] = {
        "index": int(msg["index"]),
        "name": msg.get_attr("IFLA_IFNAME") or "",
        "up": bool(msg["flags"] & nl.IFF_UP),
        "mtu": msg.get_attr("IFLA_MTU"),
        "mac": nl.mac_attr(msg, "IFLA_ADDRESS"),
        "master": msg.get_attr("IFLA_MASTER"),
        "kind": None,
        "slave_kind": None,
        "data": {},
        "port": {},
    }
    info = msg.get_attr("IFLA_LINKINFO")
    if info is not None:
        link["kind"] = info.get_attr("IFLA_INFO_KIND")
        link["slave_kind"] = info.get_attr("IFLA_INFO_SLAVE_KIND")
        decoder = _DATA_DECODERS.get(link["kind"])
        data = info.get_attr("IFLA_INFO_DATA") if decoder else None
        if decoder and data is not None:
            link["data"] = decoder(msg, data)
        if link["slave_kind"] == "bridge":
            port = info.get_attr("IFLA_INFO_SLAVE_DATA")
            if port is not None:
                link["port"] = _bridge_port_data(port)
    return link


def _bridge_port_data(port: nl.Message) -> dict[str, Any]:
    """The bridge port flags netagent sets (``IFLA_BRPORT_*``), as bools."""
    result: dict[str, Any] = {}
    for key, nla in (
        ("neigh_suppress", "IFLA_BRPORT_NEIGH_SUPPRESS"),
        ("learning", "IFLA_BRPORT_LEARNING"),
    ):
        value = port.get_attr(nla)
        result[key] = None if value is None else bool(value)
    return result


def _bridge_data(_msg: nl.Message, data: nl.Message) -> dict[str, Any]:
    return {
        "stp_state": data.get_attr("IFLA_BR_STP_STATE"),
        "ageing_time": data.get_attr("IFLA_BR_AGEING_TIME") // 100,
        "forward_delay": data.get_attr("IFLA_BR_FORWARD_DELAY") // 100,
    }


def _vxlan_data(_msg: nl.Message, data: nl.Message) -> dict[str, Any]:
    return {
        "vni": data.get_attr("IFLA_VXLAN_ID"),
        "port": data.get_attr("IFLA_VXLAN_PORT"),  # pyroute2 decodes be16 to host order
        "learning": bool(data.get_attr("IFLA_VXLAN_LEARNING")),
        "local": data.get_attr("IFLA_VXLAN_LOCAL") or data.get_attr("IFLA_VXLAN_LOCAL6"),
        "underlay": data.get_attr("IFLA_VXLAN_LINK"),
    }


def _vlan_data(msg: nl.Message, data: nl.Message) -> dict[str, Any]:
    return {"vlan_id": data.get_attr("IFLA_VLAN_ID"), "link": msg.get_attr("IFLA_LINK")}


_DATA_DECODERS = {"bridge": _bridge_data, "vxlan": _vxlan_data, "vlan": _vlan_data}


def get_link(namespace: str | None, name: str) -> dict[str, Any]:
    """One device as a dict (see :func:`list_links`).

    :raises DeviceNotFound: no such device.
    """
    reply = get_socket(v.optional_namespace(namespace)).run([_get_link_request(name)])[0]
    if reply.error:
        raise translate(reply.error, "link", "get_link", name, namespace)
    return _decode_link(reply.messages[0])


def get_link_name(namespace: str | None, index: int) -> str:
    """The name of the device with ifindex ``index``.

    :raises DeviceNotFound: no such device.
    """
    v.int_range(index, 1, 2**31 - 1, "index")
    msg = nl.ifinfmsg()
    msg.update({"family": 0, "ifi_type": 0, "index": index, "flags": 0, "change": 0})
    msg["attrs"] = []
    reply = get_socket(v.optional_namespace(namespace)).run([Request(nl.RTM_GETLINK, 0, msg)])[0]
    if reply.error:
        raise translate(reply.error, "link", "get_link", f"ifindex {index}", namespace)
    return str(reply.messages[0].get_attr("IFLA_IFNAME"))


def list_links(namespace: str | None) -> list[dict[str, Any]]:
    """All devices of a namespace, from one dump.

    :returns: dicts with ``index``, ``name``, ``up``, ``mtu``, ``mac``, ``master``
        (ifindex or None), ``kind`` (``veth``, ``bridge``, ``vxlan``, ``tun``, ...),
        ``slave_kind``, ``data`` (bridge: stp_state, ageing_time, forward_delay;
        vxlan: vni, port, learning, local, underlay ifindex; vlan: vlan_id, link ifindex)
        and ``port`` (bridge ports: ``neigh_suppress``, ``learning``; else empty).
    """
    sock = get_socket(v.optional_namespace(namespace))
    return [_decode_link(msg) for msg in sock.dump(nl.RTM_GETLINK, _dump_request)]


def _dump_request() -> nl.Message:
    msg = nl.ifinfmsg()
    msg.update({"family": 0, "ifi_type": 0, "index": 0, "flags": 0, "change": 0})
    return msg
