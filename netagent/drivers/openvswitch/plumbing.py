"""Pure helpers of the openvswitch driver: option parsing, names, snapshot updates."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath

from netagent.ovs import ovsdb as db

#: Neutron's key in a port's other_config: the network the port's tag belongs to.
NET_KEY = "net_uuid"


def parse_bridge_mappings(entries: Iterable[str]) -> dict[str, str]:
    """``["physnet1:br-ex"]`` to ``{"physnet1": "br-ex"}``.

    :raises ValueError: malformed entry, duplicate physical network or bridge.
    """
    mappings: dict[str, str] = {}
    for entry in entries:
        physnet, sep, bridge = (part.strip() for part in entry.strip().partition(":"))
        if not sep or not physnet or not bridge or len(bridge) > 11:
            # 11: "phy-"/"int-" + the bridge name must fit a 15-character port name
            raise ValueError(f"bad bridge_mappings entry {entry!r}")
        if physnet in mappings or bridge in mappings.values():
            raise ValueError(f"duplicate bridge_mappings entry {entry!r}")
        mappings[physnet] = bridge
    return mappings


def mgmt_target(ovsdb_connection: str, bridge: str) -> str:
    """The OpenFlow socket of ``bridge``: ``<rundir>/<bridge>.mgmt`` next to db.sock."""
    kind, _, path = ovsdb_connection.partition(":")
    rundir = PurePosixPath(path).parent if kind == "unix" else PurePosixPath("/run/openvswitch")
    return f"unix:{rundir / bridge}.mgmt"


def with_port_changes(state: db.OvsdbState, ops: Sequence[db.Op]) -> db.OvsdbState:
    """``state`` after the port tag / other_config operations ``ops`` were applied."""
    tags: dict[str, int] = {}
    config: dict[str, dict[str, str | None]] = {}
    for op in ops:
        if isinstance(op, db.SetPortTag):
            tags[op.name] = op.tag
            config.setdefault(op.name, {}).update(op.other_config)
        elif isinstance(op, db.RemovePortKeys):
            config.setdefault(op.name, {}).update(dict.fromkeys(op.keys))
    interfaces = dict(state.interfaces)
    for name, iface in state.interfaces.items():
        if iface.port not in tags and iface.port not in config:
            continue
        other = dict(iface.port_other_config)
        for key, value in config.get(iface.port, {}).items():
            if value is None:
                other.pop(key, None)
            else:
                other[key] = value
        interfaces[name] = dataclasses.replace(
            iface, tag=tags.get(iface.port, iface.tag), port_other_config=other
        )
    return dataclasses.replace(state, interfaces=interfaces)


def int_patch(bridge: str) -> str:
    return f"int-{bridge}"


def phy_patch(bridge: str) -> str:
    return f"phy-{bridge}"


def detach(iface: db.Interface) -> list[db.Op]:
    return [db.SetPortTag(iface.port, db.DEAD_VLAN), db.RemovePortKeys(iface.port, (NET_KEY,))]
