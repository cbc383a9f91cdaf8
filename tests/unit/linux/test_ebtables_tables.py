"""The ebtables restore grammar per table: each table's hook goes only into its own
built-in chain, and the manager writes the hook of the table it serves."""

from __future__ import annotations

import pytest

from netagent.linux import ebtables
from netagent.privileged import ebtables as priv


def test_filter_input_guard_is_in_the_grammar() -> None:
    priv.check_restore_input(
        "*filter\n:na-INPUT RETURN\n-A na-INPUT -i tap+ -j DROP\n-I INPUT 1 -j na-INPUT\nCOMMIT\n",
        "filter",
    )


@pytest.mark.parametrize(
    ("table", "line"),
    [
        ("nat", "-I INPUT 1 -j na-INPUT"),
        ("filter", "-I PREROUTING 1 -j na-PREROUTING"),
        ("filter", "-I FORWARD 1 -j na-FORWARD"),
        ("filter", "-A INPUT -j ACCEPT"),
    ],
)
def test_a_hook_outside_its_table_is_refused(table: str, line: str) -> None:
    with pytest.raises(priv.EbtablesInputError):
        priv.check_restore_input(f"*{table}\n{line}\nCOMMIT\n", table)


def test_table_header_must_match() -> None:
    with pytest.raises(priv.EbtablesInputError):
        priv.check_restore_input("*nat\n:na-INPUT RETURN\nCOMMIT\n", "filter")
    with pytest.raises(ValueError):
        priv.save(None, "broute")


def test_filter_manager_hooks_input(monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[tuple[str, str]] = []
    monkeypatch.setattr(priv, "save", lambda ns, table="nat": "")
    monkeypatch.setattr(
        priv,
        "restore",
        lambda ns, text, table="nat", settle=False: (
            priv.check_restore_input(text, table),
            written.append((table, text)),
        ),
    )
    manager = ebtables.EbtablesManager("ns1", table="filter")
    manager.set_hook([ebtables.EbRule("DROP", in_iface="tap+")])
    assert not manager.apply().failed
    assert written == [
        (
            "filter",
            "*filter\n:na-INPUT RETURN\n-A na-INPUT -i tap+ -j DROP\n"
            "-I INPUT 1 -j na-INPUT\nCOMMIT\n",
        )
    ]
    assert not manager.apply().applied  # nothing changed: nothing written
    with pytest.raises(ValueError):
        manager.set_chain("na-INPUT", [])
    with pytest.raises(ValueError):
        ebtables.EbtablesManager("ns1", table="broute")
