"""A private Open vSwitch (ovsdb-server + ovs-vswitchd) for tests, per testing.md.

Both daemons run from a private directory (database, sockets, pidfiles, logs), optionally
inside a network namespace (``ip netns exec``: ovs-vswitchd then creates its internal
ports and takes its tunnel routes there). They are stopped by the PIDs in their pidfiles
and the directory is removed; nothing else on the machine is touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
#: Prefix of private OVS directories; the creating PID follows it (leftover detection).
DIR_PREFIX = "naovs-"


def available() -> bool:
    return SCHEMA.exists() and shutil.which("ovs-vswitchd") is not None


class PrivateOvs:
    """One ovsdb-server and one ovs-vswitchd from ``directory``.

    :param netns: namespace to run both daemons in (``None``: the caller's).
    :param group: group (gid) the daemons run with, so its members may use the sockets
        (OVS makes them mode 0770): how a host lets a non-root agent at its switch.
    """

    def __init__(
        self, netns: str | None = None, directory: Path | None = None, group: int | None = None
    ) -> None:
        self.netns = netns
        self.group = group
        self.dir = directory or Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-"))
        if group is not None:
            os.chown(self.dir, 0, group)
            self.dir.chmod(0o750)
        self.env = dict(os.environ, OVS_RUNDIR=str(self.dir), OVS_LOGDIR=str(self.dir))
        self.env["OVS_DBDIR"] = str(self.dir)

    @property
    def db_sock(self) -> Path:
        return self.dir / "db.sock"

    @property
    def connection(self) -> str:
        return f"unix:{self.db_sock}"

    def _prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    def _run(self, *cmd: str, timeout: float = 30) -> str:
        proc = subprocess.run(
            [*self._prefix(), *cmd],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            umask=-1 if self.group is None else 0o007,  # the group may connect: rw
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def start(self) -> None:
        if not (self.dir / "conf.db").exists():
            self._run("ovsdb-tool", "create", str(self.dir / "conf.db"), str(SCHEMA))
        self.start_ovsdb()
        self.vsctl("--no-wait", "init")
        self.start_vswitchd()

    def _daemon(self) -> list[str]:
        if self.group is None:
            return []
        return ["setpriv", f"--regid={self.group}", "--clear-groups"]

    def start_ovsdb(self) -> None:
        self._run(
            *self._daemon(),
            "ovsdb-server",
            str(self.dir / "conf.db"),
            f"--remote=punix:{self.db_sock}",
            f"--pidfile={self.dir / 'ovsdb.pid'}",
            f"--unixctl={self.dir / 'ovsdb.ctl'}",
            "--detach",
            f"--log-file={self.dir / 'ovsdb.log'}",
        )

    def start_vswitchd(self) -> None:
        self._run(
            *self._daemon(),
            "ovs-vswitchd",
            self.connection,
            f"--pidfile={self.dir / 'vswitchd.pid'}",
            f"--unixctl={self.dir / 'vswitchd.ctl'}",
            "--detach",
            f"--log-file={self.dir / 'vswitchd.log'}",
        )

    def pid(self, daemon: str) -> int | None:
        try:
            return int((self.dir / f"{daemon}.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def stop_daemon(self, daemon: str, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop ``ovsdb`` or ``vswitchd`` by its pidfile's PID and wait until it is gone."""
        pid = self.pid(daemon)
        if pid is None or not _is_ovs(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            (self.dir / f"{daemon}.pid").unlink()

    def restart_vswitchd(self, sig: signal.Signals = signal.SIGKILL) -> None:
        self.stop_daemon("vswitchd", sig)
        self.start_vswitchd()

    def restart_ovsdb(self) -> None:
        self.stop_daemon("ovsdb")
        self.start_ovsdb()

    def stop(self) -> None:
        """Stop both daemons (by PID) and remove the directory."""
        self.stop_daemon("vswitchd")
        self.stop_daemon("ovsdb")
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- clients ------------------------------------------------------------------------

    def vsctl(self, *args: str) -> str:
        return self._run("ovs-vsctl", f"--db={self.connection}", "--timeout=20", *args)

    def ofctl(self, *args: str) -> str:
        return self._run("ovs-ofctl", *args)

    def appctl(self, *args: str) -> str:
        return self._run("ovs-appctl", "-t", str(self.dir / "vswitchd.ctl"), *args)

    def mgmt(self, bridge: str) -> str:
        """The OpenFlow target of ``bridge`` for ovs-ofctl."""
        return f"unix:{self.dir / bridge}.mgmt"

    def flows(self, bridge: str, cookie_mask: str | None = None) -> list[str]:
        """``dump-flows --no-stats`` lines, sorted (optionally only one cookie range)."""
        args = ["--no-stats", "--no-names", "dump-flows", self.mgmt(bridge)]
        if cookie_mask:
            args.append(f"cookie={cookie_mask}")
        out = self.ofctl(*args)
        return sorted(line.strip() for line in out.splitlines() if "actions=" in line)


def _is_ovs(pid: int) -> bool:
    """The PID is still an OVS daemon (not a reused PID of something else)."""
    try:
        return b"ovs" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def leftover_dirs() -> list[Path]:
    """Private OVS directories of test runs whose process is gone."""
    found = []
    for path in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        owner = path.name[len(DIR_PREFIX) :].split("-", 1)[0]
        if owner.isdigit():
            try:
                os.kill(int(owner), 0)
            except ProcessLookupError:
                found.append(path)
            except PermissionError:
                pass
    return found


def remove_leftover(path: Path) -> None:
    """Stop a crashed run's daemons (by their pidfiles) and remove its directory."""
    leftover = PrivateOvs(directory=path)
    leftover.stop()
