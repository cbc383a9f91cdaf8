"""Neighbour entries (static ARP/ND) and bridge FDB entries: reads, and batched changes.

VXLAN flooding lists are FDB entries for ``00:00:00:00:00:00``, appended once per remote
(``bridge fdb append 00:00:00:00:00:00 dev vx dst <remote>``); known MACs get a static
entry pointing at their remote.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from netagent.privileged import batch as priv_batch
from netagent.privileged import links as priv_links
from netagent.privileged import neigh as priv_neigh
from netagent.privileged import validate
from netagent.privileged.errors import DeviceNotFound, EntryNotFound
from netagent.privileged.ops import AddFdb, AddNeighbour, DeleteFdb, DeleteNeighbour, Op

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
    ops = [AddNeighbour(device=device, address=str(address), mac=mac) for address, mac in entries]
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
    ops = [DeleteNeighbour(device=device, address=str(address)) for address in addresses]
    _execute(namespace, ops, ignore=(EntryNotFound,) if missing_ok else ())


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
    _execute(namespace, [AddFdb(device=port, mac=mac, master=True) for mac in macs], ignore=())


def delete_bridge_fdb_entries(
    port: str, macs: Iterable[str], *, namespace: str | None = None, missing_ok: bool = False
) -> None:
    """Delete entries of ``macs`` on ``port`` from the bridge's table, pipelined.

    :param missing_ok: entries that are gone already are not an error.
    """
    ops = [DeleteFdb(device=port, mac=mac, master=True) for mac in macs]
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
    ops = [
        AddFdb(device=device, mac=mac, destination=str(dst), append=is_flooding_mac(mac))
        for mac, dst in entries
    ]
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
    ops = [DeleteFdb(device=device, mac=mac, destination=str(dst)) for mac, dst in entries]
    _execute(namespace, ops, ignore=(EntryNotFound,) if missing_ok else ())


def _execute(
    namespace: str | None, ops: Sequence[Op], ignore: tuple[type[Exception], ...]
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
