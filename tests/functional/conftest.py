"""Functional tier: root and the real kernel.

Runs only when ``NETAGENT_FUNCTIONAL=1`` and as root. Every test gets namespaces with
unique names from the ``make_netns`` fixture; they are deleted after the test even when it
fails. Addresses used inside them come only from the ranges testing.md allows.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest

#: Prefix of every namespace the test suite creates. Names carry the creating process's
#: PID (``natest-<tag>-<pid>-<random>``): leftovers of runs whose process is gone are
#: removed at the start of the next run, while a concurrent run's namespaces are left alone.
TEST_NETNS_PREFIX = "natest-"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = None
    if os.environ.get("NETAGENT_FUNCTIONAL") != "1":
        reason = "functional tier: set NETAGENT_FUNCTIONAL=1 (needs root)"
    elif os.geteuid() != 0:
        reason = "functional tier needs root"
    for item in items:
        if "tests/functional" in str(item.fspath):
            item.add_marker(pytest.mark.functional)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def _list_netns() -> list[str]:
    try:
        return sorted(os.listdir("/run/netns"))
    except FileNotFoundError:
        return []


def _delete_netns(name: str) -> None:
    subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


@pytest.fixture(scope="session", autouse=True)
def _remove_leftover_test_namespaces() -> None:
    if os.environ.get("NETAGENT_FUNCTIONAL") != "1" or os.geteuid() != 0:
        return
    for name in _list_netns():
        if name.startswith(TEST_NETNS_PREFIX) and not _owner_alive(name):
            _delete_netns(name)


def _owner_alive(name: str) -> bool:
    parts = name.split("-")
    if len(parts) < 4 or not parts[-2].isdigit():
        return False
    try:
        os.kill(int(parts[-2]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def nsrun(ns: str, *argv: str, timeout: float = 10.0, check: bool = True) -> str:
    """Run ``argv`` inside namespace ``ns``; its stdout (a failure raises, with ``check``)."""
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} in {ns} failed: {proc.stderr}")
    return proc.stdout


def unique_name(prefix: str = "", length: int = 15) -> str:
    """A random name for a device or namespace, at most ``length`` characters."""
    return (prefix + uuid.uuid4().hex)[:length]


@pytest.fixture
def make_netns() -> Iterator[Callable[[str], str]]:
    """Factory: ``make_netns("a")`` creates ``natest-a-<pid>-<random>``, returns its name."""
    created: list[str] = []

    def factory(tag: str = "ns") -> str:
        name = f"{TEST_NETNS_PREFIX}{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        created.append(name)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        return name

    yield factory
    for name in reversed(created):
        _delete_netns(name)


@pytest.fixture
def netns(make_netns: Callable[[str], str]) -> str:
    """One fresh namespace for the test."""
    return make_netns("ns")
