"""Checks the security-group interop modules share (Linux bridge and OVS hybrid plug):
an agent alive with the iptables firewall, a port's status, and "blocked" observed with
real pings."""

from __future__ import annotations

import time
from typing import Any

from tests.fullstack import harness
from tests.interop import neutron_server
from tests.interop.api import NeutronApi

STATUS_TIMEOUT = 60
#: Bound for an API change to show up in the data plane (cast, refetch, apply).
CHANGE_TIMEOUT = 30
#: How long "blocked" is observed before it is believed.
BLOCKED_FOR = 4.0


def wait_alive_with_iptables(api: NeutronApi, host: str) -> None:
    """The netagent agent of ``host`` is alive and reports the iptables firewall."""

    def probe() -> dict[str, Any] | None:
        agents = api.agents(host=host, agent_type="Netagent agent")
        return agents[0] if agents and agents[0]["alive"] else None

    agent = neutron_server.wait_until(f"agent on {host} alive", probe, 30, 0.5)
    assert agent["configurations"].get("firewall_driver") == "iptables", agent


def wait_status(api: NeutronApi, port_id: str, status: str) -> None:
    def probe() -> dict[str, Any] | None:
        port = api.show("port", port_id)
        return port if port["status"] == status else None

    neutron_server.wait_until(f"port {port_id} {status}", probe, STATUS_TIMEOUT, 0.5)


def assert_blocked(src: harness.Vm, dst: harness.Vm) -> None:
    """No ping from ``src`` to ``dst`` gets through for :data:`BLOCKED_FOR` seconds."""
    deadline = time.monotonic() + BLOCKED_FOR
    while time.monotonic() < deadline:
        assert not harness.can_ping(src.netns, dst.address), f"{src.name} reached {dst.name}"


def wait_blocked(src: harness.Vm, dst: harness.Vm) -> None:
    """Pings from ``src`` to ``dst`` stop within :data:`CHANGE_TIMEOUT` and stay stopped."""
    harness.wait_for(
        f"{src.name} -> {dst.name} blocked",
        lambda: not harness.can_ping(src.netns, dst.address),
        timeout=CHANGE_TIMEOUT,
    )
    assert_blocked(src, dst)
