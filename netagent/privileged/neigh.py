"""Reading neighbour (ARP/ND) and bridge FDB entries."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from netagent.privileged import nlcodec as nl
from netagent.privileged import validate as v
from netagent.privileged.nlsocket import get_socket


def list_neighbours(namespace: str | None) -> list[dict[str, Any]]:
    """IPv4 and IPv6 neighbour entries from one dump (proxy entries left out).

    :returns: dicts with ``index``, ``address``, ``mac`` (None if unresolved), ``state``.
    """
    sock = get_socket(v.optional_namespace(namespace))
    result = []
    for msg in sock.dump(nl.RTM_GETNEIGH, lambda: _request(socket.AF_UNSPEC, 0)):
        family = msg["family"]
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        if msg["flags"] & nl.NTF_PROXY:
            continue
        address = msg.get_attr("NDA_DST")
        if address is None:
            continue
        result.append(
            {
                "index": int(msg["ifindex"]),
                "address": address,
                "mac": nl.mac_attr(msg, "NDA_LLADDR"),
                "state": int(msg["state"]),
            }
        )
    return result


def _request(family: int, flags: int) -> nl.Message:
    msg = nl.ndmsg()
    msg.update({"family": family, "ifindex": 0, "state": 0, "flags": flags, "ndm_type": 0})
    return msg


def _port_request(index: int) -> nl.Message:
    msg = nl.ifinfmsg()
    msg.update({"family": socket.AF_BRIDGE, "ifi_type": 0, "index": index, "flags": 0})
    msg["change"] = 0
    msg["attrs"] = []
    return msg


def list_fdb(namespace: str | None, index: int | None = None) -> list[dict[str, Any]]:
    """Bridge FDB entries of a namespace from one dump.

    :param index: only the entries of the device with this ifindex (its own, e.g. a VXLAN
        device's, and those of its bridge on it), filtered by the kernel: the request
        then carries an ``ifinfomsg`` whose ``ifi_index`` selects the port, as
        ``bridge fdb show dev X`` sends it.
    :returns: dicts with ``index`` (port or VXLAN ifindex), ``mac``, ``destination``,
        ``master`` (bridge ifindex or None), ``state``, ``flags``.
    """
    sock = get_socket(v.optional_namespace(namespace))
    if index is None:
        factory: Callable[[], nl.Message] = lambda: _request(socket.AF_BRIDGE, 0)  # noqa: E731
    else:
        port = v.int_range(index, 1, 2**31 - 1, "index")
        factory = lambda: _port_request(port)  # noqa: E731
    result = []
    for msg in sock.dump(nl.RTM_GETNEIGH, factory):
        lladdr = nl.mac_attr(msg, "NDA_LLADDR")
        result.append(
            {
                "index": int(msg["ifindex"]),
                "mac": lladdr,
                "destination": msg.get_attr("NDA_DST"),
                "master": msg.get_attr("NDA_MASTER"),
                "state": int(msg["state"]),
                "flags": int(msg["flags"]),
            }
        )
    return result
