"""Someone else changes the L2 state netagent wired: the running agent finds it and wires
it again within seconds, through its normal pass (doc/linuxbridge.md, "Drift").

Two hosts, one VXLAN network, vm1 on host-a and vm2 on host-b. Each case tampers with
host-a's kernel state the way an admin (or a stray script) would, checks that the
damage is real (vm1 can no longer reach vm2 where the case breaks the path), then waits
for the agent to restore the exact state and traffic, with a warning naming the object
and the repair shown by ``netagent-status``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.fullstack import harness
from tests.fullstack.harness import Fabric, Host, Vm, wait_for

REPAIR_WITHIN = 5.0
WARNING = "changed behind netagent's back"


def _status(host: Host) -> dict[str, Any]:
    out = harness.run(
        str(harness.BIN / "netagent-status"), "--state-path", str(host.state_path), "--json"
    ).stdout
    doc: dict[str, Any] = json.loads(out)
    return doc


def _l2_state(fabric: Fabric, host: Host, vm: Vm) -> dict[str, Any]:
    """What the case must restore: bridge membership of the tap and uplink, FDB."""
    devs = harness.links(host.netns)
    bridge = "brq" + vm.network_id[:11]
    uplinks = [n for n in devs if n.startswith("nvx-")]
    return {
        "tap_master": devs.get(vm.tap, {}).get("master"),
        "uplinks": {n: devs[n].get("master") for n in uplinks},
        "bridge_up": "UP" in devs.get(bridge, {}).get("flags", []),
        "fdb": {n: harness.fdb(host.netns, n) for n in uplinks},
    }


def _bridge(vm: Vm) -> str:
    return "brq" + vm.network_id[:11]


def _uplink(fabric: Fabric, vm: Vm) -> str:
    return "nvx-" + str(fabric.networks[vm.network_id]["provider:segmentation_id"])


def _delete_fdb_to(host_b: Host) -> Callable[[Fabric, Host, Vm, Vm], list[list[str]]]:
    def commands(fabric: Fabric, host: Host, vm1: Vm, vm2: Vm) -> list[list[str]]:
        dev = _uplink(fabric, vm1)
        return [
            ["bridge", "fdb", "del", mac, "dev", dev, "dst", host_b.tunnel_ip]
            for mac, dst in sorted(harness.fdb(host.netns, dev))
            if dst == host_b.tunnel_ip
        ]

    return commands


# case -> (commands in host-a's namespace, what the warning names)
Case = tuple[Callable[[Fabric, Host, Vm, Vm], list[list[str]]], Callable[[Vm], str]]
CASES: dict[str, Case] = {
    "tap-out-of-bridge": (
        lambda f, h, vm1, vm2: [["ip", "link", "set", vm1.tap, "nomaster"]],
        lambda vm1: f"port {vm1.port_id}: {vm1.tap} taken out of {_bridge(vm1)}",
    ),
    "tap-set-down": (
        lambda f, h, vm1, vm2: [["ip", "link", "set", vm1.tap, "down"]],
        lambda vm1: f"port {vm1.port_id}: {vm1.tap} set down",
    ),
    "uplink-out-of-bridge": (
        lambda f, h, vm1, vm2: [["ip", "link", "set", _uplink(f, vm1), "nomaster"]],
        lambda vm1: f"network {vm1.network_id}: uplink nvx-",
    ),
    "vxlan-fdb-deleted": (
        lambda f, h, vm1, vm2: _delete_fdb_to(vm2.host)(f, h, vm1, vm2),
        lambda vm1: f"network {vm1.network_id}: forwarding entries of nvx-",
    ),
    "vxlan-fdb-added": (
        lambda f, h, vm1, vm2: [
            [
                "bridge",
                "fdb",
                "append",
                "00:00:00:00:00:00",
                "dev",
                _uplink(f, vm1),
                "dst",
                "198.18.0.99",
            ],
        ],
        lambda vm1: f"network {vm1.network_id}: forwarding entries of nvx-",
    ),
    "bridge-deleted": (
        lambda f, h, vm1, vm2: [["ip", "link", "del", _bridge(vm1)]],
        lambda vm1: f"network {vm1.network_id}: bridge {_bridge(vm1)} deleted",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_l2_drift_is_repaired(fabric: Fabric, case: str) -> None:
    host_a = fabric.add_host("host-a", "198.18.0.1")
    host_b = fabric.add_host("host-b", "198.18.0.2")
    net = fabric.add_network(1201)
    vm1 = fabric.add_vm("vm1", host_a, net, "192.0.2.10/24")
    vm2 = fabric.add_vm("vm2", host_b, net, "192.0.2.11/24")
    fabric.start_agents()
    fabric.wait_wired(vm1, vm2)
    wait_for("agents converged", lambda: host_a.status().returncode == 0, timeout=30)
    fabric.wait_ping(vm1, vm2)
    wired = _l2_state(fabric, host_a, vm1)
    before = _status(host_a)["counters"]["integrity_repairs"]
    index_before = fabric.ifindexes(host_a, ("tap",))

    commands, names = CASES[case]
    argv_list = commands(fabric, host_a, vm1, vm2)
    assert argv_list, "nothing to tamper with"
    for argv in argv_list:
        harness.run("ip", "netns", "exec", host_a.netns, *argv)
    started = time.monotonic()

    def repaired() -> bool:
        return _l2_state(fabric, host_a, vm1) == wired and harness.can_ping(vm1.netns, vm2.address)

    while not repaired():
        assert time.monotonic() - started < REPAIR_WITHIN, (
            f"{case}: not repaired within {REPAIR_WITHIN:.0f} s: "
            f"{_l2_state(fabric, host_a, vm1)} != {wired}\n{host_a.log_tail()}"
        )
        time.sleep(0.1)
    print(f"{case}: repaired {time.monotonic() - started:.1f} s after tampering")

    expected = names(vm1)
    log = host_a.log_file.read_text(errors="replace").splitlines()
    assert any(WARNING in line and expected in line for line in log), host_a.log_tail()
    doc = _status(host_a)
    assert doc["counters"]["integrity_repairs"] > before
    last = doc["last_integrity_repair"]
    assert any(expected in line for line in last["found"]), last
    # taps are the hypervisor's: wired again in place, never recreated
    assert fabric.ifindexes(host_a, ("tap",)) == index_before
    assert host_a.agent_alive() and host_b.agent_alive()
    wait_for("agent converged again", lambda: host_a.status().returncode == 0, timeout=10)
