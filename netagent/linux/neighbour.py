"""Neighbour entries (static ARP/ND, proxy ARP/ND) and bridge FDB entries.

VXLAN flooding lists are FDB entries for ``00:00:00:00:00:00``, appended once per remote
(``bridge fdb append 00:00:00:00:00:00 dev vx dst <remote>``); known MACs get a static
entry pointing at their remote.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from netagent.privileged import batch as priv_batch
from netagent.privileged import links as priv_links
from netagent.privileged import neigh as priv_neigh
from netagent.privileged import validate
from netagent.privileged.errors import DeviceNotFound, EntryNotFound

LOG = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
FLOOD_MAC = "00:00:00:00:00:00"
#: ``NUD_*`` states of neighbour and FDB entries (linux/neighbour.h)
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80


@dataclass(frozen=True)
class Neighbour:
    """A neighbour (or proxy) entry."""

    device: str | None
    address: IPAddress
    mac: str | None
    state: int


@dataclass(frozen=True)
class FdbEntry:
    """A bridge/VXLAN forwarding database entry."""

    device: str | None
    mac: str | None
    destination: IPAddress | None
    master: str | None
    #: ``NUD_*`` bits: ``NUD_NOARP`` static, ``NUD_PERMANENT`` local (the bridge's own
    #: or, on a VXLAN device, netagent's), ``NUD_REACHABLE``/``NUD_STALE`` learned
    state: int = 0

    @property
    def static(self) -> bool:
        """A static bridge entry (``bridge fdb add ... master static``)."""
        return bool(self.state & NUD_NOARP) and not self.state & NUD_PERMANENT


def _names(namespace: str | None, device: str | None = None) -> dict[int, str] | None:
    """ifindex -> name: of all devices, or (cheaper: no full link dump) of ``device``
    and its master only; ``None`` if ``device`` does not exist."""
    if device is None:
        return {item["index"]: item["name"] for item in priv_links.list_links(namespace)}
    try:
        link = priv_links.get_link(namespace, validate.device_name(device))
    except DeviceNotFound:
        return None
    names = {link["index"]: link["name"]}
    if link["master"]:
        with contextlib.suppress(DeviceNotFound):
            names[link["master"]] = priv_links.get_link_name(namespace, link["master"])
    return names


def neighbour_op(device: str, address: IPAddress, mac: str) -> dict[str, Any]:
    """The batch operation for :func:`add_neighbour`."""
    return {
        "op": "add_neighbour",
        "device": validate.device_name(device),
        "address": str(ipaddress.ip_address(address)),
        "mac": validate.mac_address(mac),
    }


def add_neighbour(
    device: str, address: IPAddress, mac: str, *, namespace: str | None = None
) -> None:
    """Add or replace a permanent ARP/ND entry ``address -> mac`` on ``device``.

    :raises DeviceNotFound: no such device.
    """
    op = neighbour_op(device, address, mac)
    priv_batch.execute_one(validate.optional_namespace(namespace), op)


def add_proxy_neighbour(device: str, address: IPAddress, *, namespace: str | None = None) -> None:
    """Answer ARP/ND for ``address`` on ``device`` (``ip neigh add proxy``).

    IPv4 proxy entries need ``proxy_arp`` off-or-on semantics of the kernel: they are
    answered when the device receives a request; IPv6 needs ``proxy_ndp`` = 1.
    """
    op = {
        "op": "add_neighbour",
        "device": validate.device_name(device),
        "address": str(ipaddress.ip_address(address)),
        "proxy": True,
    }
    priv_batch.execute_one(validate.optional_namespace(namespace), op)


def delete_neighbour(
    device: str, address: IPAddress, *, namespace: str | None = None, proxy: bool = False
) -> None:
    """Delete a neighbour (or proxy) entry.

    :raises EntryNotFound: no such entry.
    """
    op = {
        "op": "delete_neighbour",
        "device": validate.device_name(device),
        "address": str(ipaddress.ip_address(address)),
        "proxy": proxy,
    }
    priv_batch.execute_one(validate.optional_namespace(namespace), op)


def list_neighbours(
    *, namespace: str | None = None, proxy: bool = False, device: str | None = None
) -> list[Neighbour]:
    """Neighbour entries (or proxy entries) of a namespace, optionally of one device."""
    ns = validate.optional_namespace(namespace)
    names = _names(ns, device)
    if names is None:
        return []
    result = []
    for item in priv_neigh.list_neighbours(ns, proxy):
        name = names.get(item["index"])
        if device is not None and name != device:
            continue
        address = ipaddress.ip_address(item["address"])
        result.append(Neighbour(name, address, item["mac"], item["state"]))
    return result


def add_neighbours(
    device: str, entries: Iterable[tuple[IPAddress, str]], *, namespace: str | None = None
) -> None:
    """Add or replace permanent entries ``(address, mac)`` on ``device``, pipelined.

    Works on a device without addresses (e.g. a bridge whose ports suppress ARP/ND;
    IPv6 entries need IPv6 enabled on the device).

    :raises NetagentError: the first failure, typed; the other entries are applied.
    """
    ops = [neighbour_op(device, address, mac) for address, mac in entries]
    _execute(namespace, ops, ignore=())


def delete_neighbours(
    device: str,
    addresses: Iterable[IPAddress],
    *,
    namespace: str | None = None,
    missing_ok: bool = False,
) -> None:
    """Delete the neighbour entries of ``addresses`` on ``device``, pipelined.

    :param missing_ok: entries that are gone already are not an error.
    :raises NetagentError: the first other failure, typed; the others are deleted.
    """
    ops = [
        {
            "op": "delete_neighbour",
            "device": validate.device_name(device),
            "address": str(ipaddress.ip_address(address)),
            "proxy": False,
        }
        for address in addresses
    ]
    _execute(namespace, ops, ignore=(EntryNotFound,) if missing_ok else ())


def fdb_op(
    device: str,
    mac: str,
    destination: IPAddress | None = None,
    *,
    append: bool = False,
    master: bool = False,
    delete: bool = False,
) -> dict[str, Any]:
    """The batch operation for an FDB add/append (or delete with ``delete=True``)."""
    return {
        "op": "delete_fdb" if delete else "add_fdb",
        "device": validate.device_name(device),
        "mac": validate.mac_address(mac),
        "destination": str(ipaddress.ip_address(destination)) if destination else None,
        "append": append,
        "master": master,
    }


def add_flood_entry(device: str, remote: IPAddress, *, namespace: str | None = None) -> None:
    """Append ``remote`` to the flooding list of VXLAN ``device``.

    :raises EntryExists: the remote is in the list already.
    """
    op = fdb_op(device, FLOOD_MAC, remote, append=True)
    priv_batch.execute_one(validate.optional_namespace(namespace), op)


def delete_flood_entry(device: str, remote: IPAddress, *, namespace: str | None = None) -> None:
    """Remove ``remote`` from the flooding list of VXLAN ``device``.

    :raises EntryNotFound: the remote is not in the list.
    """
    op = fdb_op(device, FLOOD_MAC, remote, delete=True)
    priv_batch.execute_one(validate.optional_namespace(namespace), op)


def add_fdb_entry(
    device: str,
    mac: str,
    destination: IPAddress | None = None,
    *,
    namespace: str | None = None,
    master: bool = False,
) -> None:
    """Add or replace a static FDB entry.

    :param device: a VXLAN device (``destination`` = remote VTEP) or, with ``master``,
        a bridge port whose bridge learns ``mac`` statically.
    """
    op = fdb_op(device, mac, destination, master=master)
    priv_batch.execute_one(validate.optional_namespace(namespace), op)


def delete_fdb_entry(
    device: str,
    mac: str,
    destination: IPAddress | None = None,
    *,
    namespace: str | None = None,
    master: bool = False,
) -> None:
    """Delete a static FDB entry.

    :raises EntryNotFound: no such entry.
    """
    op = fdb_op(device, mac, destination, master=master, delete=True)
    priv_batch.execute_one(validate.optional_namespace(namespace), op)


def list_fdb(*, namespace: str | None = None, device: str | None = None) -> list[FdbEntry]:
    """FDB entries of a namespace, optionally of one device."""
    ns = validate.optional_namespace(namespace)
    names = _names(ns, device)
    if names is None:
        return []
    # the kernel filters by port when given its ifindex (no dump of every bridge port)
    index = next((i for i, name in names.items() if name == device), None)
    result = []
    for item in priv_neigh.list_fdb(ns, index):
        name = names.get(item["index"])
        if device is not None and name != device:
            continue
        dst = ipaddress.ip_address(item["destination"]) if item["destination"] else None
        master = names.get(item["master"]) if item["master"] else None
        result.append(FdbEntry(name, item["mac"], dst, master, item["state"]))
    return result


def add_bridge_fdb_entries(
    port: str, macs: Iterable[str], *, namespace: str | None = None
) -> None:
    """Static entries in the bridge's table: frames for ``macs`` go out of ``port``.

    ``bridge fdb replace <mac> dev <port> master static``, pipelined; an entry the bridge
    had learned (on any port) becomes static on ``port``.

    :raises NetagentError: the first failure, typed; the other entries are applied.
    """
    _execute(namespace, [fdb_op(port, mac, master=True) for mac in macs], ignore=())


def delete_bridge_fdb_entries(
    port: str, macs: Iterable[str], *, namespace: str | None = None, missing_ok: bool = False
) -> None:
    """Delete entries of ``macs`` on ``port`` from the bridge's table, pipelined.

    :param missing_ok: entries that are gone already are not an error.
    """
    ops = [fdb_op(port, mac, master=True, delete=True) for mac in macs]
    _execute(namespace, ops, ignore=(EntryNotFound,) if missing_ok else ())


def is_flooding_mac(mac: str) -> bool:
    """Zero or multicast MAC: the kernel keeps a list of destinations for it."""
    mac = validate.mac_address(mac)
    return mac == FLOOD_MAC or int(mac[:2], 16) & 1 == 1


def add_fdb_entries(
    device: str, entries: Iterable[tuple[str, IPAddress]], *, namespace: str | None = None
) -> None:
    """Add VXLAN FDB entries ``(mac, remote)`` to ``device`` in one pipelined batch.

    Entries of flooding MACs (:func:`is_flooding_mac`) are appended, one per remote (a
    remote already in the list stays once); a unicast MAC has one remote, which the add
    replaces.

    :raises NetagentError: the first failure, typed (``DeviceNotFound``...); the other
        entries are applied.
    """
    ops = [fdb_op(device, mac, dst, append=is_flooding_mac(mac)) for mac, dst in entries]
    _execute(namespace, ops, ignore=())


def delete_fdb_entries(
    device: str,
    entries: Iterable[tuple[str, IPAddress]],
    *,
    namespace: str | None = None,
    missing_ok: bool = False,
) -> None:
    """Delete VXLAN FDB entries ``(mac, remote)`` of ``device`` in one pipelined batch.

    :param missing_ok: entries that are gone already are not an error.
    :raises NetagentError: the first other failure, typed; the other entries are deleted.
    """
    ops = [fdb_op(device, mac, dst, delete=True) for mac, dst in entries]
    _execute(namespace, ops, ignore=(EntryNotFound,) if missing_ok else ())


def _execute(
    namespace: str | None, ops: list[dict[str, Any]], ignore: tuple[type[Exception], ...]
) -> None:
    """Send ``ops`` as one batch; re-raise its first failure not in ``ignore``, typed."""
    if not ops:
        return
    try:
        priv_batch.execute(validate.optional_namespace(namespace), ops)
    except priv_batch.BatchError as exc:
        for _index, error in exc.errors():
            if not isinstance(error, ignore):
                raise error from None
