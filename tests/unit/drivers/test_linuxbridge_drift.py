"""The Linux bridge drift check against in-memory links and entries."""

from __future__ import annotations

import dataclasses

from netagent.drivers.linuxbridge import drift, neighbours
from netagent.drivers.linuxbridge.kernel import ZERO_MAC, FdbEntry, Link
from netagent.drivers.linuxbridge.links import Links
from netagent.linux.errors import DeviceNotFound

BRIDGE = Link("brq1", 10, "bridge", 1450, True)
UPLINK = Link("nvx-7", 11, "vxlan", 1450, True, master=10)
TAP = Link("tap1", 12, "veth", 1450, True, master=10)
FDB = frozenset({FdbEntry(ZERO_MAC, "198.18.0.2"), FdbEntry("fa:16:3e:00:00:02", "198.18.0.2")})
SUPPRESS = neighbours.Wanted(
    arp={"192.0.2.2": "fa:16:3e:00:00:02"}, macs=frozenset({"fa:16:3e:00:00:02"})
)
NET = drift.AppliedNetwork("brq1", 10, "nvx-7", True, FDB, SUPPRESS)
PORT = drift.AppliedPort("tap1", 12, "brq1", True)


class Entries:
    def __init__(self) -> None:
        self.fdb = set(FDB)
        self.arp = dict(SUPPRESS.arp)
        self.macs = set(SUPPRESS.macs)
        self.reads = 0

    def fdb_entries(self, device: str) -> set[FdbEntry]:
        self.reads += 1
        return set(self.fdb)

    def neighbours(self, device: str) -> dict[str, str]:
        return dict(self.arp)

    def bridge_static_macs(self, port: str) -> set[str]:
        return set(self.macs)


def links(*items: Link) -> Links:
    return Links({link.name: link for link in items})


def check(*items: Link, entries: Entries | None = None) -> str | None:
    return drift.network_drift(NET, links(*items), entries or Entries())  # type: ignore[arg-type]


def test_as_applied_is_no_drift() -> None:
    assert check(BRIDGE, UPLINK, TAP) is None
    assert drift.port_drift(PORT, links(BRIDGE, UPLINK, TAP)) is None


def test_bridge_deleted_replaced_or_down() -> None:
    assert check(UPLINK, TAP) == "bridge brq1 deleted"
    assert check(dataclasses.replace(BRIDGE, index=20), UPLINK) == "bridge brq1 replaced"
    assert check(dataclasses.replace(BRIDGE, up=False), UPLINK) == "bridge brq1 set down"


def test_uplink_deleted_detached_or_down() -> None:
    assert check(BRIDGE) == "uplink nvx-7 deleted"
    assert check(BRIDGE, dataclasses.replace(UPLINK, master=None)) == (
        "uplink nvx-7 taken out of brq1"
    )
    assert check(BRIDGE, dataclasses.replace(UPLINK, up=False)) == "uplink nvx-7 set down"


def test_forwarding_entries_deleted_or_added() -> None:
    entries = Entries()
    entries.fdb.discard(FdbEntry(ZERO_MAC, "198.18.0.2"))
    found = check(BRIDGE, UPLINK, entries=entries)
    assert found is not None and "missing: 00:00:00:00:00:00->198.18.0.2; added: none" in found
    entries = Entries()
    entries.fdb.add(FdbEntry(ZERO_MAC, "198.18.0.99"))
    found = check(BRIDGE, UPLINK, entries=entries)
    assert found is not None and "added: 00:00:00:00:00:00->198.18.0.99" in found


def test_arp_suppression_entries_changed() -> None:
    entries = Entries()
    entries.arp["192.0.2.2"] = "fa:16:3e:00:00:99"
    assert check(BRIDGE, UPLINK, entries=entries) == "ARP suppression entries of brq1 changed"


def test_entries_are_not_read_when_devices_drifted() -> None:
    entries = Entries()
    check(UPLINK, entries=entries)
    assert entries.reads == 0


def test_tap_out_of_bridge_or_set_down() -> None:
    assert drift.port_drift(PORT, links(BRIDGE, dataclasses.replace(TAP, master=None))) == (
        "tap1 taken out of brq1"
    )
    assert drift.port_drift(PORT, links(TAP)) == "tap1 taken out of brq1"  # bridge deleted
    assert drift.port_drift(PORT, links(BRIDGE, dataclasses.replace(TAP, up=False))) == (
        "tap1 set down"
    )


def test_tap_gone_or_recreated_is_not_drift() -> None:
    assert drift.port_drift(PORT, links(BRIDGE)) is None
    recreated = dataclasses.replace(TAP, index=30, master=None)
    assert drift.port_drift(PORT, links(BRIDGE, recreated)) is None


def test_uplink_vanishing_while_its_entries_are_read_is_drift() -> None:
    class Vanishing(Entries):
        def fdb_entries(self, device: str) -> set[FdbEntry]:
            raise DeviceNotFound(device)

    assert check(BRIDGE, UPLINK, entries=Vanishing()) == "uplink nvx-7 or bridge brq1 deleted"
