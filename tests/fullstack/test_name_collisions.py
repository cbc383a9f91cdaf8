"""Issue 17 item 3 end to end: an object deriving a kernel name another one holds is
refused, and the holder keeps working (real agent, real bridge, real pings).

Before the fix a network whose id shared its first 11 characters with another's was put
on the same bridge (full L2 between the two), and a port sharing a wired port's tap prefix
unwired it.
"""

from __future__ import annotations

import json
import signal
import uuid
from typing import Any

from tests.fullstack import harness
from tests.fullstack.harness import Fabric, Host, Vm, can_ping, links, wait_for


def _status(host: harness.Host) -> dict[str, Any]:
    out = harness.run(
        str(harness.BIN / "netagent-status"), "--state-path", str(host.state_path), "--json"
    )
    return dict(json.loads(out.stdout))


def _errors(host: harness.Host) -> dict[str, Any]:
    try:
        doc = _status(host)
    except Exception:
        return {}
    return {e["id"]: e.get("error") for e in doc.get("ports", []) + doc.get("networks", [])}


def _twin(resource_id: str) -> str:
    """Another id with the same first 11 characters."""
    return resource_id[:11] + str(uuid.uuid4())[11:]


def _one_host_two_vms(fabric: Fabric) -> tuple[Host, str, Vm, Vm]:
    """One host running its agent, one network, two VMs on it that ping each other."""
    host = fabric.add_host("host-a", "198.18.0.1")
    net = fabric.add_network(1001)
    vm1 = fabric.add_vm("vm1", host, net, "192.0.2.10/24")
    vm2 = fabric.add_vm("vm2", host, net, "192.0.2.11/24")
    fabric.start_agents()
    fabric.wait_ping(vm1, vm2)
    return host, net, vm1, vm2


def test_network_with_a_colliding_bridge_name_is_refused(fabric: Fabric) -> None:
    host, net1, vm1, vm2 = _one_host_two_vms(fabric)

    net2 = _twin(net1)
    fabric.networks[net2] = {**fabric.networks[net1], "id": net2, "name": "twin"}
    fabric.networks[net2]["provider:segmentation_id"] = 1002
    vm3 = fabric.add_vm("vm3", host, net2, "192.0.2.12/24")
    fabric.write_state()
    wait_for(
        "the twin network refused in status",
        lambda: (_errors(host).get(net2) or "").startswith("bridge brq"),
        timeout=20,
    )
    host.process.send_signal(signal.SIGHUP)  # a full resync changes nothing
    wait_for("converged after SIGHUP", lambda: _errors(host).get(vm1.port_id, 1) is None)

    errors = _errors(host)
    assert errors[net2] == f"bridge brq{net1[:11]} is already used by network {net1}"
    assert errors[vm3.port_id] == f"network {net2} refused: {errors[net2]}"
    devs = links(host.netns)
    assert "master" not in devs[vm3.tap]  # on no bridge
    assert "nvx-1002" not in devs
    assert {n for n, d in devs.items() if d.get("master") == f"brq{net1[:11]}"} == {
        vm1.tap,
        vm2.tap,
        "nvx-1001",
    }
    assert not can_ping(vm3.netns, vm1.address)
    assert not can_ping(vm1.netns, vm3.address)
    assert can_ping(vm1.netns, vm2.address)


def test_port_with_a_colliding_tap_name_is_refused_the_holder_stays_wired(
    fabric: Fabric,
) -> None:
    host, net, vm1, vm2 = _one_host_two_vms(fabric)

    twin = _twin(vm1.port_id)
    entry = {
        **fabric.ports[vm1.port_id],
        "id": twin,
        "mac_address": "fa:16:3e:00:99:99",
        "fixed_ips": [{"subnet_id": fabric._subnet_id(net), "ip_address": "192.0.2.99"}],
    }
    # listed first: the file order must not matter against a wired holder
    fabric.ports = {twin: entry, **fabric.ports}
    fabric.write_state()

    def refused() -> list[str]:
        # the file source refuses it before planning: it shows among the source errors
        try:
            lines = _status(host)["source_errors"]
        except Exception:
            return []
        return [e for e in lines if f"port {twin}:" in e]

    wait_for("the twin port refused in status", lambda: bool(refused()))
    host.process.send_signal(signal.SIGHUP)
    wait_for("converged after SIGHUP", lambda: _errors(host).get(vm1.port_id, 1) is None)

    assert refused() == [f"port {twin}: field id: already used by port {vm1.port_id}"]
    assert fabric.wired(vm1)
    # the holder's traffic still passes its own filter (the twin's would drop vm1's MAC)
    assert can_ping(vm1.netns, vm2.address)
    assert harness.ping(vm2.netns, vm1.address, count=5, interval=0.1).returncode == 0
    log = host.log_file.read_text(errors="replace")
    assert "busy" not in log.lower()
