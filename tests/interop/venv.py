"""The cached virtualenvs: an unmodified Neutron from PyPI with netagent's driver, and
Keystone and tempest (:func:`ensure_tool`).

``<cache>/venv-<version>`` (cache: ``$NETAGENT_INTEROP_CACHE``, default
``/var/cache/netagent-interop``) gets ``neutron==<version>``, gunicorn (the WSGI server of
the REST API) and PyMySQL. It counts as complete only when its marker file holds exactly
the requirement list below; anything else is deleted and rebuilt. netagent itself is
installed editable from this checkout without dependencies (neutron-server and
neutron-dhcp-agent load ``netagent.neutron_plugins``, which needs only netagent's own
modules and what Neutron brings: pyroute2, oslo.*), and reinstalled when the venv points at another
checkout, so the entry point in setup.cfg is what the server really loads.

Keystone (``<cache>/venv-keystone-<version>``) and tempest (``<cache>/venv-tempest-<version>``)
get only what PyPI has, nothing from a checkout, so they need no :func:`in_use` lock: a run
puts its own checkout's tempest plugin on ``PYTHONPATH`` instead (:mod:`tests.interop.tempest`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NEUTRON_VERSION = os.environ.get("NETAGENT_INTEROP_NEUTRON", "29.0.0")
KEYSTONE_VERSION = "30.0.0"
TEMPEST_VERSION = "47.0.0"
#: The last Neutron with the Linux bridge agent (2024.2), for the takeover tests.
LB_AGENT_NEUTRON_VERSION = "25.2.3"
NEUTRON_TEMPEST_PLUGIN_VERSION = "3.3.0"
CACHE = Path(os.environ.get("NETAGENT_INTEROP_CACHE", "/var/cache/netagent-interop"))
MARKER = ".netagent-interop-complete"
PIP_QUIET = ["-q", "--disable-pip-version-check", "--no-input"]

_CHECK_NETAGENT = """
import importlib.metadata as md, json, netagent
eps = [
    e.value
    for group in ("neutron.ml2.mechanism_drivers", "neutron.interface_drivers")
    for e in md.entry_points(group=group, name="netagent")
]
print(json.dumps({"path": netagent.__path__[0], "eps": eps}))
"""


def requirements(version: str) -> list[str]:
    """What goes into the venv besides netagent."""
    return [f"neutron=={version}", "gunicorn", "PyMySQL"]


def keystone_requirements() -> list[str]:
    return [f"keystone=={KEYSTONE_VERSION}", "gunicorn", "PyMySQL"]


def lb_agent_requirements() -> list[str]:
    # pyroute2 and eventlet as 2024.2's upper-constraints pin them: Neutron 25's
    # privileged ip_lib imports pyroute2.nslink.nslink, gone in pyroute2 0.8
    return [f"neutron=={LB_AGENT_NEUTRON_VERSION}", "pyroute2==0.7.12", "eventlet==0.36.1"]


def tempest_requirements() -> list[str]:
    # setuptools: the run builds the plugin distribution into a directory of its own
    return [
        f"tempest=={TEMPEST_VERSION}",
        f"neutron-tempest-plugin=={NEUTRON_TEMPEST_PLUGIN_VERSION}",
        "setuptools",
    ]


def _run(cmd: list[str], timeout: float = 900) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}"
            f"\n{proc.stderr[-3000:]}"
        )
    return proc.stdout


def _complete(venv: Path, reqs: list[str]) -> bool:
    try:
        return bool(json.loads((venv / MARKER).read_text()) == reqs)
    except (OSError, ValueError):
        return False


def _netagent_ok(venv: Path) -> bool:
    try:
        # -I: not from the current directory (the checkout, whose egg-info would make a
        # venv without netagent look fine), as neutron-server sees it
        out = json.loads(_run([str(venv / "bin" / "python"), "-I", "-c", _CHECK_NETAGENT]))
    except (RuntimeError, ValueError):
        return False
    expected = [
        "netagent.neutron_plugins.ml2:NetagentMechanismDriver",
        "netagent.neutron_plugins.interface:NetagentInterfaceDriver",
    ]
    return bool(Path(out["path"]) == REPO / "netagent" and out["eps"] == expected)


def _build(venv: Path, reqs: list[str]) -> bool:
    """(Re)build ``venv`` with ``reqs`` unless complete; whether it built. Call locked."""
    if _complete(venv, reqs):
        return False
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "pip"), "install", *PIP_QUIET]
    _run([*pip, "--upgrade", "pip", "setuptools"])
    _run([*pip, *reqs])
    (venv / MARKER).write_text(json.dumps(reqs))
    return True


def ensure_tool(name: str, reqs: list[str]) -> tuple[Path, bool]:
    """The venv ``<cache>/venv-<name>`` with exactly ``reqs`` from PyPI, built if missing
    or incomplete (serialised with a lock file, like :func:`ensure`).

    :returns: (venv path, whether it was built).
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    venv = CACHE / f"venv-{name}"
    with (CACHE / f"venv-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return venv, _build(venv, reqs)


@contextlib.contextmanager
def in_use(version: str = NEUTRON_VERSION) -> Iterator[None]:
    """Hold the venv for this run: netagent is installed in it editable from *this*
    checkout, so a parallel run from another checkout (which reinstalls it from its own)
    waits until this one is done instead of pulling the mechanism driver away from a
    starting neutron-server."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"venv-{version}.in-use.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure(version: str = NEUTRON_VERSION) -> tuple[Path, bool]:
    """The venv for Neutron ``version``, built if missing or incomplete.

    Serialised with a lock file so that parallel runs build it once.

    :returns: (venv path, whether anything was built or installed).
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    venv = CACHE / f"venv-{version}"
    reqs = requirements(version)
    with (CACHE / f"venv-{version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = _build(venv, reqs)
        if not _netagent_ok(venv):
            pip = [str(venv / "bin" / "pip"), "install", *PIP_QUIET]
            _run([*pip, "--no-deps", "--no-build-isolation", "-e", str(REPO)])
            if not _netagent_ok(venv):
                raise RuntimeError(f"netagent's driver entry points missing in {venv}")
            built = True
    return venv, built


def keystone() -> tuple[Path, bool]:
    """The Keystone venv (keystone, gunicorn, PyMySQL)."""
    return ensure_tool(f"keystone-{KEYSTONE_VERSION}", keystone_requirements())


def tempest() -> tuple[Path, bool]:
    """The tempest venv (tempest, neutron-tempest-plugin)."""
    return ensure_tool(f"tempest-{TEMPEST_VERSION}", tempest_requirements())


def lb_server() -> tuple[Path, bool]:
    """The Linux bridge venv made able to run neutron-server with netagent's driver
    (:data:`LB_SERVER_PINS`, netagent installed editable from this checkout, without
    dependencies, as in :func:`ensure`). Hold :func:`in_use` with
    ``LB_SERVER_IN_USE`` while the server runs."""
    path, built = lb_agent()
    name = f"neutron-lb-{LB_AGENT_NEUTRON_VERSION}"
    with (CACHE / f"venv-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pip = [str(path / "bin" / "pip"), "install", *PIP_QUIET]
        python = str(path / "bin" / "python")
        if _run([python, "-I", "-c", _CHECK_SERVER_PINS]).split() != LB_SERVER_PINS:
            _run([*pip, *LB_SERVER_PINS])
            built = True
        if not _netagent_ok(path):
            _run([*pip, "--no-deps", "--no-build-isolation", "-e", str(REPO)])
            if not _netagent_ok(path):
                raise RuntimeError(f"netagent's driver entry points missing in {path}")
            built = True
    return path, built


#: What neutron-server 25.2.3 needs on top of :func:`lb_agent_requirements`: a MariaDB
#: driver and, as 2024.2's upper constraints pin them, neutron-lib (5.x lacks
#: ``ACCESS_READONLY``) and openstacksdk (newer ones subscript ``queue.Queue``, which
#: eventlet's monkey-patched Queue refuses). The agent code runs with these as well.
LB_SERVER_PINS = ["PyMySQL==1.2.4", "neutron-lib==3.15.0", "openstacksdk==4.0.1"]
_CHECK_SERVER_PINS = """
import importlib.metadata as md
for name in ("PyMySQL", "neutron-lib", "openstacksdk"):
    try:
        print(f"{name}=={md.version(name)}")
    except md.PackageNotFoundError:
        print("-")
"""

#: :func:`in_use`'s key for the Linux bridge venv (netagent installed from a checkout)
LB_SERVER_IN_USE = f"neutron-lb-{LB_AGENT_NEUTRON_VERSION}"


def lb_agent() -> tuple[Path, bool]:
    """The venv of the last Neutron with the Linux bridge agent (its agent and its code
    run from here; :func:`lb_server` adds netagent's driver for its neutron-server)."""
    return ensure_tool(f"neutron-lb-{LB_AGENT_NEUTRON_VERSION}", lb_agent_requirements())
