"""``netagent-migrate-lb``: the parts that need no root (the interop test runs it for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from netagent.cmd import migrate_lb


def _proc(root: Path, pid: int, *argv: str) -> None:
    (root / str(pid)).mkdir()
    (root / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")


def test_old_agent_found_by_its_command_line(tmp_path: Path) -> None:
    _proc(tmp_path, 10, "/usr/bin/python3", "/usr/bin/neutron-linuxbridge-agent", "--config")
    _proc(tmp_path, 11, "/usr/bin/neutron-linuxbridge-agent")
    _proc(tmp_path, 12, "vi", "neutron-linuxbridge-agent")  # an editor on a file: not it
    _proc(tmp_path, 13, "/usr/bin/python3", "/usr/bin/neutron-openvswitch-agent")
    (tmp_path / "self").mkdir()
    assert migrate_lb.old_agent_pids(str(tmp_path)) == [10, 11]


def test_a_mode_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        migrate_lb.main([])
    assert info.value.code == 2
    assert "--dry-run" in capsys.readouterr().err
