"""SIGHUP makes the source fetch the whole desired state again and the host be resynced:
the state file is read even though it did not change (a version refused for an
unreadable file, EMFILE say, is not lost until the file changes again)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from netagent.agent import service
from netagent.sources.file import FileSource
from tests.unit.sources.test_file_source import Collector, document, write


class Recorder:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def request_full_resync(self, reason: str) -> None:
        self.reasons.append(reason)


@pytest.fixture
def restore_sighup() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGHUP)
    yield
    signal.signal(signal.SIGHUP, previous)


def test_reread_delivers_an_unchanged_file_again(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    write(path, document())
    source = FileSource(str(path))
    collector = Collector()
    source._callback = collector
    assert source.check() is True
    assert source.check() is False  # unchanged: nothing delivered
    source.reread("test")
    assert source.check() is True
    assert len(collector.updates) == 2
    assert source.check() is False  # once per request


def test_sighup_rereads_the_file_and_requests_a_full_resync(
    tmp_path: Path, restore_sighup: None
) -> None:
    path = tmp_path / "state.yaml"
    write(path, document())
    source = FileSource(str(path))
    collector = Collector()
    source._callback = collector
    assert source.check() is True
    reconciler = Recorder()
    service.install_resync_handler(reconciler, source)  # type: ignore[arg-type]
    os.kill(os.getpid(), signal.SIGHUP)
    assert reconciler.reasons == ["SIGHUP"]
    assert source.check() is True
    assert len(collector.updates) == 2
