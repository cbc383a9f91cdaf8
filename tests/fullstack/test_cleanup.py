"""``netagent-cleanup`` fails closed, end to end (issue 17 item 6).

A real agent (Linux bridge + iptables) wires two VMs of one host into one network whose
security group allows no ingress. Someone puts a foreign device into the netagent bridge,
so cleanup must keep that bridge. The attack: after cleanup, the VM pings its neighbour,
which no rule ever allowed. Cleanup removes every filter, so it must also take the taps
out of the kept bridge (and set them down); nothing may pass.

Also: cleanup and a second agent refuse while the agent holds ``<state_path>/agent.lock``.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from typing import Any

import pytest

from tests.fullstack import harness
from tests.fullstack.harness import BIN, Fabric, Host, can_ping, links, wait_for

SG = str(uuid.uuid4())
AGENT_EXTRA = "[agent]\nfirewall_driver = iptables\n[iptables]\nbackend = {backend}\n"


class EgressOnlyFabric(Fabric):
    """Every port in one group that allows egress only: VM to VM traffic is dropped."""

    def state(self) -> dict[str, Any]:
        doc = super().state()
        rule = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, SG)), "direction": "egress"}
        doc["security_groups"] = [
            {"id": SG, "name": "closed", "security_group_rules": [{**rule, "ethertype": "IPv4"}]}
        ]
        for port in doc["ports"]:
            port["security_groups"] = [SG]
        return doc


@pytest.fixture
def closed(fabric: Fabric) -> EgressOnlyFabric:
    fabric.__class__ = EgressOnlyFabric
    assert isinstance(fabric, EgressOnlyFabric)
    return fabric


def _in_host(host: Host, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return harness.run(
        "ip",
        "netns",
        "exec",
        host.netns,
        str(BIN / tool),
        "--config-file",
        str(host.config_file),
        *args,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_cleanup_leaves_no_bridged_tap_unfiltered(closed: EgressOnlyFabric, backend: str) -> None:
    host = closed.add_host("host-a", "198.18.0.1")
    net = closed.add_network(1001)
    vm1 = closed.add_vm("vm1", host, net, "192.0.2.10/24")
    vm2 = closed.add_vm("vm2", host, net, "192.0.2.11/24")
    closed.write_state()
    host.write_config(closed.state_file, AGENT_EXTRA.format(backend=backend))
    host.start_agent()
    closed.wait_wired(vm1, vm2)
    wait_for("agent converged", lambda: host.status().returncode == 0, timeout=30)
    assert not can_ping(vm1.netns, vm2.address), "the group allows no ingress"
    bridge = "brq" + net[:11]
    harness.ip(host.netns, "link", "add", "eth9", "type", "veth", "peer", "name", "x-eth9")
    harness.ip(host.netns, "link", "set", "eth9", "master", bridge, "up")

    # The agent holds the lock: cleanup and a second agent refuse, naming its PID.
    assert host.process is not None
    agent_pid = host.process.pid
    refused = _in_host(host, "netagent-cleanup")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "agent is running" in refused.stderr and f"PID {agent_pid}" in refused.stderr
    second = _in_host(host, "netagent-agent")
    assert second.returncode == 1 and f"PID {agent_pid}" in second.stderr, second.stderr
    assert host.agent_alive() and closed.wired(vm1)

    host.stop_agent()
    # A dry run changes nothing and prints each line with one NOOP prefix.
    dry = _in_host(host, "netagent-cleanup", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "NOOP: NOOP:" not in dry.stdout
    assert all(line.startswith("NOOP: ") for line in dry.stdout.splitlines()), dry.stdout
    assert f"detach {vm1.tap} from {bridge}" in dry.stdout
    assert closed.wired(vm1) and closed.wired(vm2)

    done = _in_host(host, "netagent-cleanup")
    assert done.returncode == 0, done.stdout + done.stderr
    for vm in (vm1, vm2):
        line = f"detach {vm.tap} from {bridge} (bridge kept: foreign member eth9) and set it down"
        assert line in done.stdout, done.stdout
    # L2 before firewall: the taps were out before the chains went.
    order = [m.group(1) for m in re.finditer(r"^(\w+Driver): ", done.stdout, re.MULTILINE)]
    assert order.index("LinuxBridgeDriver") < order.index("IptablesFirewallDriver"), order

    devs = links(host.netns)
    assert devs[bridge]["ifname"] == bridge and devs["eth9"]["master"] == bridge
    for vm in (vm1, vm2):
        assert "master" not in devs[vm.tap], devs[vm.tap]
        assert "UP" not in devs[vm.tap]["flags"], devs[vm.tap]["flags"]
    # The attack: no filter is left, and still nothing reaches the neighbour.
    assert not can_ping(vm1.netns, vm2.address)
    assert not can_ping(vm2.netns, vm1.address)
