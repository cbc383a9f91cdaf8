"""Helpers that fill in pyroute2 rtnetlink messages for :mod:`netagent.privileged.ops`.

An operation's ``build`` returns a list of ``(kind, target, request)``: ``kind`` selects the
error translation (``"link"`` or an entry kind), ``target`` names the resource in messages
and logs. Builders get a :class:`Context` whose ``resolve(name) -> ifindex`` serves
attributes that need an interface index. Messages are encoded by pyroute2 when sent
(:func:`netagent.privileged.nlcodec.encode`).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable
from typing import Any

from netagent.privileged import nlcodec as nl
from netagent.privileged import nsenter
from netagent.privileged import validate as v
from netagent.privileged.nlsocket import Request

Resolver = Callable[[str], int]
Built = list[tuple[str, str, Request]]
#: pyroute2 attribute list: ``[("IFLA_IFNAME", "eth0"), ("IFLA_MTU", 1500), ...]``
Attrs = list[tuple[Any, ...]]

CREATE_EXCL = nl.NLM_F_CREATE | nl.NLM_F_EXCL
CREATE_REPLACE = nl.NLM_F_CREATE | nl.NLM_F_REPLACE
USER_HZ = 100


class Context:
    """What builders need besides the operation: index resolution, and namespace fds to
    close once the requests that carry them are sent."""

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


_NLA_HEADER = struct.Struct("=HH")
_IFINFO = struct.Struct("=BxHiII")
_U32 = struct.Struct("=I")
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_MASTER = 10


def nla(nla_type: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    length = _NLA_HEADER.size + len(payload)
    return _NLA_HEADER.pack(length, nla_type) + payload + b"\0" * (-length % 4)


def nla_u32(nla_type: int, value: int) -> bytes:
    """A u32 attribute (host byte order)."""
    return nla(nla_type, _U32.pack(value))


def nla_string(nla_type: int, value: str) -> bytes:
    """A NUL-terminated string attribute."""
    return nla(nla_type, value.encode() + b"\0")


def raw_ifinfo(attrs: bytes, up: bool | None = None, index: int = 0) -> bytes:
    """The encoded body of an ``ifinfmsg`` (``struct ifinfomsg`` then ``attrs``).

    Built with ``struct`` for the operations sent once per port: pyroute2's encoder costs
    about 100 us a message here, this a few.
    """
    fields = ifinfo_fields(up, index)
    header = _IFINFO.pack(
        fields["family"], fields["ifi_type"], index, fields["flags"], fields["change"]
    )
    return header + attrs


def ifinfo_fields(up: bool | None, index: int = 0) -> dict[str, int]:
    """``struct ifinfomsg``: ``up`` None leaves IFF_UP alone (``change`` 0)."""
    return {
        "family": socket.AF_UNSPEC,
        "ifi_type": 0,
        "index": index,
        "flags": nl.IFF_UP if up else 0,
        "change": nl.IFF_UP if up is not None else 0,
    }


def ifinfo(attrs: Attrs, up: bool | None = None, index: int = 0) -> nl.Message:
    """An ``ifinfmsg`` with ``attrs``."""
    msg = nl.ifinfmsg()
    msg.update(ifinfo_fields(up, index))
    msg["attrs"] = attrs
    return msg


def linkinfo(kind: str, data: Attrs | None = None) -> tuple[Any, ...]:
    """``IFLA_LINKINFO`` with ``IFLA_INFO_KIND`` and optional ``IFLA_INFO_DATA``."""
    parts: Attrs = [("IFLA_INFO_KIND", kind)]
    if data is not None:
        parts.append(("IFLA_INFO_DATA", {"attrs": data}))
    return ("IFLA_LINKINFO", {"attrs": parts})


def family(version: int) -> int:
    """``AF_INET`` or ``AF_INET6`` for IP version 4 or 6."""
    return socket.AF_INET6 if version == 6 else socket.AF_INET


def ndmsg(family: int, ifindex: int, state: int, flags: int, attrs: Attrs) -> nl.Message:
    """An ``ndmsg`` (neighbour or FDB entry)."""
    msg = nl.ndmsg()
    msg.update({"family": family, "ifindex": ifindex, "state": state, "flags": flags})
    msg["ndm_type"] = 0
    msg["attrs"] = attrs
    return msg


#: rtnetlink.h: leave the per-device statistics out of link replies (half of each message)
RTEXT_FILTER_SKIP_STATS = 1 << 3
_IFLA_EXT_MASK = 29


def get_link(name: str | None = None, index: int = 0) -> Request:
    """RTM_GETLINK by name or ifindex, without statistics; the reply is left undecoded
    (:class:`~netagent.privileged.nlcodec.RawMessage`, see
    :mod:`netagent.privileged.linkdecode`)."""
    attrs = nla_u32(_IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
    if name is not None:
        attrs = nla_string(IFLA_IFNAME, v.device_name(name)) + attrs
    return Request(nl.RTM_GETLINK, 0, raw_ifinfo(attrs, index=index), nl.RawMessage)
