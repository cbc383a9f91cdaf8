"""The interface driver's Open vSwitch calls: the tap end onto the integration bridge.

Used when ``[netagent] l2_driver = openvswitch``. The tap is added the way os-vif plugs a
VM (``external_ids`` ``iface-id``, ``attached-mac``, ``iface-status`` on the Interface
row), so netagent's Open vSwitch driver finds it by ``iface-id`` and wires it: local VLAN
tag, br-int flow. One ovsdbapp connection per OVSDB server is kept for the life of the
process (the driver's privsep daemon); ovsdbapp reconnects by itself.
"""

from __future__ import annotations

import threading

from netagent.neutron_plugins.plugging import OvsTarget
from netagent.ovs import ovsdb as db

_connections: dict[tuple[str, int], db.Ovsdb] = {}
_lock = threading.Lock()


def _ovsdb(connection: str, timeout: int) -> db.Ovsdb:
    with _lock:
        found = _connections.get((connection, timeout))
        if found is None:
            found = _connections[(connection, timeout)] = db.Ovsdb(connection, timeout)
        return found


def datapath_type(target: OvsTarget) -> str:
    """The datapath type of ``bridge`` (``system``, ``netdev``).

    :raises OvsdbError: the server cannot be reached, or it has no such bridge (netagent
        creates the integration bridge when it starts with ``l2_driver = openvswitch``).
    """
    state = _ovsdb(target.connection, target.timeout).snapshot()
    if target.bridge not in state.bridges:
        raise db.OvsdbError(
            f"no bridge {target.bridge} in {target.connection}: is netagent running with "
            "[agent] l2_driver = openvswitch on this host?"
        )
    return state.datapath_types.get(target.bridge) or "system"


def attach(target: OvsTarget, device: str, port_id: str, mac: str) -> None:
    """Add ``device`` to the integration bridge with os-vif's external_ids for ``port_id``.

    :raises OvsdbError: the transaction failed; nothing was added.
    """
    ids = {"iface-id": port_id, "attached-mac": mac, "iface-status": "active"}
    _ovsdb(target.connection, target.timeout).apply(
        [db.AttachInterface(target.bridge, device, ids)]
    )


def detach(target: OvsTarget, device: str) -> None:
    """Delete ``device``'s port from whichever bridge holds it (quietly if none does).

    :raises OvsdbError: the transaction failed.
    """
    conn = _ovsdb(target.connection, target.timeout)
    iface = conn.snapshot().interfaces.get(device)
    if iface is not None and iface.bridge is not None:
        conn.apply([db.DeletePort(iface.bridge, iface.port)])
