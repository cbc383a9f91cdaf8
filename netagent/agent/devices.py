"""Which local port devices exist: fed by the link monitor, read by the reconciler.

A port is wired only while its tap device exists. The device monitor reports appearances
and disappearances; this module keeps the picture and maps a device name to the local port
that owns it, so that an event marks exactly that port dirty. A device that belongs to no
port is remembered too: the port may arrive in a later snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Protocol

from netagent.agent.dirty import Key
from netagent.model import DesiredState

#: What a device monitor calls: ``callback(name, ifindex)``, ``None`` when it vanished.
DeviceCallback = Callable[[str, "int | None"], None]


class DeviceMonitor(Protocol):
    """A source of device appear/vanish events (the real one is
    :class:`netagent.linux.link_monitor.LinkMonitor`)."""

    def start(self, callback: DeviceCallback) -> dict[str, int]:
        """Start reporting changes; :returns: the devices present now (name -> ifindex)."""

    def stop(self) -> None:
        """Stop reporting. Idempotent."""


class LocalDevices:
    """Thread-safe map of present devices and of device name -> local port id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._present: dict[str, int] = {}
        self._port_of: dict[str, str] = {}

    def index_ports(self, state: DesiredState, host: str) -> None:
        """Re-learn which device belongs to which local port from a new snapshot."""
        index = {p.device_name: p.id for p in state.ports.values() if p.host == host}
        with self._lock:
            self._port_of = index

    def replace(self, devices: Mapping[str, int]) -> list[Key]:
        """Set the whole picture at once.

        :returns: keys of the ports whose device appeared, vanished or changed ifindex.
        """
        with self._lock:
            old = self._present
            self._present = dict(devices)
            changed = {n for n in set(old) | set(devices) if old.get(n) != devices.get(n)}
            return [("port", self._port_of[n]) for n in sorted(changed) if n in self._port_of]

    def update(self, name: str, ifindex: int | None) -> Key | None:
        """Record one event.

        :returns: the key of the port owning the device, if any and if anything changed.
        """
        with self._lock:
            if self._present.get(name) == ifindex:
                return None
            if ifindex is None:
                del self._present[name]
            else:
                self._present[name] = ifindex
            port_id = self._port_of.get(name)
        return ("port", port_id) if port_id is not None else None

    def snapshot(self) -> dict[str, int]:
        """The present devices (a copy)."""
        with self._lock:
            return dict(self._present)
