"""conntrack: batched, de-duplicated deletion of entries, and zones for ports.

:func:`delete_entries` takes any number of :class:`ConntrackFilter` objects, drops
duplicates and filters made redundant by a more general one, and deletes over ctnetlink:
one dump of the namespace's table, matched in Python, only matching entries deleted.
:class:`ZoneManager` gives each zone key (typically a network) a stable conntrack zone and
keeps the raw-table ``CT --zone`` rules of the ports' devices in chain ``na-ct-zones``
through the iptables manager, so that overlapping addresses in different networks get
separate conntrack entries (as Neutron's iptables firewall does per network).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from netagent.linux.iptables import CTZone, InIface, IptablesManager, Jump, Physdev, Rule
from netagent.linux.iptables import validate as v
from netagent.privileged import conntrack as priv
from netagent.privileged import ctnetlink

LOG = logging.getLogger(__name__)

ZONE_CHAIN = "na-ct-zones"
#: Neutron starts its zones at 4097 too (below are left for the host's own use).
ZONE_MIN = 4097
ZONE_MAX = 65535

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class ConntrackFilter:
    """Entries to delete: all given fields must match (original direction addresses)."""

    family: int = 4
    zone: int | None = None
    proto: int | None = None
    src: IPAddress | None = None
    dst: IPAddress | None = None

    def __post_init__(self) -> None:
        v.family(self.family)
        if self.zone is not None:
            v.integer(self.zone, "zone", 0, 65535)
        if self.proto is not None:
            v.integer(self.proto, "proto", 0, 255)
        for name in ("src", "dst"):
            addr = getattr(self, name)
            if addr is not None and (
                not isinstance(addr, ipaddress.IPv4Address | ipaddress.IPv6Address)
                or addr.version != self.family
            ):
                raise ValueError(f"{name} must be an IPv{self.family} ip_address, got {addr!r}")

    def _fields(self) -> dict[str, object]:
        return {
            k: getattr(self, k)
            for k in ("zone", "proto", "src", "dst")
            if getattr(self, k) is not None
        }

    def covers(self, other: ConntrackFilter) -> bool:
        """True when every entry ``other`` matches is also matched by this filter."""
        mine = self._fields()
        theirs = other._fields()
        return self.family == other.family and all(theirs.get(k) == x for k, x in mine.items())

    def as_dict(self) -> dict[str, int | str]:
        """Primitive form for :func:`netagent.privileged.conntrack.delete_entries`."""
        out: dict[str, int | str] = {"family": self.family}
        for key, value in self._fields().items():
            out[key] = value if isinstance(value, int) else str(value)
        return out


Entry = ctnetlink.Entry


def tcp_state_name(state: int) -> str:
    """``ESTABLISHED``, ``TIME_WAIT``... of a TCP conntrack state number."""
    names = ctnetlink.TCP_STATES
    return names[state] if 0 <= state < len(names) else str(state)


def entries(namespace: str | None = None) -> list[Entry]:
    """Every conntrack entry of ``namespace`` (read-only, one ctnetlink dump)."""
    return ctnetlink.dump(namespace)


def reduce_filters(filters: Iterable[ConntrackFilter]) -> list[ConntrackFilter]:
    """Drop duplicates and filters covered by a more general one (stable order)."""
    unique = list(dict.fromkeys(filters))
    return [f for f in unique if not any(g is not f and g.covers(f) for g in unique)]


def delete_entries(namespace: str | None, filters: Iterable[ConntrackFilter]) -> int:
    """Delete all entries matching any filter (one ctnetlink dump, then the deletions).

    :returns: number of entries deleted
    :raises netagent.privileged.conntrack.ConntrackError: the kernel refused the dump
        or a deletion
    """
    reduced = reduce_filters(filters)
    if not reduced:
        return 0
    deleted = priv.delete_entries(namespace, [f.as_dict() for f in reduced])
    LOG.info(
        "conntrack in namespace %s: %d entries deleted by %d filters",
        namespace,
        deleted,
        len(reduced),
    )
    return deleted


class ZoneManager:
    """Stable conntrack zones per key and the raw-table rules that assign them.

    :param iptables: the namespace's iptables manager (rules go to table raw, chain
        :data:`ZONE_CHAIN`, hooked first into PREROUTING for both families)
    """

    def __init__(self, iptables: IptablesManager) -> None:
        self._iptables = iptables
        self._zones: dict[str, int] = {}
        self._devices: dict[str, tuple[str, str]] = {}

    def zone_of(self, key: str) -> int:
        """The zone of ``key`` (e.g. a network id), allocated on first use.

        :raises ValueError: no free zone left
        """
        if key not in self._zones:
            used = set(self._zones.values())
            zone = next((z for z in range(ZONE_MIN, ZONE_MAX + 1) if z not in used), None)
            if zone is None:
                raise ValueError("conntrack zones exhausted")
            self._zones[key] = zone
        return self._zones[key]

    def set_device(self, device: str, key: str) -> int:
        """Put traffic entering from ``device`` (bridged or routed) in ``key``'s zone."""
        v.interface_name(device, "device", wildcard=False)
        zone = self.zone_of(key)
        self._devices[device] = (key, device)
        self._sync()
        return zone

    def remove_device(self, device: str) -> None:
        """Stop assigning a zone to ``device``; frees the zone when its key is unused."""
        entry = self._devices.pop(device, None)
        if entry is not None and all(k != entry[0] for k, _ in self._devices.values()):
            self._zones.pop(entry[0], None)
        self._sync()

    def rules(self) -> list[Rule]:
        """The ``CT --zone`` rules of every device, sorted by device name."""
        out = []
        for device, (key, _) in sorted(self._devices.items()):
            zone = CTZone(self._zones[key])
            out.append(Rule((Physdev(in_=device),), zone))
            out.append(Rule((InIface(device),), zone))
        return out

    def _sync(self) -> None:
        rules = self.rules()
        for family in (4, 6):
            if rules:
                self._iptables.set_chain(family, "raw", ZONE_CHAIN, rules)
                self._iptables.set_jumps(family, "raw", "PREROUTING", [Rule((), Jump(ZONE_CHAIN))])
            else:
                self._iptables.clear_jumps(family, "raw", "PREROUTING")
                self._iptables.remove_chain(family, "raw", ZONE_CHAIN)
