"""Policy routing for drivers: routes in any table and ``ip rule`` entries.

All functions take ipaddress objects and validated device names, and act inside the given
namespace (``None``: the agent's own). Errors are the typed exceptions of
:mod:`netagent.privileged.errors` (``EntryExists``, ``EntryNotFound``, ``DeviceNotFound``).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

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
#: route protocols (``rtm_protocol``): added by the kernel (connected routes), by a tool
PROTO_KERNEL = 2
PROTO_STATIC = 4


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
    #: who added it (``PROTO_KERNEL``, ``PROTO_STATIC``...)
    protocol: int = 0


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


def list_routes(
    *,
    namespace: str | None = None,
    table: int | None = None,
    family: int = 0,
    local: bool = True,
    names: Mapping[int, str] | None = None,
) -> list[Route]:
    """Routes of a namespace (one dump), optionally only those of ``table``.

    :param family: 4, 6 or 0 for both. IPv6 results include the kernel's own
        multicast/local routes of the ``local`` table when ``table`` is None.
    :param local: include the ``local`` table (skipped undecoded otherwise).
    :param names: device names by ifindex, when the caller has just read them (else one
        more dump reads them).
    """
    ns = validate.optional_namespace(namespace)
    if family not in (0, 4, 6):
        raise InvalidArgument("family", family, "0, 4 or 6")
    if names is None:
        names = {item["index"]: item["name"] for item in priv_links.list_links(ns)}
    result = []
    for item in priv_routes.list_routes(ns, table, family, local=local):
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
                protocol=item["protocol"],
            )
        )
    return result


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
