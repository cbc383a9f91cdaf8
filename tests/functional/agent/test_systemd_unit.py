"""The systemd units: they parse, and the agent's kernel work runs under their restrictions.

systemd is not PID 1 here, so the restrictions that can be reproduced without it are
applied with ``setpriv``: the unit's capability bounding set and no-new-privileges. The
namespace test is the one that matters: a unit option that gives the service a mount
namespace of its own would leave ``/run/netns/<name>`` an empty file for everybody else,
so the test creates the namespace under the restrictions and uses it from outside.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from netagent.agent import service
from tests.functional.conftest import TEST_NETNS_PREFIX, _delete_netns, unique_name

UNITS = Path(__file__).resolve().parents[3] / "etc" / "systemd"
BIN = Path(sys.executable).parent
#: Unit options that give the service a mount namespace of its own (systemd.exec(5)).
MOUNT_NAMESPACE_OPTIONS = (
    "PrivateTmp",
    "PrivateDevices",
    "PrivateMounts",
    "ProtectSystem",
    "ProtectHome",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectProc",
    "ProcSubset",
    "ReadOnlyPaths",
    "ReadWritePaths",
    "InaccessiblePaths",
    "TemporaryFileSystem",
    "BindPaths",
    "BindReadOnlyPaths",
    "RootDirectory",
    "MountAPIVFS",
)


def _service_section(unit: str) -> dict[str, str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / unit)
    return dict(parser["Service"])


def _create_netns_program(name: str) -> str:
    return (
        "from netagent.privileged import netns\n"
        f"netns.create_netns({name!r})\n"
        # enter it the way the agent's kernel layer does and read it from inside
        "from netagent.privileged import link_events\n"
        f"print(sorted(e.name for e in link_events.dump_links({name!r})))\n"
    )


def _restricted(capabilities: str, no_new_privs: bool) -> list[str]:
    caps = ",".join(
        "+" + c.removeprefix("CAP_").lower() for c in capabilities.split() if c.startswith("CAP_")
    )
    cmd = ["setpriv", f"--bounding-set=-all,{caps}", "--inh-caps=-all"]
    if no_new_privs:
        cmd.append("--no-new-privs")
    return [*cmd, "--"]


@pytest.mark.parametrize("unit", ["netagent-agent.service", "netagent-cleanup.service"])
def test_unit_verifies(unit: str, tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("no systemd-analyze")
    # the installed path is /opt/netagent; verify checks that ExecStart exists
    text = (UNITS / unit).read_text().replace("/opt/netagent/bin/", f"{BIN}/")
    (tmp_path / unit).write_text(text)
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / unit)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_agent_unit_stops_in_time_and_has_no_mount_namespace() -> None:
    unit = _service_section("netagent-agent.service")
    assert unit["KillMode"] == "mixed"
    assert float(unit["TimeoutStopSec"]) > service.STOP_DEADLINE
    assert unit["CapabilityBoundingSet"].split() == [
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_SYS_ADMIN",
    ]
    assert "br_netfilter" in unit["ExecStartPre"]
    assert "--config-dir /etc/netagent/netagent.conf.d" in unit["ExecStart"]
    assert [o for o in MOUNT_NAMESPACE_OPTIONS if o in unit] == []


@pytest.fixture
def netns_name() -> Iterator[str]:
    """A unique namespace name; whatever a test made under it is removed afterwards."""
    name = unique_name(f"{TEST_NETNS_PREFIX}sd-", 30) + f"-{os.getpid()}"
    yield name
    _delete_netns(name)
    Path("/run/netns", name).unlink(missing_ok=True)


def _create_netns_restricted(
    name: str, capabilities: str, no_new_privs: bool
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *_restricted(capabilities, no_new_privs),
            sys.executable,
            "-c",
            _create_netns_program(name),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_namespace_created_under_the_unit_restrictions_is_usable_from_outside(
    netns_name: str,
) -> None:
    unit = _service_section("netagent-agent.service")
    proc = _create_netns_restricted(
        netns_name, unit["CapabilityBoundingSet"], unit["NoNewPrivileges"] == "yes"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['lo']"
    # from outside (another process, the host's mount namespace) it is a real namespace
    outside = subprocess.run(
        ["ip", "-n", netns_name, "-o", "link", "show", "lo"], capture_output=True, text=True
    )
    assert outside.returncode == 0, outside.stderr
    assert "state UNKNOWN" in outside.stdout or ",UP" in outside.stdout


def test_without_cap_sys_admin_the_namespace_is_refused(netns_name: str) -> None:
    """The control: the bounding set really restricts (so the test above can fail)."""
    proc = _create_netns_restricted(netns_name, "CAP_NET_ADMIN CAP_NET_RAW", True)
    assert proc.returncode != 0
    assert "Operation not permitted" in proc.stderr or "EPERM" in proc.stderr
