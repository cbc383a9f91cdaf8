"""Neighbour (ARP/ND, proxy) and bridge FDB entries."""

from __future__ import annotations

import socket
from typing import Any

from netagent.privileged import batch
from netagent.privileged import nlcodec as nl
from netagent.privileged import validate as v
from netagent.privileged.nlsocket import get_socket


def add_neighbour(
    namespace: str | None, device: str, address: str, mac: str | None, proxy: bool = False
) -> None:
    """Add or replace a permanent neighbour entry, or a proxy entry (``mac`` unused).

    :raises DeviceNotFound: no such device.
    """
    op = {"op": "add_neighbour", "device": device, "address": address, "mac": mac}
    batch.execute_one(namespace, {**op, "proxy": proxy})


def delete_neighbour(
    namespace: str | None, device: str, address: str, proxy: bool = False
) -> None:
    """Delete a neighbour or proxy entry.

    :raises EntryNotFound: no such entry.
    """
    op = {"op": "delete_neighbour", "device": device, "address": address, "proxy": proxy}
    batch.execute_one(namespace, op)


def list_neighbours(namespace: str | None, proxy: bool = False) -> list[dict[str, Any]]:
    """IPv4 and IPv6 neighbour entries (or proxy entries) from one dump.

    :returns: dicts with ``index``, ``address``, ``mac`` (None if unresolved), ``state``.
    """
    sock = get_socket(v.optional_namespace(namespace))
    flags = nl.NTF_PROXY if proxy else 0
    result = []
    for payload in sock.dump(nl.RTM_GETNEIGH, nl.NDMSG.pack(0, 0, 0, 0, 0, flags, 0)):
        family, _p1, _p2, index, state, ntf, _t = nl.NDMSG.unpack_from(payload)
        if family not in (socket.AF_INET, socket.AF_INET6) or bool(ntf & nl.NTF_PROXY) != proxy:
            continue
        attrs = nl.parse_attrs(payload, nl.NDMSG.size)
        if nl.NDA_DST not in attrs:
            continue
        lladdr = attrs.get(nl.NDA_LLADDR)
        result.append(
            {
                "index": index,
                "address": nl.ip_text(family, attrs[nl.NDA_DST]),
                "mac": nl.mac_text(lladdr) if lladdr and len(lladdr) == 6 else None,
                "state": state,
            }
        )
    return result


def add_fdb(
    namespace: str | None,
    device: str,
    mac: str,
    *,
    destination: str | None = None,
    append: bool = False,
    master: bool = False,
) -> None:
    """Add a bridge FDB entry (``bridge fdb add/append``).

    :param device: a VXLAN device (``master`` False, entry on the device itself) or a
        bridge port (``master`` True, entry in the bridge's table).
    :param destination: VXLAN remote for the entry.
    :param append: add one more destination for the same MAC (flooding lists use
        ``00:00:00:00:00:00`` with one entry per remote).
    """
    op = {"op": "add_fdb", "device": device, "mac": mac, "destination": destination}
    batch.execute_one(namespace, {**op, "append": append, "master": master})


def delete_fdb(
    namespace: str | None,
    device: str,
    mac: str,
    *,
    destination: str | None = None,
    master: bool = False,
) -> None:
    """Delete one FDB entry.

    :raises EntryNotFound: no such entry.
    """
    op = {"op": "delete_fdb", "device": device, "mac": mac, "destination": destination}
    batch.execute_one(namespace, {**op, "master": master})


def list_fdb(namespace: str | None) -> list[dict[str, Any]]:
    """All bridge FDB entries of a namespace from one dump.

    :returns: dicts with ``index`` (port or VXLAN ifindex), ``mac``, ``destination``,
        ``master`` (bridge ifindex or None), ``state``, ``flags``.
    """
    sock = get_socket(v.optional_namespace(namespace))
    result = []
    for payload in sock.dump(nl.RTM_GETNEIGH, nl.NDMSG.pack(nl.AF_BRIDGE, 0, 0, 0, 0, 0, 0)):
        _fam, _p1, _p2, index, state, ntf, _t = nl.NDMSG.unpack_from(payload)
        attrs = nl.parse_attrs(payload, nl.NDMSG.size)
        dst = attrs.get(nl.NDA_DST)
        lladdr = attrs.get(nl.NDA_LLADDR)
        result.append(
            {
                "index": index,
                "mac": nl.mac_text(lladdr) if lladdr else None,
                "destination": _dst_text(dst),
                "master": nl.u32(attrs[nl.NDA_MASTER]) if nl.NDA_MASTER in attrs else None,
                "state": state,
                "flags": ntf,
            }
        )
    return result


def _dst_text(packed: bytes | None) -> str | None:
    if not packed:
        return None
    family = socket.AF_INET6 if len(packed) == 16 else socket.AF_INET
    return nl.ip_text(family, packed)
