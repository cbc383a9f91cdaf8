"""Per-run MariaDB database and RabbitMQ vhost for the interop tier.

Names carry the PID of the test process (``na_interop_<pid>_<hex>``,
``/na-interop-<pid>-<hex>``) so that :func:`remove_leftovers` drops only what a dead run
left behind and never what a parallel run is using. Only objects this module created are
dropped. The database user is created once (``CREATE USER IF NOT EXISTS``) and kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

DB_USER = "netagent_interop"
#: Local-only test account (MariaDB listens on 127.0.0.1 here); not a secret.
DB_PASSWORD = "netagent-interop"
DB_PREFIX = "na_interop_"
VHOST_PREFIX = "/na-interop-"
RABBIT_URL = "rabbit://guest:guest@127.0.0.1:5672/"


@contextlib.contextmanager
def phase(timings: dict[str, float], name: str) -> Iterator[None]:
    """Record in ``timings[name]`` the seconds the block took (a server's start phases)."""
    start = time.monotonic()
    try:
        yield
    finally:
        timings[name] = round(time.monotonic() - start, 2)


def _run(cmd: list[str], sql_input: str | None = None) -> str:
    proc = subprocess.run(cmd, input=sql_input, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _mariadb_client() -> str:
    for name in ("mariadb", "mysql"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("no mariadb/mysql client on PATH")


def sql(statements: str) -> str:
    """Run SQL as MariaDB's root: over the unix socket, else over TCP without password."""
    client = _mariadb_client()
    errors = []
    for extra in ([], ["-h", "127.0.0.1"]):
        try:
            return _run([client, "-u", "root", "-N", "-B", *extra], sql_input=statements)
        except RuntimeError as exc:
            errors.append(str(exc))
    raise RuntimeError("cannot log in to MariaDB as root: " + " | ".join(errors))


def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl -q`` with ``args``."""
    return _run(["rabbitmqctl", "-q", *args])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclasses.dataclass
class Services:
    """One database and (unless ``with_vhost`` is false) one vhost, named after this process."""

    tag: str = dataclasses.field(default_factory=lambda: f"{os.getpid()}_{uuid.uuid4().hex[:6]}")
    with_vhost: bool = True

    @property
    def database(self) -> str:
        return DB_PREFIX + self.tag

    @property
    def vhost(self) -> str:
        return VHOST_PREFIX + self.tag.replace("_", "-")

    @property
    def db_url(self) -> str:
        return f"mysql+pymysql://{DB_USER}:{DB_PASSWORD}@127.0.0.1/{self.database}?charset=utf8"

    @property
    def transport_url(self) -> str:
        # The vhost name is the URL path; '/' inside it is percent-encoded.
        return RABBIT_URL + self.vhost.replace("/", "%2F")

    def create(self) -> None:
        """Create the database (and the user if missing) and the vhost."""
        grants = "".join(
            f"CREATE USER IF NOT EXISTS '{DB_USER}'@'{h}' IDENTIFIED BY '{DB_PASSWORD}';"
            f"GRANT ALL PRIVILEGES ON `{self.database}`.* TO '{DB_USER}'@'{h}';"
            for h in ("localhost", "127.0.0.1")
        )
        sql(f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4;{grants}")
        if self.with_vhost:
            rabbitmqctl("add_vhost", self.vhost)
            rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")

    def drop(self) -> None:
        """Drop the database and delete the vhost (errors ignored: best effort)."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            sql(f"DROP DATABASE IF EXISTS `{self.database}`;")
        if self.with_vhost:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                rabbitmqctl("delete_vhost", self.vhost)

    def queue_consumers(self) -> dict[str, int]:
        """Queue name → consumer count in this vhost."""
        out = rabbitmqctl("list_queues", "-p", self.vhost, "name", "consumers")
        result: dict[str, int] = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                result[parts[0]] = int(parts[1])
        return result


_LEFTOVER = re.compile(r"^(?:na_interop_|/na-interop-)(\d+)[_-][0-9a-f]{6}$")


def _dead(name: str) -> bool:
    match = _LEFTOVER.match(name)
    return bool(match) and not _pid_alive(int(match.group(1)))


def leftovers() -> Iterator[tuple[str, str]]:
    """(kind, name) of databases and vhosts whose creating process is gone."""
    with contextlib.suppress(RuntimeError):
        for name in sql(
            f"SHOW DATABASES LIKE '{DB_PREFIX.replace('_', chr(92) + '_')}%';"
        ).split():
            if _dead(name):
                yield "database", name
    with contextlib.suppress(RuntimeError):
        for name in rabbitmqctl("list_vhosts", "name").split():
            if _dead(name):
                yield "vhost", name


def remove_leftovers() -> list[str]:
    """Drop databases and vhosts of crashed runs; returns what was removed."""
    removed = []
    for kind, name in list(leftovers()):
        with contextlib.suppress(RuntimeError):
            if kind == "database":
                sql(f"DROP DATABASE IF EXISTS `{name}`;")
            else:
                rabbitmqctl("delete_vhost", name)
            removed.append(f"{kind} {name}")
    return removed
