"""Unmodified Neutron 29 drives two real netagent agents; checked through the REST API only.

Module-scoped scenario (the tests run in file order and build on each other's state):
two simulated hosts run ``netagent-agent`` with ``[agent] source = neutron`` and the Linux
bridge driver; a VXLAN network with subnet 192.0.2.0/24 gets one compute port per host;
the "VMs" are namespaces whose taps carry the ports' ids and MACs (tools/vmctl.py).
Assertions are on the server's view (agents, binding, port status) and on packets.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fullstack import harness
from tests.interop import cloud, neutron_server
from tests.interop.api import NeutronApi

HOSTS = {"host-a": "198.18.0.1", "host-b": "198.18.0.2"}
#: Port status changes wait for at most a few agent passes and report intervals.
STATUS_TIMEOUT = 60


@pytest.fixture(scope="module")
def fabric(
    neutron: neutron_server.NeutronServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[cloud.InteropFabric]:
    with cloud.running_fabric(neutron, tmp_path_factory.mktemp("fabric"), HOSTS) as fab:
        yield fab


@pytest.fixture(scope="module")
def network(api: NeutronApi, fabric: cloud.InteropFabric) -> dict[str, Any]:
    net = api.create("network", name="interop-vxlan")
    subnet = api.create(
        "subnet",
        network_id=net["id"],
        cidr="192.0.2.0/24",
        ip_version=4,
        enable_dhcp=False,
        gateway_ip=None,
    )
    net["subnet_id"] = subnet["id"]
    return net


def _create_port(api: NeutronApi, network: dict[str, Any], host: str) -> dict[str, Any]:
    return api.compute_port(network["id"], host)


def _wait_status(api: NeutronApi, port_id: str, status: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        port = api.show("port", port_id)
        return port if port["status"] == status else None

    return neutron_server.wait_until(f"port {port_id} {status}", probe, STATUS_TIMEOUT, 0.5)


def _wait_alive(api: NeutronApi, host: str, alive: bool, timeout: float) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        agents = api.agents(host=host, agent_type="Netagent agent")
        return agents[0] if agents and agents[0]["alive"] is alive else None

    return neutron_server.wait_until(f"agent on {host} alive={alive}", probe, timeout, 0.5)


@pytest.fixture(scope="module")
def vms(
    api: NeutronApi, fabric: cloud.InteropFabric, network: dict[str, Any]
) -> dict[str, harness.Vm]:
    """One bound port and its VM per host (needs the agents alive to bind)."""
    for name in HOSTS:
        _wait_alive(api, name, True, timeout=30)
    result = {}
    for index, (name, host) in enumerate(fabric.hosts.items()):
        port = _create_port(api, network, name)
        assert port["binding:vif_type"] == "tap", port
        result[name] = fabric.add_neutron_vm(f"vm{index}", host, port, mtu=network["mtu"])
    return result


def _tap_master(vm: harness.Vm) -> str | None:
    master: str | None = harness.links(vm.host.netns).get(vm.tap, {}).get("master")
    return master


def test_agents_report_alive(api: NeutronApi, fabric: cloud.InteropFabric) -> None:
    for name, tunnel_ip in HOSTS.items():
        agent = _wait_alive(api, name, True, timeout=30)
        assert agent["binary"] == "netagent-agent"
        assert agent["configurations"]["tunneling_ip"] == tunnel_ip
        assert agent["configurations"]["tunnel_types"] == ["vxlan"]


def test_idle_agents_do_not_flood_the_server(
    neutron: neutron_server.NeutronServer, api: NeutronApi, fabric: cloud.InteropFabric
) -> None:
    for name in HOSTS:
        _wait_alive(api, name, True, timeout=30)
    time.sleep(2 * neutron_server.AGENT_REPORT_INTERVAL)  # start-up syncs are over
    before = neutron.tunnel_syncs()
    time.sleep(10)
    # Reference agents call tunnel_sync at start and after a resync only.
    assert neutron.tunnel_syncs() - before <= 2 * len(HOSTS)


def test_ports_bound_wired_active_and_vms_ping(
    api: NeutronApi, fabric: cloud.InteropFabric, vms: dict[str, harness.Vm]
) -> None:
    a, b = vms["host-a"], vms["host-b"]
    for vm in (a, b):
        port = api.show("port", vm.port_id)
        assert port["binding:vif_type"] == "tap"
        assert port["binding:host_id"] == vm.host.name
        (agent,) = api.agents(host=vm.host.name, agent_type="Netagent agent")
        filters = agent["configurations"].get("firewall_driver", "noop") != "noop"
        assert port["binding:vif_details"]["port_filter"] is filters
    fabric.wait_wired(a, b, timeout=STATUS_TIMEOUT)
    for vm in (a, b):
        _wait_status(api, vm.port_id, "ACTIVE")
    fabric.wait_ping(a, b)
    fabric.wait_ping(b, a)


def test_admin_state_down_stops_traffic_and_port_goes_down(
    api: NeutronApi, fabric: cloud.InteropFabric, vms: dict[str, harness.Vm]
) -> None:
    a, b = vms["host-a"], vms["host-b"]
    fabric.wait_ping(a, b)
    api.update("port", a.port_id, admin_state_up=False)
    _wait_status(api, a.port_id, "DOWN")
    harness.wait_for("traffic to stop", lambda: not harness.can_ping(b.netns, a.address))
    api.update("port", a.port_id, admin_state_up=True)
    _wait_status(api, a.port_id, "ACTIVE")
    fabric.wait_ping(b, a)


def test_agent_killed_goes_dead_and_restart_revives_without_touching_data_plane(
    api: NeutronApi, fabric: cloud.InteropFabric, vms: dict[str, harness.Vm]
) -> None:
    a, b = vms["host-a"], vms["host-b"]
    host = a.host
    fabric.wait_ping(a, b)
    before = fabric.ifindexes(host, ("brq", "nvx-", "tap"))
    # ~2 pings/s through kill, death, restart and revival; every reply must arrive.
    seconds = neutron_server.AGENT_DOWN_TIME + 25
    pinger = subprocess.Popen(
        [
            *("ip", "netns", "exec", b.netns, "ping", "-n", "-q", "-i", "0.5"),
            *("-c", str(seconds * 2), "-w", str(seconds + 10), a.address),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        host.stop_agent(signal.SIGKILL)
        _wait_alive(api, host.name, False, timeout=neutron_server.AGENT_DOWN_TIME + 15)
        host.start_agent()
        _wait_alive(api, host.name, True, timeout=30)
        # The restarted agent fetches details again (server: BUILD) and reports it up.
        _wait_status(api, a.port_id, "ACTIVE")
        out, _ = pinger.communicate(timeout=seconds + 20)
    finally:
        if pinger.poll() is None:
            pinger.kill()
            pinger.wait(5)
    assert pinger.returncode == 0, f"pings were lost while the agent restarted:\n{out}"
    assert fabric.ifindexes(host, ("brq", "nvx-", "tap")) == before
    # Converged again after the restart: a later change is still applied.
    time.sleep(neutron_server.AGENT_REPORT_INTERVAL)
    assert _tap_master(a) == "brq" + a.network_id[:11]


def test_deleting_a_port_removes_its_wiring(
    api: NeutronApi, fabric: cloud.InteropFabric, vms: dict[str, harness.Vm]
) -> None:
    a, b = vms["host-a"], vms["host-b"]
    fabric.wait_ping(a, b)
    api.remove("port", b.port_id)
    harness.wait_for(f"{b.tap} unwired", lambda: _tap_master(b) is None, timeout=STATUS_TIMEOUT)
    assert not harness.can_ping(a.netns, b.address)
    assert _tap_master(a) == "brq" + a.network_id[:11]
