"""``netagent-status explain`` end to end over a real status socket (desired state only)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netagent.agent import status
from netagent.cmd import status as status_cmd
from tests.unit.explain import topology as t


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[str]:
    doc: dict[str, Any] = {
        "host": "host-a",
        "explain": t.document(),
        "drivers": {"firewall": {"backend": "nft", "mark": 0x1000000, "excluded": {}}},
    }
    server = status.StatusServer(status.socket_path(str(tmp_path)), lambda: doc)
    server.start()
    try:
        yield str(tmp_path)
    finally:
        server.stop()


def _run(state_path: str, *args: str) -> int:
    return status_cmd.main(["explain", "--state-path", state_path, "--no-kernel", *args])


def test_pass_exits_0_and_prints_the_deciding_rule(
    agent: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run(agent, "--from", "192.0.2.30", "--to", t.VM1, "--proto", "tcp", "--port", "22")
    out = capsys.readouterr().out
    assert code == 0
    assert "verdict: PASS" in out
    assert f"rule {t.R_SSH} of security group {t.SSH}" in out


def test_drop_exits_1_and_json_says_where(agent: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = _run(
        agent, "--from", t.VM1[:8], "--to", t.VM3, "--proto", "udp", "--port", "53", "--json"
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert doc["verdict"] == "drop"
    assert doc["where"].startswith("ingress security group")
    assert doc["checks"][2]["reason"].startswith("default deny")


@pytest.mark.parametrize(
    "args",
    [
        ["--from", "192.0.2.99", "--to", t.VM3, "--proto", "tcp", "--port", "1"],
        ["--from", t.VM1, "--to", t.VM3, "--proto", "tcp"],
        ["--from", t.VM1, "--to", t.VM3, "--proto", "bogus"],
    ],
)
def test_bad_questions_exit_2(
    agent: str, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(agent, *args) == 2
    assert "netagent-status explain:" in capsys.readouterr().err


def test_no_agent_exits_3(tmp_path: Path) -> None:
    assert _run(str(tmp_path), "--from", t.VM1, "--to", t.VM3, "--proto", "icmp") == 3
