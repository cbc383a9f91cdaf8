"""One dump of a namespace's devices, indexed by name and by ifindex.

The driver reads the kernel's devices once per pass (:meth:`LinuxBridgeDriver.begin_pass`)
and keeps this snapshot up to date with the changes it makes itself, so that wiring a
thousand ports costs one dump, not one per step, and looking a master up by ifindex is a
dictionary access, not a search over every device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

from netagent.drivers.linuxbridge.kernel import Link
from netagent.linux.ip_lib import SetLink


class Links(Mapping[str, Link]):
    """Devices by name (a read-only mapping), plus :meth:`name_of` by ifindex."""

    def __init__(self, links: Mapping[str, Link]) -> None:
        self._by_name = dict(links)
        self._by_index = {link.index: link for link in self._by_name.values()}
        #: master ifindex -> members, built on first use, dropped on every change
        self._members: dict[int, list[Link]] | None = None

    def __getitem__(self, name: str) -> Link:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def members(self, master: int) -> list[Link]:
        """The devices enslaved to ifindex ``master``, by name."""
        if self._members is None:
            self._members = {}
            for link in sorted(self._by_name.values(), key=lambda item: item.name):
                if link.master is not None:
                    self._members.setdefault(link.master, []).append(link)
        return list(self._members.get(master, ()))

    def by_index(self, index: int | None) -> Link | None:
        """The device with ifindex ``index``, if known."""
        return None if index is None else self._by_index.get(index)

    def name_of(self, index: int | None) -> str:
        """The name of ifindex ``index`` (``ifindex N`` if unknown)."""
        link = self.by_index(index)
        return link.name if link is not None else f"ifindex {index}"

    def update(self, links: Mapping[str, Link]) -> None:
        """Add or replace devices (read back after creating them)."""
        for name, link in links.items():
            old = self._by_name.get(name)
            if old is not None:
                self._by_index.pop(old.index, None)
            self._by_name[name] = link
            self._by_index[link.index] = link
        self._members = None

    def deleted(self, name: str) -> None:
        """Forget a device that was deleted."""
        link = self._by_name.pop(name, None)
        if link is not None:
            self._by_index.pop(link.index, None)
            self._members = None

    def applied(self, op: SetLink) -> None:
        """Record that ``op`` succeeded (a device given a new master starts as a bridge
        port with the kernel's default port flags: ``neigh_suppress`` unknown)."""
        link = self._by_name.get(op.name)
        if link is None:
            return
        changes: dict[str, object] = {}
        if op.mtu is not None:
            changes["mtu"] = op.mtu
        if op.mac is not None:
            changes["mac"] = op.mac
        if op.up is not None:
            changes["up"] = op.up
        if op.master is not None:
            master = self._by_name.get(op.master)
            changes["master"] = master.index if master is not None else None
            changes["neigh_suppress"] = None
        if op.nomaster:
            changes["master"] = None
            changes["neigh_suppress"] = None
        updated = dataclasses.replace(link, **changes)  # type: ignore[arg-type]
        self._by_name[op.name] = updated
        self._by_index[updated.index] = updated
        if "master" in changes:
            self._members = None
