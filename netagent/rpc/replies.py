"""Server replies and l2population casts, checked and turned into model objects.

Every value from the wire passes through here (or :mod:`netagent.model`) before the rest
of the agent sees it. A bad entry is reported on its own and never spoils the others; a
reply whose overall shape is wrong raises :class:`BadReplyError`, which the caller treats like
a failed call.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping, Sequence

from netagent.common.exceptions import NetagentError
from netagent.model import DeviceDetails, ModelError, Router
from netagent.model import validate as v
from netagent.model.validate import IPAddress
from netagent.rpc.rejects import REJECTIONS

LOG = logging.getLogger(__name__)

#: l2population's "flood to this endpoint" entry (neutron-lib ``FLOODING_ENTRY``).
FLOODING_MAC = "00:00:00:00:00:00"

#: An FDB entry: (MAC, IP address); the IP is ``None`` for the flooding entry.
FdbEntry = tuple[str, IPAddress | None]


class BadReplyError(NetagentError):
    """A reply whose overall shape is not what the method returns.

    :param method: the RPC method.
    :param reason: what is wrong.
    """

    def __init__(self, method: str, reason: str) -> None:
        super().__init__(method, reason)
        self.method = method
        self.reason = reason

    def __str__(self) -> str:
        return f"malformed reply to {self.method}: {self.reason}"


@dataclasses.dataclass(frozen=True)
class DetailsReply:
    """A parsed ``get_devices_details_list_and_failed_devices`` reply.

    :ivar details: usable entries by the device string that was asked for.
    :ivar unbound: devices the server knows no bound port for (no ``port_id``).
    :ivar failed: devices the server failed to look up (retry later).
    :ivar malformed: device → error, for entries that failed validation.
    :ivar unattributed: errors of entries whose ``device`` could not be read.
    """

    details: Mapping[str, DeviceDetails]
    unbound: frozenset[str]
    failed: frozenset[str]
    malformed: Mapping[str, ModelError]
    unattributed: tuple[str, ...] = ()


def parse_details(reply: object, requested: Sequence[str], host: str) -> DetailsReply:
    """Check a details reply entry by entry.

    :param requested: the devices sent; entries for other devices are ignored.
    :param host: this agent's host, recorded as the ports' binding host.
    :raises BadReplyError: the reply is not ``{"devices": [...], "failed_devices": [...]}``.
    """
    method = "get_devices_details_list_and_failed_devices"
    if not isinstance(reply, dict):
        raise BadReplyError(method, f"expected a mapping, got {v.show(reply)}")
    entries, failed = reply.get("devices"), reply.get("failed_devices", [])
    if not isinstance(entries, list) or not isinstance(failed, list):
        raise BadReplyError(method, "'devices' and 'failed_devices' must be lists")
    wanted = set(requested)
    details: dict[str, DeviceDetails] = {}
    unbound: set[str] = set()
    malformed: dict[str, ModelError] = {}
    unattributed: list[str] = []
    for index, entry in enumerate(entries):
        device = entry.get("device") if isinstance(entry, dict) else None
        if not isinstance(device, str) or device not in wanted:
            unattributed.append(f"devices[{index}]: device {v.show(device)} was not asked for")
            continue
        try:
            parsed = DeviceDetails.from_rpc(entry, host=host)
        except ModelError as exc:
            malformed[device] = exc
            continue
        if parsed.port is None:
            unbound.add(device)
        else:
            details[device] = parsed
    return DetailsReply(
        details=details,
        unbound=frozenset(unbound),
        failed=frozenset(d for d in failed if isinstance(d, str) and d in wanted),
        malformed=malformed,
        unattributed=tuple(unattributed),
    )


@dataclasses.dataclass(frozen=True)
class UpdateReply:
    """Devices the server could not set up or down (to be sent again)."""

    failed_up: frozenset[str]
    failed_down: frozenset[str]


def parse_update(reply: object) -> UpdateReply:
    """Check an ``update_device_list`` reply.

    :raises BadReplyError: not a mapping.
    """
    if not isinstance(reply, dict):
        raise BadReplyError("update_device_list", f"expected a mapping, got {v.show(reply)}")

    def devices(key: str) -> frozenset[str]:
        value = reply.get(key, [])
        return (
            frozenset(d for d in value if isinstance(d, str))
            if isinstance(value, list)
            else (frozenset())
        )

    return UpdateReply(devices("failed_devices_up"), devices("failed_devices_down"))


def parse_tunnels(reply: object) -> dict[str, IPAddress]:
    """``tunnel_sync`` reply → ``{host: tunnel IP}``; bad entries are skipped.

    :raises BadReplyError: no ``tunnels`` list.
    """
    if not isinstance(reply, dict) or not isinstance(reply.get("tunnels"), list):
        raise BadReplyError("tunnel_sync", "expected {'tunnels': [...]}")
    result: dict[str, IPAddress] = {}
    for entry in reply["tunnels"]:
        if not isinstance(entry, dict):
            continue
        try:
            address = v.ip_address(entry.get("ip_address"))
            host = entry.get("host")
            name = v.hostname(host) if host else vtep_host(address)
        except v.FieldError:
            continue
        result[name] = address
    return result


def parse_tunnel_event(tunnel_ip: object, tunnel_type: object) -> IPAddress | None:
    """A ``tunnel_update``/``tunnel_delete`` cast's endpoint, or ``None`` when it is not a
    valid VXLAN endpoint (other tunnel types are not netagent's)."""
    if tunnel_type != "vxlan":
        return None
    try:
        return v.ip_address(tunnel_ip)
    except v.FieldError:
        REJECTIONS.reject("tunnel endpoint cast", "tunnel_ip is not an IP address", tunnel_ip)
        return None


def vtep_host(address: IPAddress) -> str:
    """A stand-in host name for a tunnel endpoint whose host is not known."""
    return "vtep-" + str(address).replace(":", "-")


def parse_fdb(
    operation: str, fdb_entries: object
) -> Iterator[tuple[str, str, IPAddress, frozenset[FdbEntry]]]:
    """Validate an l2population cast.

    :param operation: ``add``, ``remove`` or ``update``.
    :returns: ``(action, network_id, endpoint IP, entries)`` with action ``add`` or
        ``remove``; ``update`` (``chg_ip``) yields the ``before`` removal then the ``after``
        addition. Invalid networks, endpoints or entries are skipped.
    """
    where = f"{operation}_fdb_entries"
    if not isinstance(fdb_entries, dict):
        REJECTIONS.reject(where, "fdb_entries is not an object", fdb_entries)
        return
    if operation == "update":
        changes = fdb_entries.get("chg_ip")
        if not isinstance(changes, dict):
            REJECTIONS.reject(where, "chg_ip is not an object", changes)
            return
        for network_id, per_ip in _valid_networks(where, changes):
            for address, change in _valid_endpoints(where, per_ip):
                if isinstance(change, dict):
                    yield "remove", network_id, address, _entries(where, change.get("before"))
                    yield "add", network_id, address, _entries(where, change.get("after"))
                else:
                    REJECTIONS.reject(where, "change is not an object", change)
        return
    for network_id, value in _valid_networks(where, fdb_entries):
        ports = value.get("ports") if isinstance(value, dict) else None
        for address, entries in _valid_endpoints(where, ports):
            yield operation, network_id, address, _entries(where, entries)


def _valid_networks(where: str, data: dict[object, object]) -> Iterator[tuple[str, object]]:
    for key, value in data.items():
        try:
            yield v.uuid(key), value
        except v.FieldError:
            REJECTIONS.reject(where, "network id is not a UUID", key)


def _valid_endpoints(where: str, data: object) -> Iterator[tuple[IPAddress, object]]:
    if not isinstance(data, dict):
        REJECTIONS.reject(where, "ports is not an object", data)
        return
    for key, value in data.items():
        try:
            yield v.ip_address(key), value
        except v.FieldError:
            REJECTIONS.reject(where, "endpoint is not an IP address", key)


def _entries(where: str, data: object) -> frozenset[FdbEntry]:
    result: set[FdbEntry] = set()
    if not isinstance(data, list):
        REJECTIONS.reject(where, "entries are not a list", data)
        return frozenset()
    for item in data:
        if not isinstance(item, list | tuple) or len(item) < 2:
            REJECTIONS.reject(where, "entry is not a [MAC, IP] pair", item)
            continue
        try:
            if item[0] == FLOODING_MAC:
                result.add((FLOODING_MAC, None))
            else:
                result.add((v.mac(item[0]).lower(), v.ip_address(item[1])))
        except v.FieldError:
            REJECTIONS.reject(where, "entry has a bad MAC or IP", item)
    return frozenset(result)


@dataclasses.dataclass
class ParsedRouters:
    """A ``sync_routers`` reply: valid legacy routers by id, and why others were skipped.

    :ivar skipped: router id (or ``"#<index>"`` without a usable id) -> why.
    """

    routers: dict[str, Router] = dataclasses.field(default_factory=dict)
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)


def parse_router_ids(reply: object) -> list[str]:
    """``get_router_ids`` reply -> router ids (entries that are not UUIDs are dropped).

    :raises BadReplyError: not a list.
    """
    if not isinstance(reply, list):
        raise BadReplyError("get_router_ids", "expected a list of router ids")
    result = []
    for item in reply:
        try:
            result.append(v.uuid(item))
        except ModelError:
            continue
    return result


def parse_routers(reply: object, asked: Sequence[str]) -> ParsedRouters:
    """``sync_routers`` reply (§6.4) -> validated routers. A router that fails
    validation, is distributed or HA, or was not asked for is skipped with why; the
    others are kept.

    :raises BadReplyError: not a list.
    """
    if not isinstance(reply, list):
        raise BadReplyError("sync_routers", "expected a list of router dicts")
    wanted = set(asked)
    parsed = ParsedRouters()
    for index, item in enumerate(reply):
        raw_id = item.get("id") if isinstance(item, dict) else None
        key = raw_id if isinstance(raw_id, str) and raw_id in wanted else f"#{index}"
        try:
            router = Router.from_sync(item)
        except ModelError as exc:
            parsed.skipped[key] = str(exc)
            continue
        if router.id not in wanted:
            parsed.skipped[key] = f"router {router.id} was not asked for"
        elif router.distributed or router.ha:
            parsed.skipped[router.id] = "distributed and HA routers are not implemented"
        else:
            parsed.routers[router.id] = router
    return parsed
