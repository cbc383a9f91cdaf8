"""The integrity check never reports as tampering a change netagent itself is making.

Two hosts, two VXLAN networks, the iptables firewall, the integrity check every 0.5 s
(four times the default rate). For ``NETAGENT_CHURN_SECONDS`` (60 by default; 300 for the
five-minute run) the desired state changes every few hundred milliseconds, cycling through:
a security-group rule added and removed (group chains), a port joining and leaving a
remote group (ipset members), a port removed and added back (unplug, filter removal,
plug), a port's admin state flipped (tap down and up by netagent), a port on the other
host appearing and going (VXLAN forwarding and ARP-suppression entries), and the
hypervisor deleting and recreating a VM's tap (a new device, not tampering). Afterwards
both agents are converged, nothing was counted as repaired, no line of either log says
"changed behind netagent's back", and traffic flows as the final state says.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

from tests.fullstack import harness
from tests.fullstack.harness import Fabric, Host, wait_for

DURATION = float(os.environ.get("NETAGENT_CHURN_SECONDS", "60"))
STEP = 0.3
WARNING = "changed behind netagent's back"
SG = str(uuid.uuid4())
OTHER = str(uuid.uuid4())
RULE_ID = str(uuid.uuid4())


class ChurnFabric(Fabric):
    """A fabric whose groups and memberships the test flips between writes."""

    extra_rule = False
    members_out: frozenset[str] = frozenset()

    def state(self) -> dict[str, Any]:
        doc = super().state()
        rules: list[dict[str, Any]] = [
            {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, SG)), "direction": "egress",
             "ethertype": "IPv4"},
            {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, SG + "i")), "direction": "ingress",
             "ethertype": "IPv4", "protocol": "icmp", "remote_group_id": SG},
        ]  # fmt: skip
        if self.extra_rule:
            rules.append(
                {"id": RULE_ID, "direction": "ingress", "ethertype": "IPv4",
                 "protocol": "tcp", "port_range_min": 22, "port_range_max": 22}
            )  # fmt: skip
        doc["security_groups"] = [
            {"id": SG, "name": "churn", "security_group_rules": rules},
            {"id": OTHER, "name": "other", "security_group_rules": rules[:1]},
        ]
        for port in doc["ports"]:
            port["security_groups"] = [OTHER if port["id"] in self.members_out else SG]
        return doc


def _status(host: Host) -> dict[str, Any]:
    out = harness.run(
        str(harness.BIN / "netagent-status"), "--state-path", str(host.state_path), "--json"
    ).stdout
    doc: dict[str, Any] = json.loads(out)
    return doc


def test_own_changes_never_look_tampered(fabric: Fabric) -> None:
    fabric.__class__ = ChurnFabric
    assert isinstance(fabric, ChurnFabric)
    host_a = fabric.add_host("host-a", "198.18.0.1")
    host_b = fabric.add_host("host-b", "198.18.0.2")
    net1 = fabric.add_network(1301)
    net2 = fabric.add_network(1302)
    vm1 = fabric.add_vm("vm1", host_a, net1, "192.0.2.10/24")
    vm2 = fabric.add_vm("vm2", host_a, net1, "192.0.2.11/24")
    vm3 = fabric.add_vm("vm3", host_a, net1, "192.0.2.12/24")
    vm4 = fabric.add_vm("vm4", host_a, net2, "192.0.2.20/24")
    vm5 = fabric.add_vm("vm5", host_b, net1, "192.0.2.13/24")
    vm6 = fabric.add_vm("vm6", host_b, net2, "192.0.2.21/24")
    fabric.write_state()
    extra = (
        "[agent]\nfirewall_driver = iptables\n[iptables]\nintegrity_interval = 0.5\n"
        "[file_source]\npoll_interval = 0.1\n"
    )
    for host in (host_a, host_b):
        host.write_config(fabric.state_file, extra)
        host.start_agent()
    fabric.wait_wired(vm1, vm2, vm3, vm4, vm5, vm6)
    for host in (host_a, host_b):
        wait_for(f"{host.name} converged", lambda h=host: h.status().returncode == 0, timeout=40)
    fabric.wait_ping(vm1, vm5)
    checks_before = _status(host_a)["counters"]["integrity_checks"]

    def recreate_tap(vm: harness.Vm) -> None:
        harness.vmctl.delete_vm(vm_ns=vm.netns, port_id=vm.port_id, host_ns=vm.host.netns)
        harness.vmctl.create_vm(
            vm_ns=vm.netns, port_id=vm.port_id, mac=vm.mac, ips=[vm.ip],
            host_ns=vm.host.netns, mtu=1450,
        )  # fmt: skip

    steps = 0
    started = time.monotonic()
    while time.monotonic() - started < DURATION:
        action = steps % 6
        if action == 0:
            fabric.extra_rule = not fabric.extra_rule
        elif action == 1:
            fabric.members_out = fabric.members_out ^ {vm3.port_id}
        elif action == 2:
            if vm4.port_id in fabric.ports:
                fabric.remove_port(vm4)
            else:
                fabric.add_port(vm4)
        elif action == 3:
            fabric.ports[vm2.port_id]["admin_state_up"] = not fabric.ports[vm2.port_id][
                "admin_state_up"
            ]
        elif action == 4:
            if vm5.port_id in fabric.ports:
                fabric.remove_port(vm5)
            else:
                fabric.add_port(vm5)
        else:
            recreate_tap(vm1)
        fabric.write_state()
        steps += 1
        time.sleep(STEP)

    # end in a state where every VM is wanted and up
    fabric.extra_rule = False
    fabric.members_out = frozenset()
    fabric.ports[vm2.port_id]["admin_state_up"] = True
    for vm in (vm4, vm5):
        if vm.port_id not in fabric.ports:
            fabric.add_port(vm)
    fabric.write_state()
    for host in (host_a, host_b):
        wait_for(f"{host.name} converged", lambda h=host: h.status().returncode == 0, timeout=40)
    fabric.wait_wired(vm1, vm2, vm3, vm4, vm5, vm6)
    fabric.wait_ping(vm1, vm5)
    fabric.wait_ping(vm3, vm2)
    fabric.wait_ping(vm4, vm6)

    report = {}
    for host in (host_a, host_b):
        lines = host.log_file.read_text(errors="replace").splitlines()
        warnings = [line for line in lines if WARNING in line]
        counters = _status(host)["counters"]
        report[host.name] = (len(warnings), counters["integrity_checks"])
        assert warnings == [], "\n".join(warnings[:20])
        assert counters["integrity_repairs"] == 0
        assert host.agent_alive()
    checks = _status(host_a)["counters"]["integrity_checks"] - checks_before
    print(f"{steps} changes in {DURATION:.0f} s, {checks} integrity checks on host-a: {report}")
    # the check really ran while the state changed (at least one per two seconds)
    assert checks >= DURATION / 2
