"""A real Keystone (30.0.0 from PyPI) for the interop tier.

:class:`KeystoneServer` runs Keystone from its cached venv (:func:`tests.interop.venv.keystone`)
on a MariaDB database of its own (:mod:`tests.interop.services`, no vhost: Keystone sends no
notifications here):

1. writes ``keystone.conf`` (fernet tokens, key repositories in the work directory, bcrypt
   at its minimum cost so that tempest's many throw-away users are cheap);
2. ``keystone-manage db_sync``, ``fernet_setup``, ``credential_setup``, ``bootstrap`` (user
   ``admin`` with role ``admin`` on project ``admin``, the roles ``reader``, ``member``,
   ``manager``, ``service``, the identity service and its endpoints in ``RegionOne``);
3. starts ``keystone.wsgi.api:application`` under gunicorn on 127.0.0.1 and a free port, in
   a process group of its own (its ``gunicorn.conf.py`` empties ``sys.argv``: Keystone's
   oslo.config parses the command line);
4. creates project ``service`` and users for services (:meth:`add_service_user`) and
   catalog entries (:meth:`add_endpoint`) through the v3 API.

:meth:`KeystoneServer.stop` stops the process group and drops the database.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from tests.interop import services, venv
from tests.interop.api import ApiError, Credentials, KeystoneApi, Token
from tests.interop.neutron_server import free_port, signal_group, wait_until

REGION = "RegionOne"
ADMIN_USER = "admin"
ADMIN_PROJECT = "admin"
SERVICE_PROJECT = "service"
#: Local-only test accounts of a throw-away Keystone on 127.0.0.1; not secrets.
ADMIN_PASSWORD = "netagent-interop-admin"
SERVICE_PASSWORD = "netagent-interop-service"
LOG_FILES = ("keystone-manage", "keystone-api")


class KeystoneServer:
    """Keystone's API with its database, bootstrapped; see the module docstring."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.services = services.Services(with_vhost=False)
        self.venv: Path | None = None
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.timings: dict[str, float] = {}
        self._created_services = False
        self._admin_token: Token | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_url(self) -> str:
        return self.url + "/v3"

    @property
    def admin_credentials(self) -> Credentials:
        return Credentials(self.auth_url, ADMIN_USER, ADMIN_PASSWORD, ADMIN_PROJECT)

    def admin_token(self) -> Token:
        """The admin's token (one per server, renewed on demand)."""
        if self._admin_token is None:
            self._admin_token = Token(self.admin_credentials)
        return self._admin_token

    def api(self) -> KeystoneApi:
        return KeystoneApi(self.auth_url, self.admin_token())

    def start(self) -> None:
        """Build/reuse the venv, create the database, bootstrap, start and wait."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with services.phase(self.timings, "keystone-venv"):
            self.venv, built = venv.keystone()
            self.timings["keystone_venv_built"] = float(built)
        with services.phase(self.timings, "keystone-db"):
            self._created_services = True
            self.services.create()
        self.port = free_port()
        self._write_config()
        with services.phase(self.timings, "keystone-bootstrap"):
            self._manage("db_sync")
            self._manage("fernet_setup", "--keystone-user", "root", "--keystone-group", "root")
            self._manage("credential_setup", "--keystone-user", "root", "--keystone-group", "root")
            self._manage(
                "bootstrap",
                "--bootstrap-password",
                ADMIN_PASSWORD,
                "--bootstrap-username",
                ADMIN_USER,
                "--bootstrap-project-name",
                ADMIN_PROJECT,
                "--bootstrap-role-name",
                "admin",
                "--bootstrap-service-name",
                "keystone",
                "--bootstrap-region-id",
                REGION,
                *(f"--bootstrap-{iface}-url={self.auth_url}" for iface in _INTERFACES),
            )
        with services.phase(self.timings, "keystone-start"):
            self._spawn()
            wait_until("the Keystone API", self._answers, timeout=120)
            self.api().create(
                "project", name=SERVICE_PROJECT, domain_id="default", description="services"
            )

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"keystone exited with {self.process.returncode}:\n{self.log_tail('keystone-api')}"
            )
        self.admin_token().renew()
        return True

    def _bin(self, name: str) -> str:
        assert self.venv is not None
        return str(self.venv / "bin" / name)

    def _write_config(self) -> None:
        keys = self.workdir / "fernet-keys"
        (self.workdir / "keystone.conf").write_text(
            f"""[DEFAULT]
debug = false

[database]
connection = {self.services.db_url}

[token]
provider = fernet
expiration = 14400

[fernet_tokens]
key_repository = {keys}

[fernet_receipts]
key_repository = {keys}

[credential]
key_repository = {self.workdir / "credential-keys"}

[identity]
password_hash_algorithm = bcrypt
password_hash_rounds = 4
"""
        )
        (self.workdir / "gunicorn.conf.py").write_text(
            f"""import sys

# Keystone's oslo.config parses sys.argv[1:] as its own options.
sys.argv = sys.argv[:1]

wsgi_app = "keystone.wsgi.api:application"
bind = "127.0.0.1:{self.port}"
workers = 2
threads = 4
timeout = 300
graceful_timeout = 5
accesslog = "-"
"""
        )

    def _log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def _manage(self, *args: str) -> None:
        cmd = [self._bin("keystone-manage"), "--config-file", str(self.workdir / "keystone.conf")]
        with self._log("keystone-manage").open("ab") as out:
            proc = subprocess.run([*cmd, *args], stdout=out, stderr=subprocess.STDOUT, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(
                f"keystone-manage {args[0]} failed ({proc.returncode}):\n"
                + self.log_tail("keystone-manage")
            )

    def _spawn(self) -> None:
        env = {**os.environ, "OS_KEYSTONE_CONFIG_DIR": str(self.workdir)}
        with self._log("keystone-api").open("ab") as out:
            self.process = subprocess.Popen(
                [self._bin("gunicorn")],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
                start_new_session=True,
            )

    # -- accounts and catalog ---------------------------------------------------------

    def add_service_user(self, name: str) -> Credentials:
        """User ``name`` with roles ``admin`` and ``service`` on project ``service`` (what
        devstack gives neutron): keystonemiddleware validates tokens with it."""
        ks = self.api()
        user = ks.create("user", name=name, password=SERVICE_PASSWORD, domain_id="default")
        project = ks.find("project", SERVICE_PROJECT)
        for role in ("admin", "service"):
            role_id = ks.find("role", role)["id"]
            ks.request("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/{role_id}")
        return Credentials(self.auth_url, name, SERVICE_PASSWORD, SERVICE_PROJECT)

    def add_endpoint(self, name: str, service_type: str, url: str, region: str = REGION) -> None:
        """Public/internal/admin ``url`` of service ``name`` (of ``service_type``, created
        if missing) in ``region`` (created if missing).

        A second region is how a second server of the same type gets into the catalog:
        clients such as tempest take the first service of a type and filter its endpoints
        by region, so two services of one type would hide one of them.
        """
        ks = self.api()
        try:
            ks.request("GET", f"/regions/{region}")
        except ApiError as exc:
            if exc.status != 404:
                raise
            ks.create("region", id=region)
        found = ks.request("GET", f"/services?type={service_type}")["services"]
        service = next((s for s in found if s["name"] == name), None)
        if service is None:
            service = ks.create("service", name=name, type=service_type, enabled=True)
        for iface in _INTERFACES:
            ks.create(
                "endpoint",
                service_id=service["id"],
                interface=iface,
                url=url,
                region_id=region,
                enabled=True,
            )

    # -- tear-down and diagnostics ------------------------------------------------------

    def stop(self) -> None:
        """Stop the gunicorn process group started here, drop the database."""
        with services.phase(self.timings, "keystone-stop"):
            if self.process is not None:
                signal_group(self.process, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(10)
                signal_group(self.process, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(5)
            if self._created_services:
                self.services.drop()

    def log_tail(self, name: str, lines: int = 60) -> str:
        path = self._log(name)
        if not path.exists():
            return f"--- {path.name}: (none)\n"
        text = path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {path.name} (last {len(text)} lines)\n" + "\n".join(text) + "\n"

    def diagnostics(self) -> str:
        return "".join(self.log_tail(name) for name in LOG_FILES)


_INTERFACES = ("public", "internal", "admin")
