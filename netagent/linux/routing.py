"""Policy routing for drivers: routes in any table and ``ip rule`` entries.

All functions take ipaddress objects and validated device names, and act inside the given
namespace (``None``: the agent's own). Errors are the typed exceptions of
:mod:`netagent.privileged.errors` (``EntryExists``, ``EntryNotFound``, ``DeviceNotFound``).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any, Literal

from netagent.privileged import batch as priv_batch
from netagent.privileged import links as priv_links
from netagent.privileged import routes as priv_routes
from netagent.privileged import validate
from netagent.privileged.errors import InvalidArgument

LOG = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RouteType = Literal["unicast", "blackhole", "unreachable", "prohibit"]
Scope = Literal["universe", "link", "host"]
MAIN_TABLE = 254


@dataclass(frozen=True)
class Route:
    """A route as the kernel reports it."""

    destination: IPNetwork
    table: int
    type: str
    scope: str
    gateway: IPAddress | None
    device: str | None
    metric: int | None
    source: IPAddress | None


@dataclass(frozen=True)
class Rule:
    """A policy routing rule as the kernel reports it."""

    priority: int
    table: int
    source: IPNetwork | None
    destination: IPNetwork | None
    iif: str | None
    oif: str | None
    fwmark: int | None
    fwmask: int | None


def _route_op(
    opname: str,
    *,
    destination: IPNetwork,
    table: int,
    gateway: IPAddress | None,
    device: str | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    if not isinstance(destination, ipaddress.IPv4Network | ipaddress.IPv6Network):
        raise InvalidArgument("destination", destination, "IPv4Network/IPv6Network expected")
    op: dict[str, Any] = {
        "op": opname,
        "destination": str(destination),
        "table": validate.int_range(table, 1, 2**32 - 1, "table"),
    }
    if gateway is not None:
        if gateway.version != destination.version:
            raise InvalidArgument("gateway", gateway, "address family differs from destination")
        op["gateway"] = str(gateway)
    if device is not None:
        op["device"] = validate.device_name(device)
    op.update({key: value for key, value in options.items() if value is not None})
    if "source" in op:
        op["source"] = str(op["source"])
    return op


def route_op(
    destination: IPNetwork,
    *,
    table: int = MAIN_TABLE,
    gateway: IPAddress | None = None,
    device: str | None = None,
    type: RouteType = "unicast",
    scope: Scope | None = None,
    metric: int | None = None,
    source: IPAddress | None = None,
    onlink: bool = False,
    replace: bool = False,
) -> dict[str, Any]:
    """The batch operation for :func:`add_route` (for ``ip_lib.Batch.add_raw``)."""
    options = {"type": type, "scope": scope, "metric": metric, "source": source}
    options.update({"onlink": onlink or None, "replace": replace or None})
    return _route_op(
        "add_route",
        destination=destination,
        table=table,
        gateway=gateway,
        device=device,
        options=options,
    )


def add_route(
    destination: IPNetwork,
    *,
    namespace: str | None = None,
    table: int = MAIN_TABLE,
    gateway: IPAddress | None = None,
    device: str | None = None,
    type: RouteType = "unicast",
    scope: Scope | None = None,
    metric: int | None = None,
    source: IPAddress | None = None,
    onlink: bool = False,
    replace: bool = False,
) -> None:
    """Add a route to ``table``.

    :param destination: e.g. ``ip_network("0.0.0.0/0")`` for a default route.
    :param gateway: next hop; with ``onlink`` it need not be on a connected subnet.
    :param device: output device; a device route without gateway gets scope link.
    :param type: ``blackhole``/``unreachable``/``prohibit`` need neither gateway nor device.
    :param metric: route priority (lower wins).
    :param source: preferred source address.
    :param replace: create or replace instead of failing on an existing route.
    :raises EntryExists: the route exists and ``replace`` is false.
    :raises DeviceNotFound: ``device`` does not exist.
    """
    op = route_op(
        destination,
        table=table,
        gateway=gateway,
        device=device,
        type=type,
        scope=scope,
        metric=metric,
        source=source,
        onlink=onlink,
        replace=replace,
    )
    priv_batch.execute_one(validate.optional_namespace(namespace), op)


def delete_route(
    destination: IPNetwork,
    *,
    namespace: str | None = None,
    table: int = MAIN_TABLE,
    gateway: IPAddress | None = None,
    device: str | None = None,
    type: RouteType = "unicast",
    metric: int | None = None,
) -> None:
    """Delete the route matching the arguments.

    :raises EntryNotFound: no such route.
    """
    options: dict[str, Any] = {"type": type, "metric": metric, "scope": "universe"}
    op = _route_op(
        "delete_route",
        destination=destination,
        table=table,
        gateway=gateway,
        device=device,
        options=options,
    )
    priv_batch.execute_one(validate.optional_namespace(namespace), op)


def list_routes(
    *, namespace: str | None = None, table: int | None = None, family: int = 0
) -> list[Route]:
    """Routes of a namespace (one dump), optionally only those of ``table``.

    :param family: 4, 6 or 0 for both. IPv6 results include the kernel's own
        multicast/local routes of the ``local`` table when ``table`` is None.
    """
    ns = validate.optional_namespace(namespace)
    if family not in (0, 4, 6):
        raise InvalidArgument("family", family, "0, 4 or 6")
    names = {item["index"]: item["name"] for item in priv_links.list_links(ns)}
    result = []
    for item in priv_routes.list_routes(ns, table, family):
        result.append(
            Route(
                destination=ipaddress.ip_network(item["destination"], strict=False),
                table=item["table"],
                type=item["type"],
                scope=item["scope"],
                gateway=ipaddress.ip_address(item["gateway"]) if item["gateway"] else None,
                device=names.get(item["oif"]) if item["oif"] else None,
                metric=item["metric"],
                source=ipaddress.ip_address(item["source"]) if item["source"] else None,
            )
        )
    return result


def _rule_op(
    opname: str,
    *,
    priority: int | None,
    table: int,
    source: IPNetwork | None,
    destination: IPNetwork | None,
    iif: str | None,
    oif: str | None,
    fwmark: int | None,
    fwmask: int | None,
    family: int | None,
) -> dict[str, Any]:
    versions = {net.version for net in (source, destination) if net is not None}
    if family is None:
        family = versions.pop() if len(versions) == 1 else 4
    if versions - {family}:
        raise InvalidArgument("family", family, "differs from the source/destination family")
    op: dict[str, Any] = {
        "op": opname,
        "family": family,
        "table": validate.int_range(table, 1, 2**32 - 1, "table"),
    }
    if priority is not None:
        op["priority"] = validate.int_range(priority, 0, 2**32 - 1, "priority")
    if source is not None:
        op["source"] = str(source)
    if destination is not None:
        op["destination"] = str(destination)
    if iif is not None:
        op["iif"] = validate.device_name(iif, "iif")
    if oif is not None:
        op["oif"] = validate.device_name(oif, "oif")
    if fwmark is not None:
        op["fwmark"] = validate.int_range(fwmark, 0, 2**32 - 1, "fwmark")
        if fwmask is not None:
            op["fwmask"] = validate.int_range(fwmask, 0, 2**32 - 1, "fwmask")
    return op


def add_rule(
    *,
    table: int,
    namespace: str | None = None,
    priority: int | None = None,
    source: IPNetwork | None = None,
    destination: IPNetwork | None = None,
    iif: str | None = None,
    oif: str | None = None,
    fwmark: int | None = None,
    fwmask: int | None = None,
    family: int | None = None,
) -> None:
    """Add a rule sending matching packets to ``table`` (``ip rule add ... lookup T``).

    :param family: 4 or 6; derived from ``source``/``destination`` when omitted.
    :raises EntryExists: an identical rule exists.
    """
    op = _rule_op(
        "add_rule",
        priority=priority,
        table=table,
        source=source,
        destination=destination,
        iif=iif,
        oif=oif,
        fwmark=fwmark,
        fwmask=fwmask,
        family=family,
    )
    priv_batch.execute_one(validate.optional_namespace(namespace), op)


def delete_rule(
    *,
    table: int,
    namespace: str | None = None,
    priority: int | None = None,
    source: IPNetwork | None = None,
    destination: IPNetwork | None = None,
    iif: str | None = None,
    oif: str | None = None,
    fwmark: int | None = None,
    fwmask: int | None = None,
    family: int | None = None,
) -> None:
    """Delete the rule matching the arguments.

    :raises EntryNotFound: no such rule.
    """
    op = _rule_op(
        "delete_rule",
        priority=priority,
        table=table,
        source=source,
        destination=destination,
        iif=iif,
        oif=oif,
        fwmark=fwmark,
        fwmask=fwmask,
        family=family,
    )
    priv_batch.execute_one(validate.optional_namespace(namespace), op)


def list_rules(*, namespace: str | None = None, family: int = 4) -> list[Rule]:
    """Rules of one address family, in priority order (one dump)."""
    if family not in (4, 6):
        raise InvalidArgument("family", family, "4 or 6")
    result = []
    for item in priv_routes.list_rules(validate.optional_namespace(namespace), family):
        result.append(
            Rule(
                priority=item["priority"],
                table=item["table"],
                source=ipaddress.ip_network(item["source"]) if item["source"] else None,
                destination=(
                    ipaddress.ip_network(item["destination"]) if item["destination"] else None
                ),
                iif=item["iif"],
                oif=item["oif"],
                fwmark=item["fwmark"],
                fwmask=item["fwmask"],
            )
        )
    return result
