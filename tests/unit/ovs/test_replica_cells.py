"""Reading python-ovs's replica rows: cells the server sent no value for."""

from __future__ import annotations

from typing import Any

from ovs.db import data, idl
from ovs.db.schema import TableSchema

from netagent.ovs import ovsdb

PORT = TableSchema.from_json(
    {
        "columns": {
            "name": {"type": "string"},
            "tag": {"type": {"key": {"type": "integer"}, "min": 0, "max": 1}},
            "other_config": {
                "type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}
            },
            "interfaces": {"type": {"key": {"type": "uuid"}, "min": 1, "max": "unlimited"}},
            "external_ids": {
                "type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}
            },
        }
    },
    "Port",
)


def cells(**values: Any) -> Any:
    row = idl.ColumnDefaultDict(PORT)
    for column, value in values.items():
        row[column] = data.Datum.from_python(PORT.columns[column].type, value, lambda r: r)
    return row


def test_missing_cells_read_as_their_defaults_without_making_one() -> None:
    row = cells(name="vm0", external_ids={"iface-id": "p-1"})
    made: list[str] = []
    original = idl.ColumnDefaultDict.__missing__

    def spy(self: Any, column: str) -> Any:
        made.append(column)
        return original(self, column)

    idl.ColumnDefaultDict.__missing__ = spy  # type: ignore[method-assign]
    try:
        got = ovsdb._convert(row, ovsdb._PORT)
    finally:
        idl.ColumnDefaultDict.__missing__ = original  # type: ignore[method-assign]
    assert got == {
        "name": "vm0",
        "interfaces": [],
        "tag": None,
        "external_ids": {"iface-id": "p-1"},
        "other_config": {},
    }
    assert made == []
    full = cells(name="vm1", tag=7, other_config={"net_uuid": "n"})
    assert ovsdb._convert(full, ovsdb._PORT)["tag"] == 7
    assert ovsdb._convert(full, ovsdb._PORT)["other_config"] == {"net_uuid": "n"}


def test_held_defaults_are_made_once_and_values_are_kept() -> None:
    row = cells(name="vm0", tag=3)
    ovsdb._hold_defaults(row, ("tag", "other_config"))
    assert dict.__contains__(row, "other_config")
    assert row["other_config"] is row["other_config"]  # stored, not made per read
    assert row["other_config"].values == {}
    assert row["tag"].as_scalar() == 3  # a value is never replaced
