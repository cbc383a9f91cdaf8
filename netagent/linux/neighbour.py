"""Reading neighbour entries (ARP/ND) and bridge/VXLAN FDB entries.

Changes are ip_lib's typed operations (``AddNeighbour``, ``AddFdb``...). VXLAN flooding
lists are FDB entries for ``00:00:00:00:00:00``, appended once per remote (``AddFdb(...,
append=True)``, ``bridge fdb append``); known MACs get a static entry pointing at their
remote.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from dataclasses import dataclass

from netagent.privileged import links as priv_links
from netagent.privileged import neigh as priv_neigh
from netagent.privileged import validate
from netagent.privileged.errors import DeviceNotFound

LOG = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
FLOOD_MAC = "00:00:00:00:00:00"
#: ``NUD_*`` states of neighbour and FDB entries (linux/neighbour.h)
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80


@dataclass(frozen=True)
class Neighbour:
    """A neighbour entry."""

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


def list_neighbours(*, namespace: str | None = None, device: str | None = None) -> list[Neighbour]:
    """Neighbour entries of a namespace (not proxy entries), optionally of one device."""
    ns = validate.optional_namespace(namespace)
    names = _names(ns, device)
    if names is None:
        return []
    result = []
    for item in priv_neigh.list_neighbours(ns):
        name = names.get(item["index"])
        if device is not None and name != device:
            continue
        address = ipaddress.ip_address(item["address"])
        result.append(Neighbour(name, address, item["mac"], item["state"]))
    return result


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
