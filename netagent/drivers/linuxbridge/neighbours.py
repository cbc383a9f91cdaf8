"""ARP suppression on a VXLAN network's bridge: what it answers for remote ports.

The EVPN scheme, with the bridge as the answering party (not the VXLAN ``proxy`` flag,
see doc/linuxbridge.md):

* the ``nvx-<vni>`` bridge port has ``neigh_suppress`` on;
* the ``brq`` bridge device holds a permanent neighbour entry ``<IPv4> -> <MAC>`` for
  every IPv4 address of every remote port;
* the bridge's own table holds a static entry ``<MAC> dev nvx-<vni> master`` for every
  remote port's MAC.

An ARP request from a local VM for an address with a neighbour entry whose MAC the bridge
knows on the suppressing port is answered by the bridge, out of the VM's own port, and
does not leave through the VXLAN device. A request for any other address is flooded as
before (to the hosts of the network), so unknown addresses still resolve. IPv6 (ND) is
not suppressed: the bridges run with IPv6 disabled (doc/linuxbridge.md says why).

Every neighbour entry on a ``brq`` bridge and every static entry on an ``nvx-`` port is
netagent's (the host has no address on the bridge, and learned entries are never
static); converging compares the wanted sets with dumps of that bridge and that port and
sends only the difference, so a second run sends nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Mapping, Set

from netagent.drivers.base import NetworkPlan
from netagent.drivers.linuxbridge.kernel import Kernel, Link
from netagent.linux.ip_lib import (
    AddFdb,
    AddNeighbour,
    DeleteFdb,
    DeleteNeighbour,
    Op,
    SetBridgePort,
)

LOG = logging.getLogger(__name__)


def bridge_mac(network_id: str, local_ip: str) -> str:
    """A fixed, locally administered MAC for the network's bridge on this host.

    A bridge whose MAC was never set follows the lowest MAC among its ports, and every
    change of the bridge's MAC makes the kernel flush *all* neighbour entries of the
    device, permanent ones included (``neigh_changeaddr``): a tap joining or leaving would
    silently drop the suppression entries until the next full sync. A MAC set explicitly
    stays. Derived from the network and this host's tunnel address: the same on every run
    (adoption sends nothing), different between hosts of the same network.
    """
    digest = hashlib.sha256(f"{network_id}/{local_ip}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


@dataclasses.dataclass(frozen=True)
class Wanted:
    """What suppression needs for one network."""

    #: IPv4 address -> MAC, on the bridge device
    arp: Mapping[str, str]
    #: MACs with a static entry on the VXLAN port in the bridge's table
    macs: frozenset[str]


@dataclasses.dataclass(frozen=True)
class Change:
    """Entries to add (or replace) and to delete."""

    set_arp: Mapping[str, str]
    delete_arp: tuple[str, ...]
    add_macs: tuple[str, ...]
    delete_macs: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.set_arp or self.delete_arp or self.add_macs or self.delete_macs)


def wanted(plan: NetworkPlan, local_ip: str | None) -> Wanted:
    """The neighbour and static bridge entries of the network's remote ports.

    Ports behind this host's own tunnel address are not remote and are skipped. An
    IPv4 address claimed by two remote ports (stale input) goes to the lowest MAC, so
    the choice does not flap between runs.
    """
    arp: dict[str, str] = {}
    macs: set[str] = set()
    for remote in plan.remote_ports:
        if str(remote.tunnel_ip) == local_ip:
            continue
        mac = remote.mac_address.lower()
        macs.add(mac)
        for address in remote.ip_addresses:
            if address.version != 4:
                continue
            key = str(address)
            arp[key] = min(arp.get(key, mac), mac)
    return Wanted(arp=arp, macs=frozenset(macs))


def diff(want: Wanted, arp: Mapping[str, str], macs: Set[str]) -> Change:
    """What to send to turn the current entries (``arp``, ``macs``) into ``want``."""
    return Change(
        set_arp={ip: mac for ip, mac in sorted(want.arp.items()) if arp.get(ip) != mac},
        delete_arp=tuple(sorted(set(arp) - set(want.arp))),
        add_macs=tuple(sorted(want.macs - macs)),
        delete_macs=tuple(sorted(set(macs) - want.macs)),
    )


#: What a network needs when ARP suppression is off: no entries of netagent's.
NOTHING = Wanted(arp={}, macs=frozenset())


def changes(
    kernel: Kernel,
    network_id: str,
    bridge: str,
    port: Link,
    want: Wanted,
    *,
    enabled: bool = True,
    fresh: bool = False,
) -> list[Op]:
    """The operations that turn ARP suppression on (or off, with ``enabled`` false and
    ``want`` = :data:`NOTHING`) for the VXLAN ``port`` of ``bridge`` and converge its
    entries, in the order to send them: static MACs before the neighbour entries that
    need them, stale neighbour entries deleted before their MACs.

    :param port: the VXLAN device as dumped *after* it was enslaved to ``bridge``, or
        with ``neigh_suppress`` unknown (``None``): then the flag is set.
    :param fresh: the bridge and the port were created in this pass (no entries to read).
    """
    ops: list[Op] = []
    if port.neigh_suppress is not enabled:
        state = "on" if enabled else "off"
        LOG.info("Network %s: %s set neigh_suppress %s", network_id, port.name, state)
        ops.append(SetBridgePort(name=port.name, neigh_suppress=enabled))
    if fresh:
        change = diff(want, {}, set())
    else:
        change = diff(want, kernel.neighbours(bridge), kernel.bridge_static_macs(port.name))
    if change.add_macs:
        shown = ", ".join(change.add_macs)
        LOG.info("Network %s: %s static bridge FDB %s", network_id, port.name, shown)
        ops += [AddFdb(device=port.name, mac=mac, master=True) for mac in change.add_macs]
    if change.set_arp:
        shown = ", ".join(f"{ip}->{mac}" for ip, mac in change.set_arp.items())
        LOG.info("Network %s: %s ARP entries %s", network_id, bridge, shown)
        ops += [
            AddNeighbour(device=bridge, address=ip, mac=mac) for ip, mac in change.set_arp.items()
        ]
    if change.delete_arp:
        shown = ", ".join(change.delete_arp)
        LOG.info("Network %s: %s removing ARP entries %s", network_id, bridge, shown)
        ops += [DeleteNeighbour(device=bridge, address=ip) for ip in change.delete_arp]
    if change.delete_macs:
        shown = ", ".join(change.delete_macs)
        LOG.info("Network %s: %s removing static bridge FDB %s", network_id, port.name, shown)
        ops += [DeleteFdb(device=port.name, mac=mac, master=True) for mac in change.delete_macs]
    return ops


def summary(want: Wanted) -> dict[str, int]:
    """What :func:`changes` converges to, for the status document."""
    return {"suppressed_arp": len(want.arp), "static_bridge_fdb": len(want.macs)}
