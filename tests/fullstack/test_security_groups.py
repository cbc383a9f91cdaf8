"""End to end: agents with ``firewall_driver = iptables`` from a state file; a security
group rule change in the file changes what passes between two VMs (on two hosts and on
one host). Assertions are on packets only."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.fullstack import harness
from tests.fullstack.harness import Fabric, can_ping, wait_for

SG = str(uuid.uuid4())
AGENT_EXTRA = "[agent]\nfirewall_driver = iptables\n[iptables]\nbackend = {backend}\n"


def _rules(icmp_in: bool) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {"id": str(uuid.uuid4()), "direction": "egress", "ethertype": "IPv4"},
    ]
    if icmp_in:
        rules.append(
            {
                "id": str(uuid.uuid4()),
                "direction": "ingress",
                "ethertype": "IPv4",
                "protocol": "icmp",
                "remote_group_id": SG,
            }
        )
    return rules


class SecuredFabric(Fabric):
    """The harness fabric with one security group on every port."""

    icmp_in = False

    def state(self) -> dict[str, Any]:
        doc = super().state()
        doc["security_groups"] = [
            {"id": SG, "name": "web", "security_group_rules": _rules(self.icmp_in)}
        ]
        for port in doc["ports"]:
            port["security_groups"] = [SG]
        return doc


@pytest.fixture
def secured(fabric: Fabric) -> SecuredFabric:
    fabric.__class__ = SecuredFabric
    assert isinstance(fabric, SecuredFabric)
    return fabric


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_rule_change_in_state_file_changes_traffic(secured: SecuredFabric, backend: str) -> None:
    host_a = secured.add_host("host-a", "198.18.0.1")
    host_b = secured.add_host("host-b", "198.18.0.2")
    net = secured.add_network(1001)
    vm1 = secured.add_vm("vm1", host_a, net, "192.0.2.10/24")
    vm2 = secured.add_vm("vm2", host_b, net, "192.0.2.11/24")
    vm3 = secured.add_vm("vm3", host_a, net, "192.0.2.12/24")
    secured.write_state()
    for host in (host_a, host_b):
        host.write_config(secured.state_file, AGENT_EXTRA.format(backend=backend))
        host.start_agent()
    secured.wait_wired(vm1, vm2, vm3)
    # wired and filtered, but no ingress rule yet: nothing answers a ping
    wait_for(
        "agents converged",
        lambda: all(h.status().returncode == 0 for h in (host_a, host_b)),
        timeout=30,
    )
    assert not can_ping(vm1.netns, vm2.address)
    assert not can_ping(vm1.netns, vm3.address)
    # allow ICMP from the group: both the cross-host and the same-host pair work
    secured.icmp_in = True
    secured.write_state()
    secured.wait_ping(vm1, vm2, timeout=30)
    secured.wait_ping(vm1, vm3, timeout=30)
    # and take it away again
    secured.icmp_in = False
    secured.write_state()
    wait_for("ping blocked again", lambda: not can_ping(vm1.netns, vm2.address), timeout=30)
    assert not can_ping(vm3.netns, vm1.address)
    assert all(h.agent_alive() for h in (host_a, host_b)), harness.Fabric.diagnostics(secured)
