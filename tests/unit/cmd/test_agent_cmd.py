"""netagent-agent start-up errors: exit non-zero with a useful message, host untouched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_agent(tmp_path: Path, config: str) -> subprocess.CompletedProcess[str]:
    conf_file = tmp_path / "netagent.conf"
    conf_file.write_text(config)
    return subprocess.run(
        [sys.executable, "-m", "netagent.cmd.agent", "--config-file", str(conf_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_unknown_l2_driver_exits_2_and_lists_valid_names(tmp_path: Path) -> None:
    result = run_agent(
        tmp_path,
        f"[DEFAULT]\nstate_path = {tmp_path}/state\n[agent]\nl2_driver = bogus\n",
    )
    assert result.returncode == 2
    assert "netagent.l2 driver 'bogus'" in result.stderr
    assert "valid names: " in result.stderr and "noop" in result.stderr
    # nothing was created: not even the state directory
    assert not (tmp_path / "state").exists()


def test_unknown_firewall_driver_exits_2(tmp_path: Path) -> None:
    result = run_agent(tmp_path, "[agent]\nfirewall_driver = nope\n")
    assert result.returncode == 2
    assert "netagent.firewall driver 'nope'" in result.stderr


def test_invalid_source_choice_is_a_config_error(tmp_path: Path) -> None:
    result = run_agent(tmp_path, "[agent]\nsource = carrier-pigeon\n")
    assert result.returncode == 2
    assert "configuration error" in result.stderr
