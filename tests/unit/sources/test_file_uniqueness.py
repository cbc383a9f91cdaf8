"""Uniqueness over the final set of ports, after keeping last good versions (issue 17
item 4): a new port listed before vm1 with vm1's address made vm1's new entry "already
used", vm1's previous version was kept, and two ports owned one address."""

from __future__ import annotations

from pathlib import Path

import pytest

from netagent.sources.file import FileSource
from tests.unit.sources.test_file_source import NET, P1, P2, Collector, document, port, write

NEW = "33333333-3333-4333-8333-333333333333"
VM1_MAC, VM1_IP = "fa:16:3e:00:00:01", "192.0.2.10"


def load(tmp_path: Path) -> tuple[Path, FileSource, Collector]:
    path = tmp_path / "state.yaml"
    write(path, document())
    source = FileSource(str(path), poll_interval=0.05)
    got = Collector()
    source._callback = got
    assert source.check() is True
    return path, source, got


def owners(got: Collector) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for p in got.last.state.ports.values():
        found.setdefault((p.network_id, p.mac_address), []).append(p.id)
        for address in p.addresses:
            found.setdefault((p.network_id, str(address)), []).append(p.id)
    return found


def assert_unique(got: Collector) -> None:
    assert all(len(ids) == 1 for ids in owners(got).values()), owners(got)


@pytest.mark.parametrize("first", [True, False], ids=["newcomer-first", "newcomer-last"])
@pytest.mark.parametrize(
    ("mac", "ip", "field"),
    [
        ("fa:16:3e:00:00:99", VM1_IP, "fixed_ips[0]"),
        (VM1_MAC, "192.0.2.99", "mac_address"),
    ],
    ids=["same-ip", "same-mac"],
)
def test_newcomer_never_takes_an_existing_ports_address(
    tmp_path: Path, first: bool, mac: str, ip: str, field: str
) -> None:
    path, source, got = load(tmp_path)
    before = got.last.state.ports[P1]
    doc = document()
    newcomer = port(NEW, mac, ip)
    doc["ports"] = [newcomer, *doc["ports"]] if first else [*doc["ports"], newcomer]  # type: ignore[misc]
    write(path, doc)
    assert source.check() is True

    assert_unique(got)
    assert got.last.state.ports[P1] == before  # the existing owner wins
    assert NEW not in got.last.state.ports
    refused = [e for e in got.last.errors if f"port {NEW}: field {field}" in e]
    assert len(refused) == 1 and refused[0].endswith(f"already used by port {P1}")


def test_existing_owner_keeps_its_claim_when_its_own_entry_is_invalid(tmp_path: Path) -> None:
    """vm1's new entry is broken (kept at its previous version): the newcomer with vm1's
    address is still refused, although vm1's new entry claims nothing."""
    path, source, got = load(tmp_path)
    doc = document()
    ports = doc["ports"]
    ports[0]["mac_address"] = "not a mac"  # type: ignore[index]
    doc["ports"] = [*ports, port(NEW, "fa:16:3e:00:00:99", VM1_IP)]  # type: ignore[misc]
    write(path, doc)
    source.check()
    assert_unique(got)
    assert got.last.state.ports[P1].mac_address == VM1_MAC
    assert NEW not in got.last.state.ports


def test_address_freed_by_its_owner_can_be_taken(tmp_path: Path) -> None:
    path, source, got = load(tmp_path)
    doc = document()
    doc["ports"] = [  # newcomer first, vm1 moved away from .10
        port(NEW, "fa:16:3e:00:00:99", VM1_IP),
        port(P1, VM1_MAC, "192.0.2.20"),
        port(P2, "fa:16:3e:00:00:02", "192.0.2.11"),
    ]
    write(path, doc)
    source.check()
    assert_unique(got)
    assert [str(a) for a in got.last.state.ports[NEW].addresses] == [VM1_IP]
    assert [str(a) for a in got.last.state.ports[P1].addresses] == ["192.0.2.20"]
    assert got.last.errors == ()


def test_without_a_previous_state_the_first_in_the_file_wins(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    doc = document()
    doc["ports"] = [port(NEW, "fa:16:3e:00:00:99", VM1_IP), *doc["ports"]]  # type: ignore[misc]
    write(path, doc)
    source = FileSource(str(path))
    got = Collector()
    source._callback = got
    source.check()
    assert_unique(got)
    assert set(got.last.state.ports) == {NEW, P2}
    assert got.last.state.ports[NEW].network_id == NET
