"""The file source against a real temporary file."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest
import yaml

from netagent.agent.source import SourceUpdate
from netagent.sources import statefile
from netagent.sources.file import FileSource

NET = "5bf5b5fe-d6ab-4868-bac7-a0dea247a672"
SUBNET = "aa925d73-99b3-4226-90c5-334e1ed70a7d"
SG = "75891e18-af2c-4c03-acf1-34e4b696efb6"
RULE = "057dcc03-1c92-4823-afa6-ba1c4e16ff3d"
P1 = "11111111-1111-4111-8111-111111111111"
P2 = "22222222-2222-4222-8222-222222222222"


def port(pid: str, mac: str, ip: str, **extra: object) -> dict[str, object]:
    return {
        "id": pid,
        "network_id": NET,
        "mac_address": mac,
        "binding:host_id": "host-a",
        "fixed_ips": [{"subnet_id": SUBNET, "ip_address": ip}],
        **extra,
    }


def document(**changes: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "networks": [
            {
                "id": NET,
                "name": "tenant",
                "provider:network_type": "vxlan",
                "provider:segmentation_id": 1001,
                "mtu": 1450,
            }
        ],
        "subnets": [{"id": SUBNET, "network_id": NET, "ip_version": 4, "cidr": "192.0.2.0/24"}],
        "security_groups": [
            {
                "id": SG,
                "name": "web",
                "security_group_rules": [
                    {
                        "id": RULE,
                        "direction": "ingress",
                        "ethertype": "IPv4",
                        "protocol": "tcp",
                        "port_range_min": 22,
                        "port_range_max": 22,
                    }
                ],
            }
        ],
        "ports": [
            port(P1, "fa:16:3e:00:00:01", "192.0.2.10", security_groups=[SG]),
            port(P2, "fa:16:3e:00:00:02", "192.0.2.11"),
        ],
        "agents": [{"host": "host-a", "configurations": {"tunneling_ip": "198.18.0.1"}}],
    }
    doc.update(changes)
    return doc


class Collector:
    def __init__(self) -> None:
        self.updates: list[SourceUpdate] = []

    def __call__(self, update: SourceUpdate) -> None:
        self.updates.append(update)

    @property
    def last(self) -> SourceUpdate:
        return self.updates[-1]


_bump = [0]


def write(path: Path, content: object, *, atomic: bool = True) -> None:
    """Write the file and give it a distinct mtime (coarse filesystem clocks)."""
    text = content if isinstance(content, str) else yaml.safe_dump(content)
    target = path.with_suffix(".tmp") if atomic else path
    target.write_text(text)
    _bump[0] += 1
    os.utime(target, ns=(1_000_000_000 * _bump[0], 1_000_000_000 * _bump[0]))
    if atomic:
        os.replace(target, path)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, FileSource, Collector]:
    path = tmp_path / "state.yaml"
    write(path, document())
    source = FileSource(str(path), poll_interval=0.05)
    got = Collector()
    source._callback = got  # check() delivers to it, without the polling thread
    return path, source, got


def test_initial_load_and_change_detection(setup: tuple[Path, FileSource, Collector]) -> None:
    path, source, got = setup
    assert source.check() is True
    assert set(got.last.state.ports) == {P1, P2}
    assert got.last.errors == () and got.last.origin == str(path)
    assert source.check() is False  # unchanged: not re-read
    doc = document()
    doc["ports"] = doc["ports"][:1]  # type: ignore[index]
    write(path, doc)
    assert source.check() is True
    assert set(got.last.state.ports) == {P1}
    write(path, document(), atomic=False)  # in-place write is seen too
    assert source.check() is True
    assert set(got.last.state.ports) == {P1, P2}


def test_unusable_file_keeps_last_good_state_and_logs_once(
    setup: tuple[Path, FileSource, Collector], caplog: pytest.LogCaptureFixture
) -> None:
    path, source, got = setup
    source.check()
    write(path, "networks: [unclosed\n")
    with caplog.at_level(logging.ERROR):
        assert source.check() is False
        assert source.check() is False
        write(path, "networks: [unclosed\n")  # rewritten, same error
        assert source.check() is False
    # one more update: the same (kept) state, saying why the newest file was refused
    assert len(got.updates) == 2
    assert got.last.state is got.updates[0].state
    assert got.last.file_error is not None and "expected ','" in got.last.file_error
    unusable = [r for r in caplog.records if "unusable" in r.getMessage()]
    assert len(unusable) == 1  # the same error is logged once
    path.unlink()
    assert source.check() is False
    write(path, document())
    assert source.check() is True
    assert set(got.last.state.ports) == {P1, P2}
    assert got.last.file_error is None


def test_invalid_object_keeps_its_last_good_version(
    setup: tuple[Path, FileSource, Collector], caplog: pytest.LogCaptureFixture
) -> None:
    path, source, got = setup
    source.check()
    good = got.last.state.ports[P2]
    doc = document()
    doc["ports"][1]["mac_address"] = "not-a-mac"  # type: ignore[index]
    doc["ports"][0]["admin_state_up"] = False  # type: ignore[index]
    with caplog.at_level(logging.WARNING):
        write(path, doc)
        assert source.check() is True
        write(path, doc | {"x-comment": "touched"})
        assert source.check() is True
    state = got.last.state
    assert state.ports[P2] == good  # kept
    assert state.ports[P1].admin_state_up is False  # the valid change went through
    assert any("keeping the previous version" in e for e in got.last.errors)
    kept = [r for r in caplog.records if "previous version" in r.getMessage()]
    assert len(kept) == 1  # once per change, not once per read


def test_new_invalid_object_without_previous_version_is_skipped(
    setup: tuple[Path, FileSource, Collector],
) -> None:
    path, source, got = setup
    source.check()
    doc = document()
    bad = port("33333333-3333-4333-8333-333333333333", "fa:16:3e:00:00:03", "10.0.0.1")
    doc["ports"].append(bad)  # type: ignore[attr-defined]  # address outside the subnet
    write(path, doc)
    source.check()
    assert set(got.last.state.ports) == {P1, P2}
    assert len(got.last.errors) == 1 and "10.0.0.1" in got.last.errors[0]


def test_invalid_rule_keeps_the_previous_group(
    setup: tuple[Path, FileSource, Collector],
) -> None:
    path, source, got = setup
    source.check()
    group = got.last.state.security_groups[SG]
    doc = document()
    doc["security_groups"][0]["security_group_rules"][0]["port_range_min"] = 99999  # type: ignore[index]
    write(path, doc)
    source.check()
    assert got.last.state.security_groups[SG] == group


def test_polling_thread_delivers_changes(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    write(path, document())
    source = FileSource(str(path), poll_interval=0.02)
    seen = threading.Event()
    updates: list[SourceUpdate] = []

    def callback(update: SourceUpdate) -> None:
        updates.append(update)
        if len(updates) == 2:
            seen.set()

    source.start(callback)
    try:
        doc = document()
        doc["ports"] = []
        for _ in range(100):
            if updates:
                break
            threading.Event().wait(0.02)
        write(path, doc)
        assert seen.wait(5)
        assert updates[-1].state.ports == {}
    finally:
        source.stop()


def test_writer_faster_than_the_parse_never_starves_the_reader(
    setup: tuple[Path, FileSource, Collector], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is replaced (rename) during every parse, as a writer that changes a large
    state twice a second does: each poll still delivers the version it read (before: each
    read was discarded as "changed while being read", and the agent kept a state minutes
    old at 1,000 ports)."""
    path, source, got = setup
    parse = statefile.parse_state
    versions = iter(range(3, 100))

    def parse_while_the_writer_writes(document: object, origin: str) -> statefile.LoadResult:
        result = parse(document, origin)
        doc = document_with_ports(next(versions))
        write(path, doc)
        return result

    monkeypatch.setattr(statefile, "parse_state", parse_while_the_writer_writes)
    seen = []
    for _ in range(3):
        assert source.check() is True
        seen.append(len(got.last.state.ports))
    assert seen == [2, 3, 4]  # every poll a newer version, each one whole


def test_in_place_write_during_the_read_is_read_again(
    setup: tuple[Path, FileSource, Collector], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, source, got = setup
    real_fstat = os.fstat
    calls = [0]

    def fstat_seeing_a_write(fd: int) -> os.stat_result:
        calls[0] += 1
        if calls[0] == 2:  # after the bytes were read: an in-place write happened meanwhile
            write(path, document_with_ports(3), atomic=False)
        return real_fstat(fd)

    monkeypatch.setattr(statefile.os, "fstat", fstat_seeing_a_write)
    assert source.check() is False  # a torn read is not delivered
    monkeypatch.setattr(statefile.os, "fstat", real_fstat)
    assert source.check() is True
    assert len(got.last.state.ports) == 3


def document_with_ports(count: int) -> dict[str, object]:
    ports = [
        port(f"{n:08d}-1111-4111-8111-111111111111", f"fa:16:3e:00:01:{n:02x}", f"192.0.2.{n}")
        for n in range(10, 10 + count)
    ]
    return document(ports=ports)
