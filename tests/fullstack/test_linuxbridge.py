"""End to end: real ``netagent-agent`` processes wire VXLAN networks across simulated hosts.

Every assertion is on packets (ping between VM namespaces) or on kernel state read with
iproute2, never on log lines.
"""

from __future__ import annotations

import signal
import time

from tests.fullstack import harness
from tests.fullstack.harness import Fabric, can_ping, links, ping, wait_for


def _two_hosts(fabric: Fabric) -> tuple[harness.Host, harness.Host]:
    return fabric.add_host("host-a", "198.18.0.1"), fabric.add_host("host-b", "198.18.0.2")


def _pinging_pair(
    fabric: Fabric,
) -> tuple[harness.Host, harness.Host, str, harness.Vm, harness.Vm]:
    """Two hosts with running agents, a VM on each in VXLAN network 1001, pinging."""
    host_a, host_b = _two_hosts(fabric)
    net = fabric.add_network(1001)
    vm1 = fabric.add_vm("vm1", host_a, net, "192.0.2.10/24")
    vm2 = fabric.add_vm("vm2", host_b, net, "192.0.2.11/24")
    fabric.start_agents()
    fabric.wait_ping(vm1, vm2)
    return host_a, host_b, net, vm1, vm2


def test_cross_host_ping_and_isolation(fabric: Fabric) -> None:
    host_a, host_b = _two_hosts(fabric)
    net1 = fabric.add_network(1001)
    net2 = fabric.add_network(1002)
    vm1 = fabric.add_vm("vm1", host_a, net1, "192.0.2.10/24")
    vm2 = fabric.add_vm("vm2", host_b, net1, "192.0.2.11/24")
    # Same subnet on purpose: only L2 separation can keep vm3 away from vm1.
    vm3 = fabric.add_vm("vm3", host_b, net2, "192.0.2.12/24")
    vm4 = fabric.add_vm("vm4", host_a, net2, "192.0.2.13/24")
    fabric.start_agents()
    fabric.wait_wired(vm1, vm2, vm3, vm4)
    fabric.wait_ping(vm1, vm2)
    fabric.wait_ping(vm4, vm3)
    assert not can_ping(vm1.netns, vm4.address)  # same host, other network
    assert ping(vm2.netns, vm1.address, count=5, interval=0.1).returncode == 0
    assert not can_ping(vm1.netns, vm3.address)
    assert not can_ping(vm3.netns, vm2.address)
    # The devices carry the network's MTU and VNI.
    devs = links(host_a.netns)
    vx = devs["nvx-1001"]
    assert vx["linkinfo"]["info_data"]["id"] == 1001 and vx["mtu"] == 1450
    assert devs["brq" + net1[:11]]["mtu"] == 1450
    assert harness.fdb(host_a.netns, "nvx-1001") == {
        ("00:00:00:00:00:00", host_b.tunnel_ip),
        (vm2.mac, host_b.tunnel_ip),
    }


def test_port_added_to_state_gets_connectivity(fabric: Fabric) -> None:
    host_a, host_b = _two_hosts(fabric)
    net = fabric.add_network(1001)
    vm1 = fabric.add_vm("vm1", host_a, net, "192.0.2.10/24")
    vm2 = fabric.add_vm("vm2", host_b, net, "192.0.2.11/24")
    late = fabric.add_vm("late", host_b, net, "192.0.2.20/24", in_state=False)
    fabric.start_agents()
    fabric.wait_ping(vm1, vm2)
    assert not can_ping(vm1.netns, late.address)
    pids = {h.name: h.process.pid for h in fabric.hosts.values() if h.process}

    fabric.add_port(late)
    fabric.write_state()
    fabric.wait_wired(late)
    fabric.wait_ping(vm1, late)
    assert {h.name: h.process.pid for h in fabric.hosts.values() if h.process} == pids


def test_port_removed_from_state_loses_connectivity(fabric: Fabric) -> None:
    host_a, host_b, net, vm1, vm2 = _pinging_pair(fabric)

    fabric.remove_port(vm2)
    fabric.write_state()
    bridge = "brq" + net[:11]

    def vm2_unwired() -> bool:
        devs = links(host_b.netns)
        return devs[vm2.tap].get("master") is None and bridge not in devs

    wait_for("vm2's tap detached and host-b's bridge gone", vm2_unwired)
    wait_for("nvx-1001 gone from host-b", lambda: "nvx-1001" not in links(host_b.netns))
    # host-a no longer floods to host-b nor knows vm2's MAC.
    wait_for("host-a's FDB empty", lambda: harness.fdb(host_a.netns, "nvx-1001") == set())
    assert not can_ping(vm1.netns, vm2.address)


def test_admin_state_down_blocks_traffic(fabric: Fabric) -> None:
    _host_a, host_b, _net, vm1, vm2 = _pinging_pair(fabric)

    fabric.ports[vm2.port_id]["admin_state_up"] = False
    fabric.write_state()
    wait_for("vm2's tap down", lambda: "UP" not in links(host_b.netns)[vm2.tap]["flags"])
    assert not can_ping(vm1.netns, vm2.address)

    fabric.ports[vm2.port_id]["admin_state_up"] = True
    fabric.write_state()
    fabric.wait_ping(vm1, vm2)


def test_sigkill_restart_loses_nothing(fabric: Fabric) -> None:
    host_a, host_b, _net, vm1, vm2 = _pinging_pair(fabric)
    before = {h.name: fabric.ifindexes(h) for h in (host_a, host_b)}
    assert before["host-a"] and before["host-b"]

    fdb_before = harness.fdb(host_a.netns, "nvx-1001")
    count, interval = 100, 0.05  # 5 s of pings, bounded
    ping_cmd = ["ip", "netns", "exec", vm1.netns, "ping", "-n", "-q", "-c", str(count)]
    ping_cmd += ["-i", str(interval), "-W", "1", vm2.address]
    with harness.background(["ip", "-n", host_a.netns, "monitor", "link"]) as monitor:
        with harness.background(ping_cmd) as pinger:
            time.sleep(0.5)
            host_a.stop_agent(signal.SIGKILL)
            host_b.stop_agent(signal.SIGKILL)
            host_a.start_agent()
            host_b.start_agent()
            out, _ = pinger.communicate(timeout=30)
        assert f"{count} packets transmitted, {count} received" in out, out
        # Let the restarted agents finish their first full sync, then compare.
        for host in (host_a, host_b):
            wait_for(f"{host.name} converged", lambda host=host: _converged(host), timeout=30)
            assert host.agent_alive(), host.log_tail()
        monitor.terminate()
        link_events, _ = monitor.communicate(timeout=5)
    assert link_events == "", f"restart changed links on host-a:\n{link_events}"
    assert {h.name: fabric.ifindexes(h) for h in (host_a, host_b)} == before
    assert harness.fdb(host_a.netns, "nvx-1001") == fdb_before
    fabric.wait_ping(vm1, vm2)


def _converged(host: harness.Host) -> bool:
    """``netagent-status --check`` says converged (exit 0)."""
    return host.status().returncode == 0
