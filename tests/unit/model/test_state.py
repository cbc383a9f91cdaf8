"""DesiredState helpers and the per-host view."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from netagent.model import DesiredState, EtherType
from netagent.sources.statefile import load_state

EXAMPLE = Path(__file__).parents[3] / "etc" / "netagent" / "examples" / "state.yaml"
TENANT = "5bf5b5fe-d6ab-4868-bac7-a0dea247a672"
PUBLIC = "f29dfae6-9fb2-45a2-8f4c-c3b83e6d0e85"
WEB = "75891e18-af2c-4c03-acf1-34e4b696efb6"
OPS = "e3611a60-87ab-4637-8c45-4566f1e13874"
ROUTER = "fb2380b9-fc60-48fb-8d70-b0ab051bd376"
VM_A = "9b97a353-9720-46f9-b29b-e40d5c7b67f4"
VM_B = "d7656e5b-9bea-426a-92bd-134fee0c1130"


@pytest.fixture(scope="module")
def state() -> DesiredState:
    result = load_state(EXAMPLE)
    assert result.errors == ()
    return result.state


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def test_helpers(state: DesiredState) -> None:
    assert len(state.ports_on_network(TENANT)) == 3
    assert dict(state.tunnel_peers(TENANT)) == {
        "host-a": ipaddress.ip_address("198.18.0.1"),
        "host-b": ipaddress.ip_address("198.18.0.2"),
    }
    assert dict(state.tunnel_peers(TENANT, exclude_host="host-a")) == {
        "host-b": ipaddress.ip_address("198.18.0.2")
    }
    assert state.remote_group_members(WEB, EtherType.IPV4) == {
        net("192.0.2.10/32"),
        net("192.0.2.11/32"),
        net("192.0.2.200/32"),
    }
    assert state.remote_group_members(WEB, EtherType.IPV6) == {
        net("fd00:1::10/128"),
        net("fd00:1::11/128"),
    }
    assert state.remote_group_members(OPS, EtherType.IPV4) == {
        net("198.51.100.0/25"),
        net("198.51.100.200/32"),
    }
    assert state.remote_group_members(OPS, EtherType.IPV6) == frozenset()
    assert (
        state.remote_group_members("00000000-0000-4000-8000-000000000000", EtherType.IPV4)
        == frozenset()
    )


def test_host_a(state: DesiredState) -> None:
    view = state.for_host("host-a")
    assert view.agent is not None and view.agent.tunneling_ip == ipaddress.ip_address("198.18.0.1")
    assert VM_A in view.ports and VM_B not in view.ports
    assert set(view.networks) == {TENANT, PUBLIC}
    assert len(view.subnets) == 3
    assert set(view.security_groups) == {WEB}
    assert set(view.address_groups) == {OPS}
    assert set(view.routers) == {ROUTER}
    assert len(view.floatingips) == 1
    assert dict(view.tunnel_peers(TENANT)) == {"host-b": ipaddress.ip_address("198.18.0.2")}
    assert dict(view.tunnel_peers(PUBLIC)) == {}
    # Remote-group members include the port on the other host.
    assert net("192.0.2.11/32") in view.remote_group_members(WEB, EtherType.IPV4)
    assert [p.id for p in view.ports_on_network(TENANT)] == sorted(
        p.id for p in view.ports.values() if p.network_id == TENANT
    )


def test_host_b(state: DesiredState) -> None:
    view = state.for_host("host-b")
    assert list(view.ports) == [VM_B]
    assert set(view.networks) == {TENANT}
    assert set(view.subnets) == {
        "aa925d73-99b3-4226-90c5-334e1ed70a7d",
        "07432f0d-e1b7-4ff4-b1f4-a7d765545f09",
    }
    assert view.routers == {}
    assert dict(view.tunnel_peers(TENANT)) == {"host-a": ipaddress.ip_address("198.18.0.1")}


def test_unknown_host_is_empty(state: DesiredState) -> None:
    view = state.for_host("host-z")
    assert (view.agent, dict(view.ports), dict(view.routers)) == (None, {}, {})


def test_state_is_read_only(state: DesiredState) -> None:
    with pytest.raises(TypeError):
        state.ports["x"] = state.ports[VM_A]  # type: ignore[index]
    assert DesiredState().ports == {}
