"""The agent lock against a real holder process, and netagent-cleanup's use of it."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from netagent.agent import lock as lock_mod
from netagent.agent import status
from netagent.agent.lock import AgentLock, AgentLockHeldError
from netagent.cmd import agent as agent_cmd
from netagent.cmd import cleanup as cleanup_cmd
from netagent.drivers import base

HOLDER = (
    "import sys\n"
    "from netagent.agent.lock import AgentLock\n"
    "AgentLock(sys.argv[1]).acquire()\n"
    "print('locked', flush=True)\n"
    "sys.stdin.read()\n"
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock of ``tmp_path`` until its stdin closes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def _config(tmp_path: Path) -> str:
    conf = tmp_path / "netagent.conf"
    conf.write_text(f"[DEFAULT]\nstate_path = {tmp_path}\n")
    return str(conf)


def test_second_lock_names_the_holder_pid(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    with pytest.raises(AgentLockHeldError, match=f"PID {holder.pid}") as info:
        AgentLock(str(tmp_path)).acquire()
    assert info.value.holder_pid == holder.pid
    assert lock_mod.holder(str(tmp_path)) == holder.pid


def test_lock_is_free_once_the_holder_dies(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    # kill -9 leaves the file behind; the kernel drops the flock with the process.
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(10)
    assert lock_mod.holder(str(tmp_path)) is None
    with AgentLock(str(tmp_path)) as held:
        assert Path(held.path).read_text() == f"{os.getpid()}\n"


def test_garbage_in_the_lock_file_is_not_trusted(tmp_path: Path) -> None:
    path = lock_mod.lock_path(str(tmp_path))
    with open(path, "w") as held:
        held.write("1; rm -rf /\n")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(AgentLockHeldError, match="PID not yet written") as info:
            AgentLock(str(tmp_path)).acquire()
        assert info.value.holder_pid is None
        assert lock_mod.holder(str(tmp_path)) == 0


def test_cleanup_refuses_while_another_process_holds_the_lock(
    tmp_path: Path, holder: subprocess.Popen[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # No status socket: the old probe would have decided "no agent" here.
    assert not os.path.exists(status.socket_path(str(tmp_path)))
    assert cleanup_cmd.main(["--config-file", _config(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "agent is running" in err and f"PID {holder.pid}" in err
    assert cleanup_cmd.main(["--config-file", _config(tmp_path), "--dry-run"]) == 0
    assert f"an agent is running on this state_path (PID {holder.pid}" in capsys.readouterr().err


def test_cleanup_holds_the_lock_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int | None] = []

    class Probe(base.L2Driver):
        def cleanup(self, dry_run: bool = False) -> list[str]:
            code = "import sys; from netagent.agent import lock; print(lock.holder(sys.argv[1]))"
            out = subprocess.run(
                [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True
            ).stdout
            seen.append(int(out) if out.strip().isdigit() else None)
            return []

    monkeypatch.setattr(
        agent_cmd,
        "load_drivers",
        lambda conf: (Probe(conf), base.FirewallDriver(conf), base.L3Driver(conf)),
    )
    assert cleanup_cmd.main(["--config-file", _config(tmp_path)]) == 0
    assert seen == [os.getpid()]
    assert lock_mod.holder(str(tmp_path)) is None


class _Fake(base.L2Driver):
    lines: list[str] = []

    def cleanup(self, dry_run: bool = False) -> list[str]:
        return list(self.lines)


def test_dry_run_lines_carry_one_noop_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _Fake.lines = ["NOOP: delete bridge brq0123456789a", "keep bridge brqb: it has foreign"]
    monkeypatch.setattr(
        agent_cmd,
        "load_drivers",
        lambda conf: (_Fake(conf), base.FirewallDriver(conf), base.L3Driver(conf)),
    )
    assert cleanup_cmd.main(["--config-file", _config(tmp_path), "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "NOOP: _Fake: delete bridge brq0123456789a",
        "NOOP: _Fake: keep bridge brqb: it has foreign",
    ]


def test_firewall_cleanup_is_skipped_when_the_l2_cleanup_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []

    class BrokenL2(base.L2Driver):
        def cleanup(self, dry_run: bool = False) -> list[str]:
            calls.append("l2")
            raise RuntimeError("tap stuck")

    class Firewall(base.FirewallDriver):
        def cleanup(self, dry_run: bool = False) -> list[str]:
            calls.append("firewall")
            return []

    class L3(base.L3Driver):
        def cleanup(self, dry_run: bool = False) -> list[str]:
            calls.append("l3")
            return []

    monkeypatch.setattr(
        agent_cmd, "load_drivers", lambda conf: (BrokenL2(conf), Firewall(conf), L3(conf))
    )
    assert cleanup_cmd.main(["--config-file", _config(tmp_path)]) == 1
    assert calls == ["l2", "l3"]
    assert "Firewall: skipped" in capsys.readouterr().err


#: the unprivileged agent's user in this test (``nobody``)
AGENT_UID = 65534


@pytest.fixture
def agent_state_path() -> Iterator[Path]:
    """A state_path owned by :data:`AGENT_UID`, in a directory that user can reach."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the lock file is root's")
    top = Path(tempfile.mkdtemp(prefix="netagent-lock-"))
    try:
        top.chmod(0o755)
        state = top / "state"
        state.mkdir(mode=0o700)
        os.chown(state, AGENT_UID, AGENT_UID)
        yield state
    finally:
        shutil.rmtree(top)


def test_lock_root_creates_stays_usable_by_the_unprivileged_agent(
    agent_state_path: Path,
) -> None:
    with AgentLock(str(agent_state_path)):  # netagent-cleanup, as root
        pass
    made = (agent_state_path / lock_mod.LOCK_NAME).stat()
    assert (made.st_uid, made.st_gid, made.st_mode & 0o777) == (AGENT_UID, AGENT_UID, 0o600)
    agent = subprocess.run(
        [
            "setpriv", f"--reuid={AGENT_UID}", f"--regid={AGENT_UID}", "--clear-groups",
            sys.executable, "-c", HOLDER, str(agent_state_path),
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip
    assert agent.returncode == 0, agent.stderr
    assert agent.stdout == "locked\n"
