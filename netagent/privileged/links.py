"""Reading network devices over the namespace's socket.

Changes go through :mod:`netagent.privileged.ops` and :mod:`netagent.privileged.batch`.
All functions take and return primitives. ``namespace=None`` means the agent's own
namespace. Devices are addressed by name; the kernel looks the name up itself.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

from netagent.privileged import linkdecode
from netagent.privileged import nlcodec as nl
from netagent.privileged import validate as v
from netagent.privileged.errors import translate
from netagent.privileged.nlbuild import RTEXT_FILTER_SKIP_STATS
from netagent.privileged.nlbuild import get_link as _get_link_request
from netagent.privileged.nlsocket import get_socket

LOG = logging.getLogger(__name__)

_TUNSETIFF = 0x400454CA
_TUNSETPERSIST = 0x400454CB
_IFF_TAP = 0x0002
_IFF_NO_PI = 0x1000


def get_link(namespace: str | None, name: str) -> dict[str, Any]:
    """One device as a dict (see :func:`list_links`).

    :raises DeviceNotFound: no such device.
    """
    request = _get_link_request(name)
    reply = get_socket(v.optional_namespace(namespace)).run([request])[0]
    if reply.error:
        raise translate(reply.error, "link", "get_link", name, namespace)
    return linkdecode.decode(reply.messages[0].data)


def get_links(namespace: str | None, names: list[str]) -> dict[str, dict[str, Any]]:
    """The devices of ``names`` that exist (see :func:`list_links`), pipelined gets.

    :raises KernelError: a get failed for another reason than a missing device.
    """
    requests = [_get_link_request(name) for name in names]
    replies = get_socket(v.optional_namespace(namespace)).run(requests)
    found: dict[str, dict[str, Any]] = {}
    for name, reply in zip(names, replies, strict=True):
        if reply.error == errno.ENODEV:
            continue
        if reply.error:
            raise translate(reply.error, "link", "get_link", name, namespace)
        found[name] = linkdecode.decode(reply.messages[0].data)
    return found


def get_link_name(namespace: str | None, index: int) -> str:
    """The name of the device with ifindex ``index``.

    :raises DeviceNotFound: no such device.
    """
    v.int_range(index, 1, 2**31 - 1, "index")
    request = _get_link_request(index=index)
    reply = get_socket(v.optional_namespace(namespace)).run([request])[0]
    if reply.error:
        raise translate(reply.error, "link", "get_link", f"ifindex {index}", namespace)
    return linkdecode.ifname(reply.messages[0].data) or ""


def list_links(namespace: str | None) -> list[dict[str, Any]]:
    """All devices of a namespace, from one dump.

    :returns: dicts with ``index``, ``name``, ``up``, ``mtu``, ``mac``, ``master``
        (ifindex or None), ``kind`` (``veth``, ``bridge``, ``vxlan``, ``tun``, ...),
        ``slave_kind``, ``data`` (bridge: stp_state, ageing_time, forward_delay;
        vxlan: vni, port, learning, local, underlay ifindex; vlan: vlan_id, link ifindex)
        and ``port`` (bridge ports: ``neigh_suppress``, ``learning``; else empty).
    """
    sock = get_socket(v.optional_namespace(namespace))
    messages = sock.dump(nl.RTM_GETLINK, dump_request, reply_class=nl.RawMessage)
    return [linkdecode.decode(msg.data) for msg in messages]


def dump_request() -> nl.Message:
    """An ``RTM_GETLINK`` dump request for every device, without statistics."""
    msg = nl.ifinfmsg()
    msg.update({"family": 0, "ifi_type": 0, "index": 0, "flags": 0, "change": 0})
    msg["attrs"] = [("IFLA_EXT_MASK", RTEXT_FILTER_SKIP_STATS)]
    return msg
