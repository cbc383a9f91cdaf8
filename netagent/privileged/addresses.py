"""IP addresses on devices."""

from __future__ import annotations

import socket
from typing import Any

from netagent.privileged import batch
from netagent.privileged import nlcodec as nl
from netagent.privileged import validate as v
from netagent.privileged.nlsocket import get_socket


def add_address(namespace: str | None, device: str, cidr: str, nodad: bool = False) -> None:
    """Add ``cidr`` (e.g. ``"198.18.0.1/15"``) to ``device``.

    :param nodad: IPv6 only: skip duplicate address detection (address usable at once).
    :raises EntryExists: the address is already there.
    :raises DeviceNotFound: no such device.
    """
    batch.execute_one(
        namespace, {"op": "add_address", "device": device, "cidr": cidr, "nodad": nodad}
    )


def delete_address(namespace: str | None, device: str, cidr: str) -> None:
    """Remove ``cidr`` from ``device``.

    :raises EntryNotFound: the address is not there.
    """
    batch.execute_one(namespace, {"op": "delete_address", "device": device, "cidr": cidr})


def list_addresses(namespace: str | None, family: int = 0) -> list[dict[str, Any]]:
    """Addresses of a namespace from one dump.

    :param family: 0 for both, 4 or 6.
    :returns: dicts with ``index`` (ifindex), ``cidr``, ``family`` (4/6), ``scope``,
        ``flags``.
    """
    af = {0: 0, 4: socket.AF_INET, 6: socket.AF_INET6}[family]
    sock = get_socket(v.optional_namespace(namespace))
    result = []
    for payload in sock.dump(nl.RTM_GETADDR, nl.IFADDRMSG.pack(af, 0, 0, 0, 0)):
        fam, plen, flags, scope, index = nl.IFADDRMSG.unpack_from(payload)
        attrs = nl.parse_attrs(payload, nl.IFADDRMSG.size)
        packed = attrs.get(nl.IFA_LOCAL) or attrs.get(nl.IFA_ADDRESS)
        if packed is None:
            continue
        if nl.IFA_FLAGS in attrs:
            flags = nl.u32(attrs[nl.IFA_FLAGS])
        result.append(
            {
                "index": index,
                "cidr": f"{nl.ip_text(fam, packed)}/{plen}",
                "family": 6 if fam == socket.AF_INET6 else 4,
                "scope": scope,
                "flags": flags,
            }
        )
    return result
