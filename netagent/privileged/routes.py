"""Routes in any table, and policy routing rules."""

from __future__ import annotations

import socket
from typing import Any

from netagent.privileged import batch
from netagent.privileged import nlcodec as nl
from netagent.privileged import validate as v
from netagent.privileged.nlbuild import ROUTE_TYPES, SCOPES
from netagent.privileged.nlsocket import get_socket

_TYPE_NAMES = {value: key for key, value in ROUTE_TYPES.items()}
_SCOPE_NAMES = {value: key for key, value in SCOPES.items()}
_FAMILIES = {0: 0, 4: socket.AF_INET, 6: socket.AF_INET6}


def add_route(namespace: str | None, destination: str, **options: Any) -> None:
    """Add a route.

    :param destination: network in CIDR form, ``0.0.0.0/0`` or ``::/0`` for default.
    :param options: ``table`` (default 254, main), ``gateway``, ``device``, ``type``
        (unicast, blackhole, unreachable, prohibit), ``scope`` (universe, link, host;
        default link for a device route without gateway), ``metric``, ``source``
        (preferred source), ``onlink``, ``replace`` (create or replace).
    :raises EntryExists: such a route exists and ``replace`` is false.
    """
    batch.execute_one(namespace, {"op": "add_route", "destination": destination, **options})


def delete_route(namespace: str | None, destination: str, **options: Any) -> None:
    """Delete the route matching ``destination`` and the given options.

    :raises EntryNotFound: no such route.
    """
    batch.execute_one(namespace, {"op": "delete_route", "destination": destination, **options})


def list_routes(
    namespace: str | None, table: int | None = None, family: int = 0
) -> list[dict[str, Any]]:
    """Routes of a namespace from one dump, filtered by ``table`` when given.

    :returns: dicts with ``destination``, ``table``, ``type``, ``scope``, ``gateway``,
        ``oif`` (ifindex), ``metric``, ``source``, ``protocol``, ``family``.
    """
    sock = get_socket(v.optional_namespace(namespace))
    head = nl.RTMSG.pack(_FAMILIES[family], 0, 0, 0, 0, 0, 0, 0, 0)
    result = []
    for payload in sock.dump(nl.RTM_GETROUTE, head):
        fam, dst_len, _s, _t, rtable, proto, scope, rtype, _f = nl.RTMSG.unpack_from(payload)
        attrs = nl.parse_attrs(payload, nl.RTMSG.size)
        table_id = nl.u32(attrs[nl.RTA_TABLE]) if nl.RTA_TABLE in attrs else rtable
        if table is not None and table_id != table:
            continue
        zero = "::" if fam == socket.AF_INET6 else "0.0.0.0"
        dst = nl.ip_text(fam, attrs[nl.RTA_DST]) if nl.RTA_DST in attrs else zero
        result.append(
            {
                "destination": f"{dst}/{dst_len}",
                "table": table_id,
                "type": _TYPE_NAMES.get(rtype, str(rtype)),
                "scope": _SCOPE_NAMES.get(scope, str(scope)),
                "gateway": _ip(fam, attrs.get(nl.RTA_GATEWAY)),
                "oif": nl.u32(attrs[nl.RTA_OIF]) if nl.RTA_OIF in attrs else None,
                "metric": nl.u32(attrs[nl.RTA_PRIORITY]) if nl.RTA_PRIORITY in attrs else None,
                "source": _ip(fam, attrs.get(nl.RTA_PREFSRC)),
                "protocol": proto,
                "family": 6 if fam == socket.AF_INET6 else 4,
            }
        )
    return result


def _ip(family: int, packed: bytes | None) -> str | None:
    return nl.ip_text(family, packed) if packed else None


def add_rule(namespace: str | None, **options: Any) -> None:
    """Add a policy routing rule (``ip rule add``).

    :param options: ``family`` (4 or 6, default 4), ``priority``, ``table``, ``source``
        and ``destination`` (CIDR), ``iif``, ``oif`` (device names), ``fwmark``,
        ``fwmask``.
    :raises EntryExists: an identical rule exists.
    """
    batch.execute_one(namespace, {"op": "add_rule", **options})


def delete_rule(namespace: str | None, **options: Any) -> None:
    """Delete the rule matching the options (same keys as :func:`add_rule`).

    :raises EntryNotFound: no such rule.
    """
    batch.execute_one(namespace, {"op": "delete_rule", **options})


def list_rules(namespace: str | None, family: int = 4) -> list[dict[str, Any]]:
    """Rules of one family from one dump.

    :returns: dicts with ``priority``, ``table``, ``source``, ``destination``, ``iif``,
        ``oif``, ``fwmark``, ``fwmask``, ``action``, ``family``.
    """
    sock = get_socket(v.optional_namespace(namespace))
    af = _FAMILIES[family]
    result = []
    for payload in sock.dump(nl.RTM_GETRULE, nl.FIBRULEHDR.pack(af, 0, 0, 0, 0, 0, 0, 0, 0)):
        fam, dst_len, src_len, _tos, rtable, _r1, _r2, action, _f = nl.FIBRULEHDR.unpack_from(
            payload
        )
        attrs = nl.parse_attrs(payload, nl.FIBRULEHDR.size)
        src = attrs.get(nl.FRA_SRC)
        dst = attrs.get(nl.FRA_DST)
        result.append(
            {
                "priority": nl.u32(attrs[nl.FRA_PRIORITY]) if nl.FRA_PRIORITY in attrs else 0,
                "table": nl.u32(attrs[nl.FRA_TABLE]) if nl.FRA_TABLE in attrs else rtable,
                "source": f"{nl.ip_text(fam, src)}/{src_len}" if src else None,
                "destination": f"{nl.ip_text(fam, dst)}/{dst_len}" if dst else None,
                "iif": nl.cstr(attrs[nl.FRA_IIFNAME]) if nl.FRA_IIFNAME in attrs else None,
                "oif": nl.cstr(attrs[nl.FRA_OIFNAME]) if nl.FRA_OIFNAME in attrs else None,
                "fwmark": nl.u32(attrs[nl.FRA_FWMARK]) if nl.FRA_FWMARK in attrs else None,
                "fwmask": nl.u32(attrs[nl.FRA_FWMASK]) if nl.FRA_FWMASK in attrs else None,
                "action": action,
                "family": 6 if fam == socket.AF_INET6 else 4,
            }
        )
    return result
