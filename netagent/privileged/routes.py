"""Routes in any table, and policy routing rules."""

from __future__ import annotations

import socket
from typing import Any

from netagent.privileged import nlcodec as nl
from netagent.privileged import validate as v
from netagent.privileged.nlsocket import get_socket
from netagent.privileged.ops import ROUTE_TYPES, SCOPES

_TYPE_NAMES = {value: key for key, value in ROUTE_TYPES.items()}
_SCOPE_NAMES = {value: key for key, value in SCOPES.items()}
_FAMILIES = {0: 0, 4: socket.AF_INET, 6: socket.AF_INET6}


def list_routes(
    namespace: str | None, table: int | None = None, family: int = 0, *, local: bool = True
) -> list[dict[str, Any]]:
    """Routes of a namespace from one dump, filtered by ``table`` when given.

    :param local: include the ``local`` table (the kernel's local and broadcast routes, a
        good half of a small namespace's routes); without it those messages are skipped
        before they are decoded.
    :returns: dicts with ``destination``, ``table``, ``type``, ``scope``, ``gateway``,
        ``oif`` (ifindex), ``metric``, ``source``, ``protocol``, ``family``.
    """
    sock = get_socket(v.optional_namespace(namespace))
    af = _FAMILIES[family]

    def request() -> nl.Message:
        msg = nl.rtmsg()
        msg.update(dict.fromkeys(_RTMSG_FIELDS, 0))
        msg["family"] = af
        return msg

    result = []
    for raw in sock.dump(nl.RTM_GETROUTE, request, reply_class=nl.RawMessage):
        if not local and raw.data[_RTM_TABLE_OFFSET] == _RT_TABLE_LOCAL:
            continue
        msg = nl.decode_one(raw)
        table_id = msg.get_attr("RTA_TABLE", msg["table"])
        if table is not None and table_id != table:
            continue
        fam = msg["family"]
        zero = "::" if fam == socket.AF_INET6 else "0.0.0.0"
        result.append(
            {
                "destination": f"{msg.get_attr('RTA_DST') or zero}/{msg['dst_len']}",
                "table": table_id,
                "type": _TYPE_NAMES.get(msg["type"], str(msg["type"])),
                "scope": _SCOPE_NAMES.get(msg["scope"], str(msg["scope"])),
                "gateway": msg.get_attr("RTA_GATEWAY"),
                "oif": msg.get_attr("RTA_OIF"),
                "metric": msg.get_attr("RTA_PRIORITY"),
                "source": msg.get_attr("RTA_PREFSRC"),
                "protocol": msg["proto"],
                "family": 6 if fam == socket.AF_INET6 else 4,
            }
        )
    return result


#: rtm_table in a route message: after the netlink header, family, dst_len, src_len, tos
_RTM_TABLE_OFFSET = 16 + 4
_RT_TABLE_LOCAL = 255
_RTMSG_FIELDS = ("family", "dst_len", "src_len", "tos", "table", "proto", "scope", "type", "flags")
_FIBMSG_FIELDS = (
    "family",
    "dst_len",
    "src_len",
    "tos",
    "table",
    "res1",
    "res2",
    "action",
    "flags",
)


def list_rules(namespace: str | None, family: int = 4) -> list[dict[str, Any]]:
    """Rules of one family from one dump.

    :returns: dicts with ``priority``, ``table``, ``source``, ``destination``, ``iif``,
        ``oif``, ``fwmark``, ``fwmask``, ``action``, ``family``.
    """
    sock = get_socket(v.optional_namespace(namespace))
    af = _FAMILIES[family]

    def request() -> nl.Message:
        msg = nl.fibmsg()
        msg.update(dict.fromkeys(_FIBMSG_FIELDS, 0))
        msg["family"] = af
        return msg

    result = []
    for msg in sock.dump(nl.RTM_GETRULE, request):
        src = msg.get_attr("FRA_SRC")
        dst = msg.get_attr("FRA_DST")
        result.append(
            {
                "priority": msg.get_attr("FRA_PRIORITY", 0),
                "table": msg.get_attr("FRA_TABLE", msg["table"]),
                "source": f"{src}/{msg['src_len']}" if src else None,
                "destination": f"{dst}/{msg['dst_len']}" if dst else None,
                "iif": msg.get_attr("FRA_IIFNAME"),
                "oif": msg.get_attr("FRA_OIFNAME"),
                "fwmark": msg.get_attr("FRA_FWMARK"),
                "fwmask": msg.get_attr("FRA_FWMASK"),
                "action": msg["action"],
                "family": 6 if msg["family"] == socket.AF_INET6 else 4,
            }
        )
    return result
