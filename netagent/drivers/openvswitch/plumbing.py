"""Pure helpers of the openvswitch driver: option parsing, names, snapshot updates."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath
from typing import Any

from netagent.common import constants as c
from netagent.drivers.common import parse_mappings
from netagent.ovs import ovsdb as db

#: Neutron's key in a port's other_config: the network the port's tag belongs to.
NET_KEY = "net_uuid"


def parse_bridge_mappings(entries: Iterable[str]) -> dict[str, str]:
    """``["physnet1:br-ex"]`` to ``{"physnet1": "br-ex"}``.

    :raises ValueError: malformed entry, duplicate physical network or bridge.
    """
    # 11: "phy-"/"int-" + the bridge name must fit a 15-character port name
    return parse_mappings(entries, "bridge_mappings", 11)


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
        # built directly: dataclasses.replace takes 2.5 times as long (500 ports: 1.5 ms)
        interfaces[name] = db.Interface(
            iface.name,
            iface.port,
            iface.bridge,
            iface.type,
            iface.ofport,
            tags.get(iface.port, iface.tag),
            iface.options,
            iface.external_ids,
            iface.port_external_ids,
            other,
        )
    return dataclasses.replace(state, interfaces=interfaces)


def int_patch(bridge: str) -> str:
    return f"int-{bridge}"


def phy_patch(bridge: str) -> str:
    return f"phy-{bridge}"


def detach(iface: db.Interface) -> list[db.Op]:
    return [db.SetPortTag(iface.port, db.DEAD_VLAN), db.RemovePortKeys(iface.port, (NET_KEY,))]


def vm_device(iface_name: str) -> str:
    """The VM's tap behind an integration-bridge interface: with the hybrid plug os-vif
    puts ``qvo<port[:11]>`` on br-int for ``tap<port[:11]>`` (in ``qbr<port[:11]>``)."""
    if iface_name.startswith(c.HYBRID_VETH_OVS_PREFIX):
        return c.TAP_PREFIX + iface_name[len(c.HYBRID_VETH_OVS_PREFIX) :]
    return iface_name


#: Bridge ports of os-vif's ``qbr`` bridges whose frames never go to the host's stack.
HYBRID_GUARDED_PORTS = (c.TAP_PREFIX + "+", c.HYBRID_VETH_BRIDGE_PREFIX + "+")


def hybrid_plug(conf: Any) -> bool:
    """Ports are hybrid-plugged: the agent runs the firewall the binding asks os-vif's
    ``qbr`` bridges for (``[agent] firewall_driver``)."""
    agent = getattr(conf, "agent", None)
    return getattr(agent, "firewall_driver", None) == c.HYBRID_PLUG_FIREWALL
