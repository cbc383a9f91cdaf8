"""The systemd units: they parse, and the agent's kernel work runs under their restrictions.

The agent's unit runs it as user ``netagent`` (etc/sysusers.d) with the three capabilities
the fullstack suites grant it as ``nobody`` (:data:`tests.fullstack.harness.AGENT_CAPS`);
what it writes outside its state directory is made writable by etc/tmpfiles.d. Those two
files are applied for real, with systemd-sysusers and systemd-tmpfiles, inside a mount
namespace of the test's own (its /run an empty tmpfs, its /etc/passwd and /etc/group the
ones sysusers wrote), so the host is never changed.

systemd is not PID 1 here, so the restrictions that can be reproduced without it are
applied with ``setpriv``: the unit's capability bounding set and no-new-privileges. The
namespace test is the one that matters: a unit option that gives the service a mount
namespace of its own would leave ``/run/netns/<name>`` an empty file for everybody else,
so the test creates the namespace under the restrictions and uses it from outside.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from netagent.agent import service
from tests.fullstack import harness
from tests.functional.conftest import TEST_NETNS_PREFIX, _delete_netns, unique_name

ETC = Path(__file__).resolve().parents[3] / "etc"
UNITS = ETC / "systemd"
SYSUSERS = ETC / "sysusers.d" / "netagent.conf"
TMPFILES = ETC / "tmpfiles.d" / "netagent.conf"
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


def _config_lines(path: Path) -> list[list[str]]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line.split() for line in lines if line and not line.startswith("#")]


def test_agent_unit_runs_as_netagent_with_what_the_unprivileged_run_grants() -> None:
    unit = _service_section("netagent-agent.service")
    granted = [f"CAP_{cap.upper()}" for cap in harness.AGENT_CAPS]
    assert unit["User"] == unit["Group"] == "netagent"
    assert unit["AmbientCapabilities"].split() == granted
    assert unit["CapabilityBoundingSet"].split() == granted
    assert (unit["StateDirectory"], unit["StateDirectoryMode"]) == ("netagent", "0700")
    assert unit["UMask"] == "0077"
    # the host's lock, shared with every legacy iptables user, not a private one
    assert "XTABLES_LOCKFILE" not in unit.get("Environment", "")
    assert [line[:3] for line in _config_lines(SYSUSERS)] == [["u", "netagent", "-"]]
    assert _config_lines(TMPFILES) == [
        ["d", "/run/netns", "0775", "root", "netagent", "-"],
        ["f", "/run/xtables.lock", "0660", "root", "netagent", "-"],
    ]


#: What the agent does outside its state directory, as the unit's user: create, enter and
#: delete a named namespace (routers, DHCP), and run legacy iptables, which takes
#: /run/xtables.lock. Prints what happened as JSON.
_OUTSIDE_STATE_PROGRAM = """
import json, subprocess, sys
from netagent.privileged import link_events, netns
result = {}
try:
    netns.create_netns(sys.argv[1])
    result["netns"] = sorted(e.name for e in link_events.dump_links(sys.argv[1]))
    netns.delete_netns(sys.argv[1])
except Exception as exc:
    result["netns"] = repr(exc)
proc = subprocess.run(["iptables-legacy", "-w", "5", "-S"], capture_output=True, text=True)
result["iptables"] = [proc.returncode, proc.stderr.strip()]
print(json.dumps(result))
"""


def _as_unit_user(tmp_path: Path, apply_tmpfiles: bool) -> dict[str, object]:
    """:data:`_OUTSIDE_STATE_PROGRAM` as the unit runs the agent, on a host prepared with
    the shipped sysusers.d (and tmpfiles.d) files, in a mount and network namespace of its
    own that dies with it."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow"):
        if Path("/etc", name).exists():
            shutil.copy2(Path("/etc", name), root / "etc" / name)
    subprocess.run(
        ["systemd-sysusers", f"--root={root}", str(SYSUSERS)], check=True, capture_output=True
    )
    entry = next(
        line.split(":")
        for line in (root / "etc" / "passwd").read_text().splitlines()
        if line.startswith("netagent:")
    )
    prepare = (
        'mount --bind "$1/etc/passwd" /etc/passwd && mount --bind "$1/etc/group" /etc/group'
        " && mount -t tmpfs -o mode=0755 tmpfs /run"
    )
    if apply_tmpfiles:
        prepare += ' && systemd-tmpfiles --create "$2"'
    agent = harness.unprivileged(
        (int(entry[2]), int(entry[3])),
        [sys.executable, "-c", _OUTSIDE_STATE_PROGRAM, "nasd-unit-user"],
    )
    proc = subprocess.run(
        ["unshare", "--mount", "--net", "--propagation", "private", "sh", "-c",
         f'{prepare} && shift 2 && exec "$@"', "sh", str(root), str(TMPFILES), *agent],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def test_unit_user_makes_namespaces_and_takes_the_xtables_lock(tmp_path: Path) -> None:
    if shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None:
        pytest.skip("no systemd-sysusers/systemd-tmpfiles")
    assert _as_unit_user(tmp_path, apply_tmpfiles=True) == {"netns": ["lo"], "iptables": [0, ""]}


def test_without_the_tmpfiles_the_unit_user_can_do_neither(tmp_path: Path) -> None:
    """The control: the capabilities alone do not pass file permissions."""
    if shutil.which("systemd-sysusers") is None:
        pytest.skip("no systemd-sysusers")
    result = _as_unit_user(tmp_path, apply_tmpfiles=False)
    assert "Permission denied" in str(result["netns"])
    code, error = result["iptables"]  # type: ignore[misc]
    assert code != 0 and "xtables.lock" in error, result
