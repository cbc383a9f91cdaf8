"""The OVSDB connection (ovsdbapp) and a typed snapshot of bridges, ports and interfaces.

ovsdbapp keeps a replica of the database that the server updates as it changes (the IDL
monitor), so :meth:`Ovsdb.snapshot` costs no round trip to the server: it reads the
replica through ovsdbapp's command queue (the connection thread owns the replica).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from netagent.ovs import jsonstream
from netagent.privileged import ovsdb as priv
from netagent.privileged.ovsdb import (
    DEAD_VLAN,
    AttachInterface,
    DeleteBridge,
    DeletePort,
    EnsureBridge,
    EnsurePort,
    Op,
    OvsdbError,
    RemovePortKeys,
    SetPortTag,
)

__all__ = [
    "DEAD_VLAN",
    "AttachInterface",
    "DeleteBridge",
    "DeletePort",
    "EnsureBridge",
    "EnsurePort",
    "Interface",
    "Op",
    "Ovsdb",
    "OvsdbError",
    "OvsdbState",
    "RemovePortKeys",
    "SetPortTag",
]

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Interface:
    """One interface row with its port and bridge (a port has one interface here)."""

    name: str
    port: str
    bridge: str | None
    type: str
    ofport: int | None
    tag: int | None
    options: Mapping[str, str]
    external_ids: Mapping[str, str]
    port_external_ids: Mapping[str, str]
    port_other_config: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class OvsdbState:
    """Bridges (name -> external_ids, datapath type) and interfaces by name."""

    bridges: Mapping[str, Mapping[str, str]]
    datapath_types: Mapping[str, str]
    interfaces: Mapping[str, Interface]
    fail_modes: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def by_iface_id(self, bridge: str) -> dict[str, Interface]:
        """Interfaces on ``bridge`` by ``external_ids:iface-id`` (os-vif's port id)."""
        found: dict[str, Interface] = {}
        for iface in self.interfaces.values():
            iface_id = iface.external_ids.get("iface-id")
            if iface.bridge == bridge and iface_id:
                found[iface_id] = iface
        return found

    def ofport(self, name: str) -> int | None:
        iface = self.interfaces.get(name)
        return iface.ofport if iface is not None else None


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, list):  # optional columns come back as [] or [value]
        value = value[0] if value else None
    return value if isinstance(value, int) and value >= 0 else None


#: What netagent replicates: only the columns its reads and ovsdbapp's commands use. The
#: whole database (every table, Interface statistics and status that ovs-vswitchd
#: rewrites every few seconds) would cost python-ovs's pure-Python JSON parser seconds at
#: connect time with 1,000 ports, and CPU for every statistics update after.
REPLICATED: dict[str, list[str]] = {
    "Open_vSwitch": ["bridges", "cur_cfg", "next_cfg"],
    "Bridge": ["name", "ports", "datapath_type", "fail_mode", "external_ids"],
    "Port": ["name", "interfaces", "tag", "external_ids", "other_config"],
    "Interface": ["name", "type", "ofport", "options", "external_ids"],
}

#: Columns read by :meth:`Ovsdb.snapshot`: how each is turned into Python.
_BRIDGE = {
    "name": "one",
    "ports": "refs",
    "external_ids": "map",
    "datapath_type": "one",
    "fail_mode": "one",
}
_PORT = {
    "name": "one",
    "interfaces": "refs",
    "tag": "one",
    "external_ids": "map",
    "other_config": "map",
}
_IFACE = {"name": "one", "type": "one", "ofport": "one", "options": "map", "external_ids": "map"}


_EMPTY: Mapping[Any, Any] = {}
#: The defaults of the single-valued columns read that are not optional (the others: None)
_DEFAULTS = {"name": "", "type": "", "datapath_type": ""}


def _convert(data: Any, columns: Mapping[str, str]) -> dict[str, Any]:
    """One row's committed cells (``Row._data``: column -> ``Datum``, whose ``values``
    maps atoms to atoms, or to None for sets and scalars) as Python values.

    A cell the server sent no value for (an empty map, a set, "" or 0) is not in
    ``_data``: python-ovs makes a default ``Datum`` each time such a cell is indexed,
    which cost more than the rest of the conversion (a VM port's options, type and
    tag). ``dict.get`` does not make one."""
    out: dict[str, Any] = {}
    get = data.get
    for column, kind in columns.items():
        datum = get(column)
        values = datum.values if datum is not None else _EMPTY
        if kind == "map":
            out[column] = {k.value: v.value for k, v in values.items()}
        elif kind == "refs":  # row references, as ints (uuid.UUID hashes in Python)
            out[column] = [k.value.int for k in values]
        elif values:
            out[column] = next(iter(values)).value
        else:  # the column's default: netagent's columns are optional or strings
            out[column] = _DEFAULTS.get(column)
    return out


#: The tables :meth:`Ovsdb.snapshot` reads, with their columns.
_READ = {"Bridge": _BRIDGE, "Port": _PORT, "Interface": _IFACE}


class _RowCache:
    """The replica's rows converted to Python, kept between snapshots and converted again
    only when python-ovs reports a change (``notify``, called for every row an update
    creates, modifies or deletes): a snapshot of 1,000 ports with 10 changed converts 10.

    python-ovs empties its tables without notifying when it reconnects and reloads the
    whole database; the reloaded rows are notified, the dropped ones are found by
    counting. Every method runs under ovsdbapp's connection lock (updates are applied
    under it too)."""

    def __init__(self) -> None:
        #: converted rows by table, then by ``uuid.int``
        self._rows: dict[str, dict[int, dict[str, Any]]] = {table: {} for table in _READ}
        self._dirty: dict[str, set[Any]] = {table: set() for table in _READ}
        #: Interface objects by interface row uuid, with the converted rows they came from
        self._interfaces: dict[
            int, tuple[dict[str, Any], dict[str, Any], str | None, Interface]
        ] = {}

    def changed(self, table: str, uuid: Any) -> None:
        dirty = self._dirty.get(table)
        if dirty is not None:
            dirty.add(uuid)

    def rows(self, table: Any) -> dict[int, dict[str, Any]]:
        """``table``'s committed rows by ``uuid.int``, brought up to date (a row this process is
        inserting has no committed cells yet: ``_data`` is None)."""
        name = table.name
        cached, dirty = self._rows[name], self._dirty[name]
        self._dirty[name] = set()
        live = table.rows
        for uuid in dirty:
            row = live.get(uuid)
            if row is None or row._data is None:
                cached.pop(uuid.int, None)
            else:
                cached[uuid.int] = _convert(row._data, _READ[name])
        if len(cached) != len(live):
            # the replica was reloaded (or holds rows being inserted): convert it all
            cached.clear()
            for uuid, row in live.items():
                if row._data is not None:
                    cached[uuid.int] = _convert(row._data, _READ[name])
        return cached

    def interface(
        self, uuid: int, row: dict[str, Any], port: dict[str, Any], bridge: str | None
    ) -> Interface:
        """The Interface of these converted rows (the same object while they are)."""
        known = self._interfaces.get(uuid)
        if known is not None and known[0] is row and known[1] is port and known[2] == bridge:
            return known[3]
        iface = Interface(
            name=row["name"],
            port=port["name"],
            bridge=bridge,
            type=row["type"],
            ofport=_int_or_none(row["ofport"]),
            tag=_int_or_none(port["tag"]),
            options=row["options"],
            external_ids=row["external_ids"],
            port_external_ids=port["external_ids"],
            port_other_config=port["other_config"],
        )
        self._interfaces[uuid] = (row, port, bridge, iface)
        return iface

    def forget_interfaces(self, keep: AbstractSet[int]) -> None:
        for uuid in self._interfaces.keys() - keep:
            del self._interfaces[uuid]


_WATCHED = frozenset({"external_ids", "ofport"})


def _iface_ids(row: Any, updates: Any) -> set[str]:
    """The iface-ids an Interface change concerns (the old one too when it changed)."""
    found = set()
    for source in (row, updates):
        ids = getattr(source, "external_ids", None) if source is not None else None
        if isinstance(ids, Mapping) and isinstance(ids.get("iface-id"), str):
            found.add(ids["iface-id"])
    return found


#: The Port cells netagent writes (:class:`netagent.privileged.ovsdb.SetPortTag`)
_TAGGED = ("tag", "other_config")


def _hold_defaults(data: Any, columns: Sequence[str]) -> None:
    """Store the default value of the ``columns`` a new row has no value for.

    python-ovs keeps only the cells the server sent (an untagged port has no ``tag`` and
    no ``other_config`` cell) and makes a default ``Datum`` whenever a missing cell is
    read: applying the update that tags such a port read each cell three times, a third
    of the cost of the update netagent's own 500-port transaction brings back. Held,
    the default is made once."""
    for column in columns:
        if not dict.__contains__(data, column):  # the row's `in` lists every column
            data[column] = data[column]  # makes the default (``__missing__``) and keeps it


def _notifying_idl(
    base: Any, report: Callable[[str], None], row_changed: Callable[[str, Any], None]
) -> Any:
    """A subclass of ovsdbapp's IDL that reports Interface rows with an ``iface-id``
    (the python-ovs IDL calls ``notify`` for every row it creates, updates or deletes in
    its replica: this is the monitor of the Interface table, no polling), and every row
    change to ``row_changed(table, uuid)``."""

    class NotifyingIdl(base):  # type: ignore[misc]
        def cooperative_yield(self) -> None:
            # ovsdbapp's sleep(0) after every row of an update lets eventlet's green
            # threads run; netagent has none, and on a busy host each yield gave the CPU
            # away (0.1 s of a 500-port transaction here)
            pass

        def notify(self, event: str, row: Any, updates: Any = None) -> None:
            try:
                table = row._table.name
                row_changed(table, row.uuid)
                if table != "Interface":
                    if event == "create" and table == "Port":
                        _hold_defaults(row._data, _TAGGED)
                    return
                if event == "update" and updates is not None:
                    changed = {c for c in _WATCHED if hasattr(updates, c)}
                    if not changed:
                        return
                for iface_id in _iface_ids(row, updates):
                    report(iface_id)
            except Exception:  # never let a callback break the replica
                LOG.exception("Interface notification failed")

    return NotifyingIdl


class Ovsdb:
    """A lazily opened ovsdbapp connection to one ovsdb-server.

    :param connection: ovsdbapp connection string, e.g. ``unix:/run/openvswitch/db.sock``.
    :param timeout: seconds a transaction (and the wait for ovs-vswitchd) may take.
    """

    def __init__(self, connection: str, timeout: int) -> None:
        self.connection = connection
        self.timeout = timeout
        #: called with the ``iface-id`` of every Interface row that appears, vanishes or
        #: changes ``external_ids``/``ofport`` (from ovsdbapp's connection thread)
        self.on_interface: Callable[[str], None] | None = None
        self._api: Any = None
        self._lock = threading.Lock()
        self._cache = _RowCache()

    @property
    def api(self) -> Any:
        """The ovsdbapp API, connected on first use.

        :raises OvsdbError: the server cannot be reached.
        """
        with self._lock:
            if self._api is None:
                from ovsdbapp.backend.ovs_idl import connection, idlutils  # noqa: PLC0415
                from ovsdbapp.schema.open_vswitch import impl_idl  # noqa: PLC0415

                jsonstream.install()
                try:
                    self._cache = _RowCache()
                    idl_class = _notifying_idl(
                        connection.OvsdbIdl, self._notify, self._cache.changed
                    )
                    helper = idlutils.get_schema_helper(self.connection, "Open_vSwitch")
                    for table, columns in REPLICATED.items():
                        helper.register_columns(table, columns)
                    idl = idl_class(self.connection, helper)
                    conn = connection.Connection(idl=idl, timeout=self.timeout)
                    # ovsdbapp keeps the connection in a class attribute (one per process);
                    # a class of its own per Ovsdb lets tests and tools open several.
                    api_class = type(
                        "NetagentOvsdbIdl", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None}
                    )
                    api = api_class(conn, start=False)
                    table, column = priv.UNINDEXED
                    idl.tables[table].rows.indexes.pop(idlutils.index_name(column), None)
                    api.start_connection(conn)
                    self._api = api
                except Exception as exc:
                    raise OvsdbError(f"cannot connect to {self.connection}: {exc}") from exc
            return self._api

    def snapshot(self) -> OvsdbState:
        """Bridges, ports and interfaces as the replica has them now.

        Read from the replica's committed rows under ovsdbapp's connection lock (what
        ovsdbapp's read-only commands hold too), without its per-cell conversions, and only
        the rows changed since the last snapshot are converted again (:class:`_RowCache`):
        for 1,000 ports and nothing changed this is about a millisecond, ~70 ms through
        ``db_list``.

        :raises OvsdbError: the connection is unusable.
        """
        api = self.api
        try:
            with api.ovsdb_connection.lock:
                return self._snapshot(api.tables)
        except Exception as exc:
            raise OvsdbError(f"reading {self.connection} failed: {exc}") from exc

    def _snapshot(self, tables: Mapping[str, Any]) -> OvsdbState:
        cache = self._cache
        bridges = cache.rows(tables["Bridge"])
        ports = cache.rows(tables["Port"])
        ifaces = cache.rows(tables["Interface"])
        bridge_of_port = {
            port_uuid: row["name"] for row in bridges.values() for port_uuid in row["ports"]
        }
        port_of_iface: dict[int, tuple[int, dict[str, Any]]] = {}
        for port_uuid, row in ports.items():
            for iface_uuid in row["interfaces"]:
                port_of_iface[iface_uuid] = (port_uuid, row)
        interfaces: dict[str, Interface] = {}
        for uuid, row in ifaces.items():
            found = port_of_iface.get(uuid)
            if found is not None:
                port_uuid, port = found
                iface = cache.interface(uuid, row, port, bridge_of_port.get(port_uuid))
                interfaces[iface.name] = iface
        cache.forget_interfaces(ifaces.keys())
        return OvsdbState(
            bridges={row["name"]: row["external_ids"] for row in bridges.values()},
            datapath_types={row["name"]: row["datapath_type"] for row in bridges.values()},
            interfaces=interfaces,
            fail_modes={row["name"]: row["fail_mode"] or "" for row in bridges.values()},
        )

    def _notify(self, iface_id: str) -> None:
        callback = self.on_interface
        if callback is not None:
            callback(iface_id)

    def apply(self, ops: Sequence[Op]) -> None:
        """Commit ``ops`` in one transaction (see :func:`netagent.privileged.ovsdb.commit`).

        :raises OvsdbError: it failed; nothing was applied.
        """
        if ops:
            LOG.debug("OVSDB transaction: %s", ops)
            priv.commit(self.api, ops)

    def close(self) -> None:
        with self._lock:
            if self._api is not None:
                with contextlib.suppress(Exception):  # closing a broken connection
                    self._api.ovsdb_connection.stop()
                self._api = None
