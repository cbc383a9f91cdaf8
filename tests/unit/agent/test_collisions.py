"""Derived kernel names (bridge, VXLAN device, tap and filter chains) name one object each.

Issue 17 item 3: two networks whose ids share their first 11 characters shared one bridge,
and a port sharing its tap prefix with a wired port unwired it. The newcomer is refused
instead; the holder (what is applied), else the lowest id, keeps the name.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging

import pytest

from netagent.agent import planning
from netagent.agent.core import Reconciler
from netagent.agent.source import SourceUpdate
from netagent.model import AllowedAddressPair, DesiredState, Network, Port
from tests.unit.agent import fakes
from tests.unit.agent.fakes import HOST, World, network, port, state

# share "aaaaaaaa-aa" (brq/nvl-/tap names keep 11 characters)
LOW = "aaaaaaaa-aa00-4000-8000-000000000001"
HIGH = "aaaaaaaa-aa99-4000-8000-000000000002"


def make(world: World) -> Reconciler:
    l2, fw, l3 = fakes.drivers(world)
    return Reconciler(HOST, l2, fw, l3, settle=0.0, clock=fakes.Clock())  # type: ignore[arg-type]


def feed(rec: Reconciler, st: DesiredState) -> None:
    rec.on_update(SourceUpdate(st, (), "test"))
    rec.step(timeout=0)


def net(network_id: str, vni: int) -> Network:
    return dataclasses.replace(network(1), id=network_id, segmentation_id=vni)


def on(n: int, network_obj: Network, port_id: str | None = None) -> Port:
    p = port(n, network_obj)
    return p if port_id is None else dataclasses.replace(p, id=port_id)


def devices(*ports: Port) -> dict[str, int]:
    return {p.device_name: 10 + i for i, p in enumerate(ports)}


def errors(rec: Reconciler) -> dict[str, str | None]:
    doc = rec.status()
    return {e["id"]: e["error"] for e in doc["ports"] + doc["networks"]}


@pytest.mark.parametrize("listed_first", ["holder", "newcomer"])
def test_network_sharing_the_bridge_name_is_refused_the_holder_stays(listed_first: str) -> None:
    world = World()
    rec = make(world)
    holder_net, newcomer_net = net(HIGH, 1001), net(LOW, 1002)
    vm1, vm2 = on(1, holder_net), on(2, newcomer_net)
    rec.set_devices(devices(vm1, vm2))
    feed(rec, state([holder_net], [vm1]))
    assert set(world.networks) == {HIGH} and set(world.wired) == {vm1.id}

    nets = [holder_net, newcomer_net]
    feed(rec, state(nets if listed_first == "holder" else nets[::-1], [vm2, vm1]))
    rec.request_full_resync("test")
    rec.step(timeout=0)
    # LOW sorts first, but HIGH holds brq-aaaaaaaa-aa: nothing of LOW reaches the driver
    assert set(world.networks) == {HIGH} and set(world.wired) == {vm1.id}
    assert "network " + LOW not in world.created
    found = errors(rec)
    assert found[HIGH] is None and found[vm1.id] is None
    assert found[LOW] == f"bridge brqaaaaaaaa-aa is already used by network {HIGH}"
    assert found[vm2.id] == f"network {LOW} refused: {found[LOW]}"
    shapes = {frozenset(n) for n in rec.status()["networks"]}
    assert len(shapes) == 1  # a refused network is shown like any other


def test_same_first_snapshot_lowest_id_wins_every_time() -> None:
    a, b = net(HIGH, 1001), net(LOW, 1002)
    for order in ([a, b], [b, a]):
        plan = planning.compute(state(order, [on(1, a), on(2, b)]), HOST, {})
        assert set(plan.networks) == {LOW} and set(plan.refused_networks) == {HIGH}


def test_two_networks_with_one_vni_share_no_vxlan_device() -> None:
    a, b = net(HIGH, 1001), dataclasses.replace(network(2), segmentation_id=1001)
    plan = planning.compute(state([a, b], [on(1, a), on(2, b)]), HOST, {})
    assert len(plan.networks) == 1
    (why,) = plan.refused_networks.values()
    assert why.startswith("VXLAN device nvx-1001 is already used by network ")


@pytest.mark.parametrize("listed_first", ["holder", "newcomer"])
def test_port_sharing_the_tap_name_is_refused_the_holder_stays_wired(listed_first: str) -> None:
    world = World()
    rec = make(world)
    n = network(1)
    holder, newcomer = on(1, n, HIGH), on(2, n, LOW)
    assert holder.device_name == newcomer.device_name
    rec.set_devices(devices(holder))
    feed(rec, state([n], [holder]))
    assert set(world.wired) == {HIGH}
    world.calls.clear()

    ports = [holder, newcomer] if listed_first == "holder" else [newcomer, holder]
    feed(rec, state([n], ports))
    rec.request_full_resync("test")
    rec.step(timeout=0)
    assert set(world.wired) == {HIGH} and set(world.filtered) == {HIGH}
    assert not [c for c in world.calls if c[0] in ("unplug_ports", "remove_ports")]
    assert all(LOW not in c[1] for c in world.calls)
    found = errors(rec)
    assert found[HIGH] is None
    assert found[LOW] == f"device {holder.device_name} is already used by port {HIGH}"


def test_name_passes_to_the_newcomer_once_the_holder_is_removed() -> None:
    world = World()
    rec = make(world)
    n = network(1)
    holder, newcomer = on(1, n, HIGH), on(2, n, LOW)
    rec.set_devices(devices(holder))
    feed(rec, state([n], [holder]))
    feed(rec, state([n], [holder, newcomer]))
    assert set(world.wired) == {HIGH}

    feed(rec, state([n], [newcomer]))
    # unplugged and unfiltered first, then the newcomer is wired, in the same pass
    assert set(world.wired) == {LOW} and set(world.filtered) == {LOW}
    assert errors(rec)[LOW] is None


def test_allowed_address_pair_with_another_ports_mac_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()
    rec = make(world)
    n = network(1)
    vm1 = on(1, n)
    pair = AllowedAddressPair(ipaddress.ip_network("192.0.2.77/32"), vm1.mac_address)
    vm2 = dataclasses.replace(on(2, n), allowed_address_pairs=(pair,))
    rec.set_devices(devices(vm1, vm2))
    caplog.set_level(logging.WARNING, "netagent.agent.core")
    feed(rec, state([n], [vm1, vm2]))
    feed(rec, state([n], [vm1, vm2, on(3, n)]))
    warned = [r.getMessage() for r in caplog.records if "allowed address pair" in r.getMessage()]
    assert warned == [
        f"Port {vm2.id} has an allowed address pair with MAC {vm1.mac_address}, the MAC of "
        f"port {vm1.id} on the same network: it may take over that port's traffic"
    ]
    assert vm2.id in world.filtered  # still applied: Neutron accepts it
