"""A real, unmodified neutron-server for the interop tier.

:class:`NeutronServer` runs Neutron (from the cached venv of :mod:`tests.interop.venv`) on a
MariaDB database and a RabbitMQ vhost of its own (:mod:`tests.interop.services`):

1. writes ``neutron.conf`` and ``ml2_conf.ini`` (``auth_strategy = keystone`` against the
   :class:`~tests.interop.keystone_server.KeystoneServer` it is given, with a ``neutron``
   service user there and the ``network`` endpoint in its catalog; ML2 with
   ``mechanism_drivers = netagent``, flat + vxlan, short ``agent_down_time``);
2. ``neutron-db-manage upgrade heads``;
3. starts the REST API (``neutron.wsgi.api:application`` under gunicorn on 127.0.0.1 and a
   free port), ``neutron-rpc-server`` and ``neutron-periodic-workers``, each in a process
   group of its own, PIDs recorded, logs in the work directory;
4. waits until the API answers and the RPC server consumes ``q-reports-plugin``.

:meth:`NeutronServer.stop` stops exactly those processes (SIGTERM to each recorded PID's
group, SIGKILL after a grace period), then drops the database and the vhost. Each phase is
timed (:attr:`NeutronServer.timings`).

By hand::

    sudo .venv/bin/python -m tests.interop.neutron_server   # starts, prints URL, Ctrl-C stops
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tests.interop import services, venv
from tests.interop.api import Credentials, NeutronApi

if TYPE_CHECKING:
    from tests.interop.keystone_server import KeystoneServer

T = TypeVar("T")

#: Seconds without a state report before the server declares an agent dead.
AGENT_DOWN_TIME = 10
#: What agents in this tier use as report_interval (at most half of AGENT_DOWN_TIME).
AGENT_REPORT_INTERVAL = 3
PHYSNET = "physnet1"
VNI_RANGE = "1001:2000"
LOG_FILES = ("api", "rpc", "periodic", "db-manage")
#: Logged by the VXLAN type driver for every tunnel_sync call (needs debug = true).
_TUNNEL_SYNC_LINE = "get_endpoint_by_host() called for host"
#: An oslo.log line at ERROR level: "<date> <time> <pid> ERROR <logger> ...".
_ERROR_LINE = re.compile(r"^\S+ \S+ \d+ ERROR ")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.3
) -> T:
    """Call ``probe`` until it returns something other than None/False; fail after timeout."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            value = probe()
            if value is not None and value is not False:
                return value
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}: {last!r}")
        time.sleep(interval)


class NeutronServer:
    """Neutron API + RPC server + periodic workers, with everything they need.

    :param workdir: config files, logs and Neutron's state_path go here.
    :param keystone: a started Keystone; Neutron's service user and endpoint go there.
    :param service_plugins: Neutron's ``service_plugins`` (e.g. ``router``).
    :param mechanism_drivers: ML2's ``mechanism_drivers``.
    :param name: its service user (and catalog service) in Keystone.
    :param region: the catalog region of its ``network`` endpoints; None: not in the
        catalog, so that it never takes tempest's or another client's requests. The
        session's server is in ``RegionOne``; a second server is either outside the
        catalog or in a region of its own (tempest's ``[network] region``).
    :param extra_config: appended to ``neutron.conf`` (e.g. a ``[quotas]`` section).
    """

    def __init__(
        self,
        workdir: Path,
        keystone: KeystoneServer,
        service_plugins: str = "",
        name: str = "neutron",
        mechanism_drivers: str = "netagent",
        region: str | None = None,
        extra_config: str = "",
    ) -> None:
        self.workdir = workdir
        self.keystone = keystone
        self.service_plugins = service_plugins
        self.mechanism_drivers = mechanism_drivers
        self.name = name
        self.region = region
        self.extra_config = extra_config
        self.service_user: Credentials | None = None
        self.services = services.Services()
        self.venv: Path | None = None
        self.port = 0
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.timings: dict[str, float] = {}
        self._created_services = False

    # -- set-up ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def transport_url(self) -> str:
        return self.services.transport_url

    def api(self) -> NeutronApi:
        """A client with the Keystone admin's token."""
        return NeutronApi(self.url, self.keystone.admin_token())

    def start(self) -> None:
        """Build/reuse the venv, create DB and vhost, migrate, start and wait."""
        with services.phase(self.timings, "venv"):
            self.venv, built = venv.ensure()
            self.timings["venv_built"] = float(built)
        with services.phase(self.timings, "db+vhost"):
            self._created_services = True
            self.services.create()
        with services.phase(self.timings, "config"):
            self.port = free_port()
            self.service_user = self.keystone.add_service_user(self.name)
            if self.region is not None:
                self.keystone.add_endpoint("neutron", "network", self.url, self.region)
            self._write_config()
        with services.phase(self.timings, "db-manage"):
            self._run_tool(
                "db-manage",
                [self._bin("neutron-db-manage"), *self._config_args(), "upgrade", "heads"],
            )
        with services.phase(self.timings, "start"):
            self._spawn("rpc", [self._bin("neutron-rpc-server"), *self._config_args()])
            self._spawn("periodic", [self._bin("neutron-periodic-workers"), *self._config_args()])
            self._spawn("api", [self._bin("gunicorn")], cwd=self.workdir, env=self._api_env())
            wait_until("the Neutron API", self._api_answers, timeout=180)
            wait_until(
                "neutron-rpc-server consuming q-reports-plugin",
                lambda: self.services.queue_consumers().get("q-reports-plugin", 0) > 0,
                timeout=60,
                interval=0.5,
            )

    def _bin(self, name: str) -> str:
        assert self.venv is not None
        return str(self.venv / "bin" / name)

    def _config_args(self) -> list[str]:
        return [
            "--config-file",
            str(self.workdir / "neutron.conf"),
            "--config-file",
            str(self.workdir / "ml2_conf.ini"),
        ]

    def _api_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "OS_NEUTRON_CONFIG_DIR": str(self.workdir),
            "OS_NEUTRON_CONFIG_FILES": "neutron.conf;ml2_conf.ini",
        }

    def _write_config(self) -> None:
        assert self.venv is not None
        assert self.service_user is not None
        user = self.service_user
        state = self.workdir / "neutron-state"
        (state / "lock").mkdir(parents=True, exist_ok=True)
        (self.workdir / "neutron.conf").write_text(
            f"""[DEFAULT]
core_plugin = ml2
service_plugins = {self.service_plugins}
auth_strategy = keystone
api_paste_config = {self.venv / "etc" / "neutron" / "api-paste.ini"}
transport_url = {self.services.transport_url}
host = interop-server
state_path = {state}
debug = true
agent_down_time = {AGENT_DOWN_TIME}
rpc_workers = 1
rpc_state_report_workers = 1
api_workers = 1
graceful_shutdown_timeout = 5
dhcp_agent_notification = true
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
allow_overlapping_ips = true
# legacy routers only: netagent's namespace L3 driver implements neither HA nor DVR
l3_ha = false
router_distributed = false

[agent]
report_interval = {AGENT_REPORT_INTERVAL}

[database]
connection = {self.services.db_url}

[keystone_authtoken]
www_authenticate_uri = {self.keystone.auth_url}
auth_url = {self.keystone.auth_url}
auth_type = password
username = {user.username}
password = {user.password}
project_name = {user.project_name}
user_domain_id = default
project_domain_id = default
region_name = RegionOne

[oslo_concurrency]
lock_path = {state / "lock"}
{self.extra_config}"""
        )
        (self.workdir / "ml2_conf.ini").write_text(
            f"""[ml2]
type_drivers = flat,vxlan
tenant_network_types = vxlan
mechanism_drivers = {self.mechanism_drivers}
extension_drivers = port_security

[ml2_type_flat]
flat_networks = {PHYSNET}

[ml2_type_vxlan]
vni_ranges = {VNI_RANGE}
"""
        )
        # gunicorn reads ./gunicorn.conf.py; no command-line arguments, because Neutron's
        # WSGI app parses sys.argv[1:] as its own options.
        (self.workdir / "gunicorn.conf.py").write_text(
            f"""wsgi_app = "neutron.wsgi.api:application"
bind = "127.0.0.1:{self.port}"
workers = 1
threads = 4
timeout = 300
graceful_timeout = 5
accesslog = "-"
"""
        )

    def _log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def _run_tool(self, name: str, cmd: list[str]) -> None:
        with self._log(name).open("ab") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed ({proc.returncode}):\n{self.log_tail(name)}")

    def _spawn(
        self, name: str, cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        with self._log(name).open("ab") as out:
            self.processes[name] = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )

    def _api_answers(self) -> bool:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
        self.api().get("/v2.0/networks")
        return True

    # -- tear-down ------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the processes started here (by PID/process group), drop DB and vhost."""
        with services.phase(self.timings, "stop"):
            for proc in self.processes.values():
                signal_group(proc, signal.SIGTERM)
            deadline = time.monotonic() + 10
            for proc in self.processes.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(max(0.1, deadline - time.monotonic()))
            for proc in self.processes.values():
                # Also workers the parent forked and left behind: same process group.
                signal_group(proc, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
            if self._created_services:
                self.services.drop()

    # -- diagnostics ----------------------------------------------------------------

    def log_tail(self, name: str, lines: int = 60) -> str:
        path = self._log(name)
        if not path.exists():
            return f"--- {path.name}: (none)\n"
        text = path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {path.name} (last {len(text)} lines)\n" + "\n".join(text) + "\n"

    def diagnostics(self) -> str:
        return "".join(self.log_tail(name) for name in LOG_FILES)

    def errors(self) -> list[str]:
        """ERROR/Traceback lines of the server logs (the tier fails on none of them itself)."""
        found = []
        for name in ("api", "rpc", "periodic"):
            path = self._log(name)
            if path.exists():
                found += [
                    f"{name}: {line}"
                    for line in path.read_text(errors="replace").splitlines()
                    if _ERROR_LINE.match(line) or line.startswith("Traceback")
                ]
        return found

    def tunnel_syncs(self) -> int:
        """tunnel_sync calls the RPC server handled so far (one debug line each)."""
        path = self._log("rpc")
        if not path.exists():
            return 0
        return path.read_text(errors="replace").count(_TUNNEL_SYNC_LINE)

    def timing_line(self) -> str:
        timings = {**self.keystone.timings, **self.timings}
        return "interop timings: " + ", ".join(f"{k} {v}s" for k, v in timings.items())


def signal_group(proc: subprocess.Popen[Any], sig: signal.Signals) -> None:
    """Signal the process group led by ``proc`` (started with start_new_session)."""
    if proc.poll() is not None and sig != signal.SIGKILL:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


@contextlib.contextmanager
def running(workdir: Path) -> Iterator[NeutronServer]:
    """Keystone and Neutron started in ``workdir`` (holding the Neutron venv), stopped after;
    their logs' tails printed to stderr if starting fails."""
    from tests.interop.keystone_server import REGION, KeystoneServer  # noqa: PLC0415

    keystone = KeystoneServer(workdir / "keystone")
    server = NeutronServer(workdir / "neutron", keystone, region=REGION)
    (workdir / "neutron").mkdir(parents=True, exist_ok=True)
    with venv.in_use(), contextlib.ExitStack() as stack:
        stack.callback(keystone.stop)
        stack.callback(server.stop)
        try:
            keystone.start()
            server.start()
        except Exception:
            print(keystone.diagnostics() + server.diagnostics(), file=sys.stderr)
            raise
        yield server


@contextlib.contextmanager
def second_server(
    session: NeutronServer,
    workdir: Path,
    name: str,
    service_plugins: str,
    region: str | None = None,
    extra_config: str = "",
    mechanism_drivers: str = "netagent",
    broker: services.Services | None = None,
) -> Iterator[NeutronServer]:
    """Another server on ``session``'s Keystone (service user ``name``, ``broker``'s
    database and vhost if set), for one module
    whose configuration the session's server must not have; taken while ``session`` runs
    so that the shared virtualenv stays held. Its log tails are printed if starting fails.
    """
    server = NeutronServer(
        workdir,
        session.keystone,
        service_plugins=service_plugins,
        name=name,
        region=region,
        extra_config=extra_config,
        mechanism_drivers=mechanism_drivers,
    )
    if broker is not None:  # its own database and vhost on another broker
        server.services = broker
    try:
        server.start()
    except Exception:
        print(server.diagnostics())
        server.stop()
        raise
    try:
        yield server
    finally:
        server.stop()


def main() -> int:
    """Start Keystone and Neutron, print their URLs, stop on Ctrl-C."""
    import tempfile  # noqa: PLC0415

    workdir = Path(tempfile.mkdtemp(prefix="netagent-interop-"))
    try:
        with running(workdir) as server:
            ks = server.keystone
            print(server.timing_line())
            print(
                f"API {server.url}\nKeystone {ks.auth_url} (user {ks.admin_credentials.username},"
                f" password {ks.admin_credentials.password}, project"
                f" {ks.admin_credentials.project_name})\n"
                f"transport_url {server.transport_url}\nlogs {workdir}"
            )
            stop_signals = {signal.SIGINT, signal.SIGTERM}
            signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
            signal.sigwait(stop_signals)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
