"""The iptables backend decision: table, kernel facts, record."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netagent.linux.iptables import backend as b

NETAGENT_SAVE = (
    "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:na-FORWARD - [0:0]\n"
    '-A FORWARD -m comment --comment "na:hook" -j na-FORWARD\n'
    "-A na-FORWARD -j RETURN\nCOMMIT\n"
)
HOST_SAVE = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n"


def facts(
    owned: set[str] = frozenset(),  # type: ignore[assignment]
    recorded: str | None = None,
    nft: int = 0,
    legacy: int = 0,
    alternative: str | None = "nft",
) -> b.Facts:
    return b.Facts(recorded, frozenset(owned), {"nft": nft, "legacy": legacy}, alternative)


@pytest.mark.parametrize(
    ("given", "backend", "warn"),
    [
        # netagent's chains decide, whatever else is there
        (facts({"nft"}), "nft", False),
        (facts({"nft"}, legacy=5, alternative="legacy"), "nft", False),
        (facts({"legacy"}), "legacy", False),
        (facts({"nft"}, recorded="legacy"), "nft", True),
        (facts({"legacy"}, recorded="nft"), "legacy", True),
        # in both: the record, else the alternative, with a warning
        (facts({"nft", "legacy"}, recorded="legacy"), "legacy", True),
        (facts({"nft", "legacy"}, alternative="legacy"), "legacy", True),
        (facts({"nft", "legacy"}, alternative=None), "nft", True),
        # none: the record (restart after a cleanup, or nothing applied yet)
        (facts(recorded="legacy", nft=4), "legacy", False),
        (facts(recorded="nft", legacy=4, alternative="legacy"), "nft", False),
        # first start: where the host's rules are, else the alternative
        (facts(legacy=3), "legacy", False),
        (facts(nft=3, alternative="legacy"), "nft", False),
        (facts(nft=3, legacy=3, alternative="legacy"), "legacy", False),
        (facts(alternative="legacy"), "legacy", False),
        (facts(alternative=None), "nft", False),
    ],
)
def test_decision_table(given: b.Facts, backend: str, warn: bool) -> None:
    choice = b.choose(given)
    assert (choice.backend, choice.warn) == (backend, warn), choice.reason
    assert choice.reason


class FakePriv:
    BACKENDS = ("nft", "legacy")

    def __init__(self, saves: dict[tuple[str, int, str], str], legacy: dict[int, list[str]]):
        self.saves = saves
        self.legacy = legacy
        self.saved: list[tuple[str, int, str]] = []

    def legacy_tables(self, namespace: str | None) -> dict[int, list[str]]:
        return self.legacy

    def save(self, namespace: str | None, backend: str, family: int, table: str) -> str:
        self.saved.append((backend, family, table))
        return self.saves.get((backend, family, table), "")

    def alternative(self) -> str | None:
        return "legacy"


def test_empty_legacy_tables_do_not_flip_a_host_running_on_nft(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # someone ran `iptables-legacy -L` in the namespace: the tables exist, empty
    fake = FakePriv({("nft", 4, "filter"): NETAGENT_SAVE}, {4: ["filter"], 6: []})
    monkeypatch.setattr(b, "priv", fake)
    got = b.gather(None, None)
    assert got.owned == {"nft"} and got.foreign == {"nft": 0, "legacy": 0}
    assert b.choose(got).backend == "nft"


def test_legacy_tables_are_read_only_when_they_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakePriv({("legacy", 4, "nat"): HOST_SAVE}, {4: [], 6: []})
    monkeypatch.setattr(b, "priv", fake)
    assert b.gather(None, None).foreign == {"nft": 0, "legacy": 0}
    assert not [s for s in fake.saved if s[0] == "legacy"]
    fake.legacy = {4: ["nat"], 6: []}
    assert b.gather(None, None).foreign == {"nft": 0, "legacy": 1}
    assert [s for s in fake.saved if s[0] == "legacy"] == [("legacy", 4, "nat")]


def test_resolve_records_and_a_restart_keeps_the_choice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = FakePriv({("legacy", 4, "filter"): HOST_SAVE}, {4: ["filter"], 6: []})
    monkeypatch.setattr(b, "priv", fake)
    assert b.resolve("auto", None, str(tmp_path)) == "legacy"  # the host's rules
    record = tmp_path / b.RECORD_FILE
    assert record.read_text() == "legacy\n"
    assert os.stat(record).st_mode & 0o077 == 0
    # the host's rules move to nft meanwhile: the record keeps netagent where it was
    fake.saves = {("nft", 4, "filter"): HOST_SAVE}
    fake.legacy = {4: [], 6: []}
    assert b.resolve("auto", None, str(tmp_path)) == "legacy"


def test_configured_backend_is_used_and_recorded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(b, "priv", FakePriv({}, {4: [], 6: []}))
    assert b.resolve("legacy", None, str(tmp_path)) == "legacy"
    assert b.read_record(str(tmp_path)) == "legacy"
    with pytest.raises(ValueError):
        b.resolve("iptables", None, str(tmp_path))


def test_a_bad_record_is_ignored(tmp_path: Path) -> None:
    (tmp_path / b.RECORD_FILE).write_text("nft; rm -rf /\n")
    assert b.read_record(str(tmp_path)) is None
    assert b.read_record(None) is None
    assert b.read_record(str(tmp_path / "missing")) is None
