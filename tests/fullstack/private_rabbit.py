"""A private RabbitMQ node for outage tests: stopped and started at will.

The machine's shared broker (127.0.0.1:5672) serves other test runs and must never be
stopped; an outage test runs its own node instead. The node runs Debian's
``/usr/lib/rabbitmq/bin/rabbitmq-server`` (not the ``/usr/sbin`` wrapper, which switches
to the ``rabbitmq`` user and uses the system's directories) in the foreground as a child
process, with everything private: node name ``natest-<pid>-<hex>@localhost``, AMQP and
Erlang distribution ports picked free on 127.0.0.1, its own config, plugin list, cookie
(``HOME``), database and log directories. Only epmd (127.0.0.1:4369) is shared, which is
what epmd is for. About 5 s to start here.

It is stopped by the PIDs it was started with (SIGTERM: a clean broker shutdown; SIGKILL
after a grace period). The PIDs are also written under :data:`PID_DIR`, so that
:func:`remove_leftovers` can stop a node whose test process died without cleaning up;
it only signals a PID whose command line still names that node.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import kombu

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
PID_DIR = Path("/tmp/netagent-fullstack-rabbit")
NODE_PREFIX = "natest-"


def unavailable() -> str | None:
    """Why no private node can be started here, or ``None``."""
    if not SERVER.exists():
        return f"{SERVER} not found (Debian's rabbitmq-server package)"
    if shutil.which("erl") is None:
        return "erl not found"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def amqp_answers(port: int, timeout: float = 2.0) -> bool:
    """Whether an AMQP 0-9-1 broker answers the protocol header on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            return sock.recv(1)[:1] == b"\x01"  # a Connection.Start method frame
    except OSError:
        return False


class PrivateRabbit:
    """One private node; its data survives :meth:`stop`/:meth:`start` (like a restart).

    :param workdir: a directory of the test's own; the node lives in ``workdir/rabbit``.
    """

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "rabbit"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.node = f"{NODE_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")

    @property
    def url(self) -> str:
        return f"rabbit://guest:guest@127.0.0.1:{self.port}/"

    @property
    def log_file(self) -> Path:
        return self.dir / "server.out"

    def _env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/sbin:/usr/bin:/bin",
            "HOME": str(self.dir),  # the Erlang cookie is made there
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "beam.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def start(self, timeout: float = 40.0) -> PrivateRabbit:
        """Start the node and wait until it answers AMQP.

        :raises RuntimeError: it exited or did not answer in time (with its output).
        """
        assert self.process is None or self.process.poll() is not None
        out = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [str(SERVER)],
            env=self._env(),
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self._record_pids()
        deadline = time.monotonic() + timeout
        while not amqp_answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"private RabbitMQ {self.node} did not start:\n{self.tail()}")
            time.sleep(0.25)
        self._record_pids()  # the Erlang VM's own PID is known now
        return self

    def _beam_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((self.dir / "beam.pid").read_text().strip())
        return None

    def _pids(self) -> list[int]:
        pids = [self.process.pid] if self.process is not None else []
        beam = self._beam_pid()
        return pids + ([beam] if beam else [])

    def _record_pids(self) -> None:
        PID_DIR.mkdir(exist_ok=True)
        (PID_DIR / self.node).write_text(" ".join(str(p) for p in self._pids()))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the node (SIGTERM to the PIDs it was started with, SIGKILL after
        ``timeout``). Idempotent; the data directory stays for the next :meth:`start`."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Kill the node at once (SIGKILL: a crash, no clean shutdown); :meth:`start`
        brings it back on the same port."""
        self._signal(signal.SIGKILL, 0.0)

    def _signal(self, sig: signal.Signals, timeout: float) -> None:
        proc = self.process
        if proc is None:
            return
        pids = [p for p in self._pids() if _names_node(p, self.node)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while any(_names_node(p, self.node) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in pids:
            if _names_node(pid, self.node):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        (self.dir / "beam.pid").unlink(missing_ok=True)

    def close(self) -> None:
        """Stop the node and remove its directory and PID record."""
        try:
            self.stop()
        finally:
            (PID_DIR / self.node).unlink(missing_ok=True)
            shutil.rmtree(self.dir, ignore_errors=True)

    def consumers(self, queue: str) -> int:
        """The consumers of ``queue`` (a passive declare: fails if the queue is missing)."""
        url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        with kombu.Connection(url, connect_timeout=5) as conn:
            declared = conn.default_channel.queue_declare(queue, passive=True)
        count: int = declared.consumer_count
        return count

    def tail(self, lines: int = 30) -> str:
        text = ""
        if self.log_file.exists():
            text = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        return text


def _names_node(pid: int, node: str) -> bool:
    """Whether ``pid`` is alive and its command line or environment names ``node``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    name = node.encode()
    return name in cmdline or name in environ


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers() -> list[str]:
    """Stop nodes whose creating test process is gone; returns their names."""
    removed: list[str] = []
    with contextlib.suppress(FileNotFoundError):
        for record in sorted(PID_DIR.iterdir()):
            node = record.name
            try:
                creator = int(node.removeprefix(NODE_PREFIX).split("-", 1)[0])
            except ValueError:
                continue
            if not node.startswith(NODE_PREFIX) or _pid_alive(creator):
                continue
            for text in record.read_text().split():
                with contextlib.suppress(ValueError, ProcessLookupError):
                    if _names_node(int(text), node):
                        os.kill(int(text), signal.SIGKILL)
            record.unlink(missing_ok=True)
            removed.append(node)
    return removed
