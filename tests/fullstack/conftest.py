"""Fullstack tier: real ``netagent-agent`` processes in simulated host namespaces.

Runs only with ``NETAGENT_FULLSTACK=1`` as root. Each test gets a :class:`Fabric` of its
own; the fixture's finalizer stops the agents it started (by PID) and deletes every
namespace it made, also when the test fails. Leftovers of a crashed run (namespaces named
``nafs-<pid>-*`` whose process is gone) are removed at the start of the session; a run
going on in parallel keeps its namespaces.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.common import ovs as ovs_helper
from tests.common.ovs import PrivateOvs
from tests.fullstack import harness


def _skip_reason() -> str | None:
    if os.environ.get("NETAGENT_FULLSTACK") != "1":
        return "fullstack tier: set NETAGENT_FULLSTACK=1 (needs root)"
    if os.geteuid() != 0:
        return "fullstack tier needs root"
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "agent_user(name): run this test's agents as that user, unprivileged"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    for item in items:
        if "tests/fullstack" in str(item.fspath):
            item.add_marker(pytest.mark.fullstack)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session", autouse=True)
def _remove_leftovers() -> None:
    if _skip_reason():
        return
    for name in harness.leftover_namespaces():
        harness.run("ip", "netns", "delete", name, check=False)


@pytest.fixture
def fabric(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[harness.Fabric]:
    """An underlay namespace; tests add hosts, networks and VMs, then start agents."""
    marker = request.node.get_closest_marker("agent_user")
    user = marker.args[0] if marker is not None else harness.AGENT_USER
    workdir = tmp_path
    if user is not None:
        # pytest's tmp_path is under a root-only directory: the agent could not reach it
        workdir = Path(tempfile.mkdtemp(prefix="nafs-agent-"))
        os.chmod(workdir, 0o755)
        os.chown(workdir, *harness.agent_ids(user))
    fab = harness.Fabric(workdir, agent_user=user)
    try:
        fab.start()
        yield fab
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(fab.diagnostics())
        fab.close()
        if workdir != tmp_path:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def switches(fabric: harness.Fabric) -> Iterator[dict[str, PrivateOvs]]:
    """Private OVS instances by host name, stopped (by PID) and removed after the test,
    after the fabric's agents (which would log their lost switch until stopped)."""
    if not ovs_helper.available():
        pytest.skip("Open vSwitch is not installed (tools/setup-host.sh)")
    for path in ovs_helper.leftover_dirs():
        ovs_helper.remove_leftover(path)
    made: dict[str, PrivateOvs] = {}
    try:
        yield made
    finally:
        for host in fabric.hosts.values():
            with contextlib.suppress(Exception):
                host.stop_agent(timeout=5)
        for switch in made.values():
            switch.stop()
