"""The VXLAN forwarding table a network should have on this host, and how to get there.

Two kinds of entries live on a netagent VXLAN device (``nvx-<vni>``, created with learning
off, so every entry with a destination on it was put there by netagent):

* flooding entries ``00:00:00:00:00:00 dst <peer>``, one per other host that has ports on
  the network: broadcast, unknown unicast and multicast (ARP requests, DHCP, ND) are
  head-end replicated to each of them, and to nobody else;
* static unicast entries ``<remote port MAC> dst <its host's tunnel address>``: known
  unicast goes straight to the one host, so nothing depends on flooding or learning.

Converging compares the wanted set with the kernel's dump of that device only: missing
entries are added first (flooding entries appended, unicast entries replaced in place),
then stale ones removed, so a MAC that moves host is never without a destination.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Set

from netagent.drivers.base import NetworkPlan
from netagent.drivers.linuxbridge.kernel import ZERO_MAC, FdbEntry
from netagent.linux.ip_lib import AddFdb, DeleteFdb, Op


@dataclasses.dataclass(frozen=True)
class FdbDiff:
    """Entries to add and to delete on one VXLAN device."""

    add: tuple[FdbEntry, ...]
    delete: tuple[FdbEntry, ...]

    def __bool__(self) -> bool:
        return bool(self.add or self.delete)


def wanted_entries(plan: NetworkPlan, local_ip: str | None) -> set[FdbEntry]:
    """The FDB entries the network's VXLAN device should hold.

    :param plan: the network, its tunnel peers and remote ports.
    :param local_ip: this host's tunnel address; entries towards it are never wanted.
    """
    entries = {FdbEntry(ZERO_MAC, str(ip)) for ip in plan.tunnel_peers.values()}
    for remote in plan.remote_ports:
        entries.add(FdbEntry(remote.mac_address.lower(), str(remote.tunnel_ip)))
    return {e for e in entries if e.dst != local_ip}


def is_flooding(mac: str) -> bool:
    """Zero or multicast MAC: entries the kernel keeps a list of destinations for."""
    return mac == ZERO_MAC or int(mac[:2], 16) & 1 == 1


def diff(wanted: Set[FdbEntry], current: Iterable[FdbEntry]) -> FdbDiff:
    """What to add and delete to turn ``current`` into ``wanted`` (sorted, stable logs).

    The kernel keeps one destination per unicast MAC (``NLM_F_APPEND`` is ignored for
    them), so a unicast MAC that moves is *replaced* in place by the add, and its old
    entry is not deleted afterwards.
    """
    have = set(current)
    replaced = {e.mac for e in wanted - have if not is_flooding(e.mac)}
    stale = {e for e in have - wanted if is_flooding(e.mac) or e.mac not in replaced}
    return FdbDiff(add=tuple(sorted(wanted - have)), delete=tuple(sorted(stale)))


def operations(device: str, change: FdbDiff) -> list[Op]:
    """``change`` as operations on ``device``, additions first: flooding entries are
    appended (the kernel keeps a list of destinations for them), a unicast MAC's single
    destination is replaced."""
    ops: list[Op] = [
        AddFdb(device=device, mac=e.mac, destination=e.dst, append=is_flooding(e.mac))
        for e in change.add
    ]
    ops += [DeleteFdb(device=device, mac=e.mac, destination=e.dst) for e in change.delete]
    return ops
