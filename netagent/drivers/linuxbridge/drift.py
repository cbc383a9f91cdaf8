"""What the Linux bridge driver applied, and the cheap check that someone else changed it.

The driver records, per network, the bridge it converged (with its ifindex), the uplink
and, for VXLAN, the forwarding and ARP-suppression entries it left; per port, the tap
(with its ifindex), the bridge it was put in and its admin state. The check compares
these with one link dump of the namespace and, per VXLAN network, a dump of the uplink's
forwarding entries (and, with the ARP responder on, of the bridge's neighbour and static
entries). Between two passes netagent changes none of these, so any difference is someone
else's: a bridge deleted or set down, an uplink or tap taken out of its bridge, a
forwarding entry deleted or added.

A tap that is gone or has another ifindex is not reported: the hypervisor deletes and
creates taps, and the device monitor marks such a port for the next pass already.
"""

from __future__ import annotations

import dataclasses

from netagent.drivers.linuxbridge import neighbours
from netagent.drivers.linuxbridge.kernel import FdbEntry, Kernel
from netagent.drivers.linuxbridge.links import Links
from netagent.linux.errors import DeviceNotFound


@dataclasses.dataclass(frozen=True)
class AppliedNetwork:
    """A network's devices and entries as the driver left them.

    :ivar own_uplink: the uplink is netagent's (``nvx-``/``nvl-``), kept up by it
    :ivar fdb: the VXLAN uplink's forwarding entries (``None``: not VXLAN)
    :ivar suppress: the ARP-suppression entries (``None``: ARP responder off)
    """

    bridge: str
    bridge_index: int
    uplink: str | None
    own_uplink: bool
    fdb: frozenset[FdbEntry] | None = None
    suppress: neighbours.Wanted | None = None


@dataclasses.dataclass(frozen=True)
class AppliedPort:
    """A wired tap as the driver left it."""

    device: str
    index: int
    bridge: str
    up: bool


def network_drift(applied: AppliedNetwork, links: Links, kernel: Kernel) -> str | None:
    """What differs between the kernel and ``applied`` (the first thing found), or None.

    Reads the uplink's forwarding entries (and neighbour entries) only when the devices
    are as applied.
    """
    bridge = links.get(applied.bridge)
    if bridge is None:
        return f"bridge {applied.bridge} deleted"
    if bridge.kind != "bridge" or bridge.index != applied.bridge_index:
        return f"bridge {applied.bridge} replaced"
    if not bridge.up:
        return f"bridge {applied.bridge} set down"
    if applied.uplink is None:
        return None
    uplink = links.get(applied.uplink)
    if uplink is None:
        return f"uplink {applied.uplink} deleted"
    if uplink.master != bridge.index:
        return f"uplink {applied.uplink} taken out of {applied.bridge}"
    if applied.own_uplink and not uplink.up:
        return f"uplink {applied.uplink} set down"
    try:
        return _entries_drift(applied, applied.uplink, kernel)
    except DeviceNotFound:
        return f"uplink {applied.uplink} or bridge {applied.bridge} deleted"


def _entries_drift(applied: AppliedNetwork, uplink: str, kernel: Kernel) -> str | None:
    if applied.fdb is not None:
        current = kernel.fdb_entries(uplink)
        if current != applied.fdb:
            missing = ", ".join(f"{e.mac}->{e.dst}" for e in sorted(applied.fdb - current))
            extra = ", ".join(f"{e.mac}->{e.dst}" for e in sorted(current - applied.fdb))
            return f"forwarding entries of {uplink} changed (missing: " + (
                f"{missing or 'none'}; added: {extra or 'none'})"
            )
    if applied.suppress is not None:
        change = neighbours.diff(
            applied.suppress,
            kernel.neighbours(applied.bridge),
            kernel.bridge_static_macs(uplink),
        )
        if change:
            return f"ARP suppression entries of {applied.bridge} changed"
    return None


def port_drift(applied: AppliedPort, links: Links) -> str | None:
    """What differs between the tap in the kernel and ``applied``, or None (also when
    the tap is gone or was recreated: not drift, see the module docstring)."""
    tap = links.get(applied.device)
    if tap is None or tap.index != applied.index:
        return None
    bridge = links.get(applied.bridge)
    if bridge is None or tap.master != bridge.index:
        return f"{applied.device} taken out of {applied.bridge}"
    if tap.up != applied.up:
        return f"{applied.device} set {'up' if tap.up else 'down'}"
    return None
