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


def get_link(name: str, *, header_only: bool = False) -> Request:
    """RTM_GETLINK by name; ``header_only`` decodes the reply without attributes (index)."""
    msg = ifinfo([("IFLA_IFNAME", v.device_name(name))])
    return Request(nl.RTM_GETLINK, 0, msg, nl.IfinfHeader if header_only else None)
