"""Interop tier: a real neutron-server (Neutron 29 from PyPI) drives netagent.

Runs only with ``NETAGENT_INTEROP=1`` as root, with RabbitMQ and MariaDB on 127.0.0.1.
One Keystone and one Neutron per session (:func:`tests.interop.neutron_server.running`);
their phase timings are printed, and the tail of their logs is attached to every failed
test's report.
Databases and vhosts left by crashed runs are dropped at the start, and so are the DHCP
agents' leftovers (``qdhcp-`` namespaces with their dnsmasq and haproxy, privsep daemons,
guests' dhclients: :func:`tests.interop.dhcp.remove_leftovers`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop import dhcp, neutron_server, services
from tests.interop.api import NeutronApi

_SERVER_KEY = pytest.StashKey[neutron_server.NeutronServer]()


def _skip_reason() -> str | None:
    if os.environ.get("NETAGENT_INTEROP") != "1":
        return "interop tier: set NETAGENT_INTEROP=1 (needs root, RabbitMQ, MariaDB)"
    if os.geteuid() != 0:
        return "interop tier needs root"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    for item in items:
        if "tests/interop" in str(item.fspath):
            item.add_marker(pytest.mark.interop)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def neutron(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[neutron_server.NeutronServer]:
    """The session's neutron-server (API, RPC server, periodic workers) on its Keystone."""
    for what in services.remove_leftovers() + dhcp.remove_leftovers():
        print(f"interop: removed leftover {what}")
    workdir: Path = tmp_path_factory.mktemp("cloud")
    with neutron_server.running(workdir) as server:
        request.config.stash[_SERVER_KEY] = server
        print("\n" + server.timing_line())
        yield server
    print("\n" + server.timing_line())


@pytest.fixture(scope="module")
def api(neutron: neutron_server.NeutronServer) -> NeutronApi:
    return neutron.api()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
    server = item.config.stash.get(_SERVER_KEY, None)
    if report.failed and server is not None:
        report.sections.append(
            (
                "keystone and neutron-server logs",
                server.keystone.diagnostics() + server.diagnostics(),
            )
        )
