"""OVSDB writes: typed operations committed in one ovsdbapp transaction.

This module and :mod:`netagent.privileged.openflow` are the only code that changes Open
vSwitch. Operations are frozen dataclasses checked at construction (names, tags, map
keys), so a bad value never reaches the database; :func:`commit` turns a list of them into
ovsdbapp commands of *one* transaction, which ovsdbapp commits and then waits until
ovs-vswitchd has applied it (``cur_cfg``), so new interfaces have their ofport after it.

Map columns (``external_ids``, ``other_config``, ``options``) are merged key by key
(ovsdbapp's ``db_set`` on a map; a port's ``other_config`` keys as mutations), never
replaced: keys other tools keep there (os-vif's ``iface-id``, ``attached-mac``,
``vm-uuid``) survive.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ovsdbapp.backend.ovs_idl import command as ovs_command
from ovsdbapp.backend.ovs_idl import idlutils

from netagent.common.exceptions import NetagentError
from netagent.privileged import validate as v
from netagent.privileged.errors import InvalidArgument

#: Highest usable VLAN id; 4095 is OVS/Neutron's "dead" VLAN (nothing else carries it).
DEAD_VLAN = 4095
_KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_VALUE_RE = re.compile(r"^[A-Za-z0-9_.:/-]{0,255}$")
_TYPES = frozenset({"", "internal", "patch", "vxlan", "system"})


class OvsdbError(NetagentError):
    """An OVSDB transaction failed (nothing of it was applied)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def _map(value: Mapping[str, str], field: str) -> dict[str, str]:
    out = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            raise InvalidArgument(field, key, "map key of [A-Za-z0-9_.:-]")
        if not isinstance(item, str) or not _VALUE_RE.fullmatch(item):
            raise InvalidArgument(field, item, "map value of [A-Za-z0-9_.:/-]")
        out[key] = item
    return out


def _tag(tag: int) -> int:
    if not isinstance(tag, int) or isinstance(tag, bool) or not 1 <= tag <= DEAD_VLAN:
        raise InvalidArgument("tag", tag, "VLAN 1..4095")
    return tag


@dataclasses.dataclass(frozen=True)
class EnsureBridge:
    """Create the bridge if absent; set fail mode and datapath type; merge external_ids."""

    name: str
    datapath_type: str
    fail_mode: str = "secure"
    external_ids: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        v.device_name(self.name, "bridge")
        if self.datapath_type not in ("system", "netdev"):
            raise InvalidArgument("datapath_type", self.datapath_type, "system or netdev")
        if self.fail_mode not in ("secure", "standalone"):
            raise InvalidArgument("fail_mode", self.fail_mode, "secure or standalone")
        _map(self.external_ids, "external_ids")


@dataclasses.dataclass(frozen=True)
class EnsurePort:
    """Create a port with one interface on ``bridge`` if absent; merge the interface's
    ``options`` and both rows' ``external_ids``."""

    bridge: str
    name: str
    type: str = ""
    options: Mapping[str, str] = dataclasses.field(default_factory=dict)
    external_ids: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        v.device_name(self.bridge, "bridge")
        v.device_name(self.name, "port")
        if self.type not in _TYPES:
            raise InvalidArgument("type", self.type, "an interface type netagent uses")
        _map(self.options, "options")
        _map(self.external_ids, "external_ids")


@dataclasses.dataclass(frozen=True)
class AttachInterface:
    """Add a system interface (a tap) to ``bridge`` if absent and merge ``external_ids``
    into its Interface row only, as os-vif plugs a VM (``iface-id``, ``attached-mac``,
    ``iface-status``): the Open vSwitch L2 driver finds ports by these keys."""

    bridge: str
    name: str
    external_ids: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        v.device_name(self.bridge, "bridge")
        v.device_name(self.name, "port")
        _map(self.external_ids, "external_ids")


@dataclasses.dataclass(frozen=True)
class SetPortTag:
    """Set a port's VLAN tag and merge ``other_config`` (netagent's record of why)."""

    name: str
    tag: int
    other_config: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        v.device_name(self.name, "port")
        _tag(self.tag)
        _map(self.other_config, "other_config")


@dataclasses.dataclass(frozen=True)
class RemovePortKeys:
    """Remove keys from a port's ``other_config`` (the port itself stays)."""

    name: str
    keys: tuple[str, ...]

    def __post_init__(self) -> None:
        v.device_name(self.name, "port")
        _map(dict.fromkeys(self.keys, ""), "other_config")


@dataclasses.dataclass(frozen=True)
class DeletePort:
    """Delete a port netagent created (callers check the ownership mark first)."""

    bridge: str
    name: str

    def __post_init__(self) -> None:
        v.device_name(self.bridge, "bridge")
        v.device_name(self.name, "port")


@dataclasses.dataclass(frozen=True)
class DeleteBridge:
    """Delete a bridge netagent created (callers check the ownership mark first)."""

    name: str

    def __post_init__(self) -> None:
        v.device_name(self.name, "bridge")


#: (table, column) of ovsdbapp's automatic indexes the replica does without (_PortRows)
UNINDEXED = ("Port", "name")

Op = (
    EnsureBridge
    | EnsurePort
    | AttachInterface
    | SetPortTag
    | RemovePortKeys
    | DeletePort
    | DeleteBridge
)


class _PortRows:
    """The Port rows by name, read once per transaction for all its port commands (in
    ovsdbapp's connection thread, when the transaction runs). The replica keeps no index
    of ports by name (:data:`UNINDEXED`): maintaining it cost more than the lookups, it
    is updated for every port row an update touches (500 tags: 500 index removals and
    insertions)."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self._rows: dict[str, Any] | None = None

    def find(self, name: str) -> Any:
        """The row of port ``name``, or None."""
        if self._rows is None:
            self._rows = {}
            for row in self.api.tables["Port"].rows.values():
                if row._data is not None:  # None: a row this process is inserting
                    self._rows[row._data["name"].as_scalar()] = row
        found = self._rows.get(name)
        # a port inserted earlier in this transaction is only in ovsdbapp's lookup
        return found if found is not None else self.api.lookup("Port", name, default=None)

    def get(self, name: str) -> Any:
        """The row of port ``name`` (the transaction fails without it)."""
        row = self.find(name)
        if row is None:
            raise idlutils.RowNotFound(table="Port", col="name", match=name)
        return row


def _where_port(row: Any, name: str) -> list[Any]:
    """The condition selecting port ``row``: by its uuid, or by name for a port this
    transaction inserts (it has no uuid yet; raw operations run after the insert)."""
    if row._data is None:
        return [["name", "==", name]]
    return [["_uuid", "==", ["uuid", str(row.uuid)]]]


def _other_config(
    row: Any, name: str, remove: Sequence[str], insert: Mapping[str, str]
) -> dict[str, Any]:
    """Keys of a port's ``other_config`` removed, then set: its other keys are left as
    they are (no read, no verify; "insert" alone would keep a key's old value)."""
    mutations: list[Any] = [["other_config", "delete", ["set", list(remove)]]]
    if insert:
        pairs = [[key, value] for key, value in insert.items()]
        mutations.append(["other_config", "insert", ["map", pairs]])
    return {
        "op": "mutate",
        "table": "Port",
        "where": _where_port(row, name),
        "mutations": mutations,
    }


class _SetPortTag(ovs_command.BaseCommand):  # type: ignore[misc]
    """A port's tag and keys of its ``other_config``, written as raw OVSDB operations
    (python-ovs's ``Transaction.add_op``): an ``update`` of the tag and a ``mutate`` of
    the keys. Through python-ovs's rows each port cost a checked ``Datum`` per cell,
    its conversion to JSON and a walk of the whole request for uuids to rename: 500 ports
    spent about 20 ms of CPU there before the request went out. The values are checked
    by :class:`SetPortTag`, the row comes from the replica (a missing port fails the
    transaction)."""

    def __init__(self, api: Any, op: SetPortTag, ports: _PortRows) -> None:
        super().__init__(api)
        self.op = op
        self.ports = ports

    def run_idl(self, txn: Any) -> None:
        op = self.op
        row = self.ports.get(op.name)
        txn.add_op(
            {
                "op": "update",
                "table": "Port",
                "where": _where_port(row, op.name),
                "row": {"tag": op.tag},
            }
        )
        if op.other_config:
            txn.add_op(_other_config(row, op.name, list(op.other_config), op.other_config))

    def __str__(self) -> str:
        return f"SetPortTag({self.op.name}, {self.op.tag}, {dict(self.op.other_config)})"


class _RemovePortKeys(ovs_command.BaseCommand):  # type: ignore[misc]
    """Keys of a port's ``other_config`` removed (a raw ``mutate``); a port that is gone
    is left alone."""

    def __init__(self, api: Any, op: RemovePortKeys, ports: _PortRows) -> None:
        super().__init__(api)
        self.op = op
        self.ports = ports

    def run_idl(self, txn: Any) -> None:
        row = self.ports.find(self.op.name)
        if row is not None:
            txn.add_op(_other_config(row, self.op.name, self.op.keys, {}))

    def __str__(self) -> str:
        return f"RemovePortKeys({self.op.name}, {list(self.op.keys)})"


def _commands(api: Any, op: Op, ports: _PortRows) -> list[Any]:
    if isinstance(op, EnsureBridge):
        cmds = [
            api.add_br(op.name, may_exist=True, datapath_type=op.datapath_type),
            api.db_set("Bridge", op.name, ("fail_mode", op.fail_mode)),
        ]
        if op.external_ids:
            cmds.append(api.db_set("Bridge", op.name, ("external_ids", dict(op.external_ids))))
        return cmds
    if isinstance(op, EnsurePort):
        attrs: dict[str, Any] = {"type": op.type}
        if op.options:
            attrs["options"] = dict(op.options)
        if op.external_ids:
            attrs["external_ids"] = dict(op.external_ids)
        cmds = [api.add_port(op.bridge, op.name, may_exist=True, **attrs)]
        # may_exist leaves an existing interface as it was: converge its columns too
        cmds.append(api.db_set("Interface", op.name, *attrs.items()))
        if op.external_ids:
            cmds.append(api.db_set("Port", op.name, ("external_ids", dict(op.external_ids))))
        return cmds
    if isinstance(op, AttachInterface):
        cmds = [api.add_port(op.bridge, op.name, may_exist=True)]
        if op.external_ids:
            cmds.append(api.db_set("Interface", op.name, ("external_ids", dict(op.external_ids))))
        return cmds
    if isinstance(op, SetPortTag):
        return [_SetPortTag(api, op, ports)]
    if isinstance(op, RemovePortKeys):
        return [_RemovePortKeys(api, op, ports)]
    if isinstance(op, DeletePort):
        return [api.del_port(op.name, bridge=op.bridge, if_exists=True)]
    if isinstance(op, DeleteBridge):
        return [api.del_br(op.name, if_exists=True)]
    raise InvalidArgument("op", op, "not an OVSDB operation")


def commit(api: Any, ops: Sequence[Op]) -> None:
    """Apply ``ops`` in one OVSDB transaction (all or nothing).

    :param api: an ovsdbapp ``Open_vSwitch`` API object (connected).
    :raises InvalidArgument: an element is not an operation of this module.
    :raises OvsdbError: the transaction failed or timed out; nothing was applied.
    """
    if not ops:
        return
    ports = _PortRows(api)
    commands = [cmd for op in ops for cmd in _commands(api, op, ports)]
    try:
        with api.transaction(check_error=True) as txn:
            for cmd in commands:
                txn.add(cmd)
    except Exception as exc:  # ovsdbapp raises many unrelated types
        raise OvsdbError(f"OVSDB transaction of {len(ops)} operations failed: {exc}") from exc
