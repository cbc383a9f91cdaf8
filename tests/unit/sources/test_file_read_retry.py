"""A state-file read that fails with an OS error (EMFILE) is retried with backoff.

The file is not touched again between the failure and the retry: the retry alone must
deliver the state (before, it was lost until the next change of the file).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from netagent.sources import statefile
from netagent.sources.file import FileSource
from tests.unit.sources.test_file_source import P1, P2, Collector, document, write


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_emfile_read_is_retried_with_backoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.yaml"
    write(path, document())
    before = os.stat(path)
    clock = Clock()
    source = FileSource(str(path), poll_interval=0.05, clock=clock)
    got = Collector()
    source._callback = got
    opens: list[str] = []
    failures = [2]  # the first read and the first retry fail

    def flaky_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opens.append(str(file))
        if failures[0]:
            failures[0] -= 1
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return open(file, *args, **kwargs)

    monkeypatch.setattr(statefile, "open", flaky_open, raising=False)
    assert source.check() is False and len(opens) == 1
    assert source.check() is False and len(opens) == 1  # not before the backoff is due
    clock.now = 1.0
    assert source.check() is False and len(opens) == 2  # first retry, fails again
    clock.now = 2.5
    assert source.check() is False and len(opens) == 2  # the wait doubled to 2 s
    clock.now = 3.0
    assert source.check() is True and len(opens) == 3
    assert set(got.last.state.ports) == {P1, P2}
    assert source.check() is False and len(opens) == 3  # delivered: back to change detection
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


_CHILD = textwrap.dedent(
    """
    import json, os, resource, sys, time
    from netagent.sources.file import FileSource

    got = []
    source = FileSource(sys.argv[1], poll_interval=0.05)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    fillers = []
    try:
        while True:
            fillers.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as exc:
        exhausted = exc.errno
    source.start(got.append)
    time.sleep(0.5)
    during = len(got)
    for fd in fillers:
        os.close(fd)
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    source.stop()
    ports = sorted(got[0].state.ports) if got else []
    print(json.dumps({"exhausted": exhausted, "during": during, "ports": ports}))
    """
)


def test_real_emfile_then_descriptors_freed_delivers_the_state(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    write(path, document())
    before = os.stat(path)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).parents[3],
    )
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["exhausted"] == errno.EMFILE
    assert result["during"] == 0, "the state was read although no descriptor was free"
    assert result["ports"] == sorted([P1, P2]), out.stderr
    assert "Too many open files" in out.stderr  # the failure was seen and logged
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
