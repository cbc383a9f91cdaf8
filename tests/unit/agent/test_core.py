"""The reconciler against in-memory drivers: outcomes on the fake host, not call mocks."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from netagent.agent import status
from netagent.agent.core import Reconciler
from netagent.agent.source import SourceUpdate
from netagent.drivers.base import Drift
from tests.unit.agent import fakes
from tests.unit.agent.fakes import HOST, Clock, World, network, port, state

NET1 = network(1)
NET2 = network(2)
P1 = port(1, NET1)
P2 = port(2, NET1)
P3 = port(3, NET2)


def make(world: World, clock: Clock | None = None, **kw: object) -> Reconciler:
    l2, fw, l3 = fakes.drivers(world)
    kw.setdefault("settle", 0.0)
    return Reconciler(HOST, l2, fw, l3, clock=clock or Clock(), **kw)  # type: ignore[arg-type]


def devices_for(*ports: object, base: int = 10) -> dict[str, int]:
    return {p.device_name: base + i for i, p in enumerate(ports)}  # type: ignore[attr-defined]


def started(*ports: object, **kw: object) -> tuple[World, Clock, Reconciler]:
    """A world, a clock and a reconciler (options ``kw``) that sees the devices of
    ``ports``; no desired state yet."""
    world, clock = World(), Clock()
    rec = make(world, clock, **kw)
    rec.set_devices(devices_for(*ports))
    return world, clock, rec


def feed(rec: Reconciler, st: object) -> None:
    rec.on_update(SourceUpdate(st, (), "test"))  # type: ignore[arg-type]


def run(rec: Reconciler) -> bool:
    return rec.step(timeout=0)


def test_nothing_is_touched_before_the_first_complete_state() -> None:
    world, _, rec = started(P1)
    rec.on_device("tap-unknown", 99)
    rec.request_full_resync("test")
    assert run(rec) is False
    assert world.calls == []
    feed(rec, state([NET1], [P1]))
    assert run(rec) is True
    assert set(world.wired) == {P1.id}
    assert rec.is_converged()


def test_first_pass_order_filter_then_network_then_port_then_sweeps() -> None:
    world, _, rec = started(P1, P2)
    feed(rec, state([NET1], [P1, P2]))
    run(rec)
    assert world.names() == [
        "apply_ports",
        "ensure_networks",
        "plug_ports",
        "l2.sweep",
        "firewall.sweep",
        "l3.sweep",
    ]
    assert world.calls[0][1] == tuple(sorted([P1.id, P2.id]))
    assert world.calls[2][1] == tuple(sorted([P1.id, P2.id]))  # one batch
    assert world.unfiltered_wiring == []


def test_changes_coalesce_into_one_pass() -> None:
    world = World()
    rec = make(world)
    rec.set_devices({})
    feed(rec, state([NET1], [P1, P2]))
    run(rec)
    world.calls.clear()
    # a burst: three snapshots and two device events before the worker runs
    feed(rec, state([NET1], [P1]))
    feed(rec, state([NET1], [P1, P2]))
    feed(rec, state([NET1], [P1, dataclasses.replace(P2, admin_state_up=False)]))
    rec.on_device(P1.device_name, 11)
    rec.on_device(P2.device_name, 12)
    assert run(rec) is True
    assert world.names().count("plug_ports") == 1
    assert world.wired[P2.id].port.admin_state_up is False
    assert set(world.wired) == {P1.id, P2.id}
    world.calls.clear()
    assert run(rec) is False
    assert world.calls == []


def test_unchanged_resources_are_not_resent_on_an_incremental_pass() -> None:
    world, _, rec = started(P1, P2, P3)
    feed(rec, state([NET1, NET2], [P1, P2, P3]))
    run(rec)
    world.calls.clear()
    feed(rec, state([NET1, NET2], [P1, P2, P3]))  # equal, but a new snapshot
    run(rec)
    assert world.calls == []
    feed(rec, state([NET1, NET2], [P1, P2, dataclasses.replace(P3, admin_state_up=False)]))
    run(rec)
    assert world.calls == [("apply_ports", (P3.id,)), ("plug_ports", (P3.id,))]


def test_network_change_rewires_its_ports_only() -> None:
    world, _, rec = started(P1, P2, P3)
    feed(rec, state([NET1, NET2], [P1, P2, P3]))
    run(rec)
    world.calls.clear()
    net1 = dataclasses.replace(NET1, mtu=1400)
    p1, p2 = (dataclasses.replace(p) for p in (P1, P2))
    feed(rec, state([net1, NET2], [p1, p2, P3]))
    run(rec)
    assert ("ensure_networks", (NET1.id,)) in world.calls
    plugged = [ids for name, ids in world.calls if name == "plug_ports"]
    assert plugged == [tuple(sorted([P1.id, P2.id]))]
    assert world.wired[P1.id].network.mtu == 1400


def test_failing_port_is_retried_with_backoff_and_others_converge() -> None:
    world, clock, rec = started(P1, P2, retry_initial=1.0, retry_max=60.0)
    world.fail[f"plug_ports:{P2.id}"] = "device busy"
    feed(rec, state([NET1], [P1, P2]))
    run(rec)
    assert set(world.wired) == {P1.id}
    doc = rec.status()
    assert doc["converged"] is False
    p2 = next(p for p in doc["ports"] if p["id"] == P2.id)
    assert "device busy" in p2["error"] and p2["wired"] is False
    # not due yet: nothing is sent
    world.calls.clear()
    clock.advance(0.5)
    run(rec)
    assert world.calls == []
    # due after 1 s: only the failing port is retried, and fails again
    clock.advance(0.6)
    run(rec)
    assert world.calls == [("plug_ports", (P2.id,))]
    # next wait is 2 s
    world.calls.clear()
    clock.advance(1.5)
    run(rec)
    assert world.calls == []
    world.fail.clear()
    clock.advance(0.6)
    run(rec)
    assert world.calls == [("plug_ports", (P2.id,))]
    assert set(world.wired) == {P1.id, P2.id}
    assert rec.is_converged()
    assert rec.status()["counters"]["failures"] == 2


def test_driver_exception_fails_the_batch_and_the_agent_carries_on() -> None:
    world, clock, rec = started(P1, P2)
    world.raise_on.add(P2.id)
    feed(rec, state([NET1], [P1, P2]))
    assert run(rec) is True  # no exception escapes
    assert world.wired == {} and world.filtered == {}
    assert rec.status()["counters"]["driver_errors"] == 1
    world.raise_on.clear()
    clock.advance(1.1)
    run(rec)
    assert set(world.wired) == {P1.id, P2.id}
    assert rec.is_converged()


def test_filter_failure_keeps_the_port_unwired() -> None:
    world, clock, rec = started(P1)
    world.fail[f"apply_ports:{P1.id}"] = "iptables-restore failed"
    feed(rec, state([NET1], [P1]))
    run(rec)
    assert "apply_ports" in world.names() and P1.id not in world.wired
    assert world.unfiltered_wiring == []
    world.fail.clear()
    clock.advance(1.1)
    run(rec)
    assert P1.id in world.wired and world.unfiltered_wiring == []


def test_network_failure_holds_its_ports_and_they_follow_when_it_recovers() -> None:
    world, clock, rec = started(P1, P3)
    world.fail[NET1.id] = "no uplink"
    feed(rec, state([NET1, NET2], [P1, P3]))
    run(rec)
    assert set(world.wired) == {P3.id}
    port1 = next(p for p in rec.status()["ports"] if p["id"] == P1.id)
    assert "not ready" in port1["error"]
    del world.fail[NET1.id]
    clock.advance(1.1)
    run(rec)
    assert set(world.wired) == {P1.id, P3.id}
    assert rec.is_converged()


def test_repeated_failure_triggers_a_full_resync() -> None:
    world, clock, rec = started(P1, P2, failures_before_resync=3)
    world.fail[f"plug_ports:{P2.id}"] = "broken"
    feed(rec, state([NET1], [P1, P2]))
    run(rec)
    full = rec.status()["counters"]["full_syncs"]
    for _ in range(2):
        clock.advance(120)
        run(rec)
    # the third consecutive failure asked for a full resync: the next pass is one
    world.calls.clear()
    run(rec)
    assert rec.status()["counters"]["full_syncs"] == full + 1
    assert "l2.sweep" in world.names()


def test_removing_a_port_unplugs_then_unfilters_and_sweeps_its_network() -> None:
    world, _, rec = started(P1, P2, P3)
    feed(rec, state([NET1, NET2], [P1, P2, P3]))
    run(rec)
    world.calls.clear()
    feed(rec, state([NET1, NET2], [P1, P2]))
    run(rec)
    assert world.calls == [
        ("unplug_ports", (P3.id,)),
        ("remove_ports", (P3.id,)),
        ("l2.sweep", (NET1.id,)),
    ]
    assert set(world.wired) == {P1.id, P2.id}
    assert NET2.id not in world.networks and P3.id not in world.filtered


def test_unplug_failure_keeps_the_filter() -> None:
    world, _, rec = started(P1, P2)
    feed(rec, state([NET1], [P1, P2]))
    run(rec)
    world.fail[f"unplug_ports:{P2.id}"] = "netlink error"
    feed(rec, state([NET1], [P1]))
    run(rec)
    assert P2.id in world.wired and P2.id in world.filtered
    rec.request_full_resync("test")
    run(rec)
    assert P2.id in world.filtered  # a full sweep keeps the filter of a still-wired port
    assert world.unfiltered_wiring == []


def test_port_moved_to_another_host_is_unwired() -> None:
    world, _, rec = started(P1)
    feed(rec, state([NET1], [P1]))
    run(rec)
    feed(rec, state([NET1], [dataclasses.replace(P1, host="host-b")]))
    run(rec)
    assert world.wired == {} and world.filtered == {}


def test_port_waits_for_its_device_then_follows_it() -> None:
    world = World()
    clock = Clock()
    rec = make(world, clock)
    rec.set_devices({})
    feed(rec, state([NET1], [P1]))
    run(rec)
    assert world.wired == {}
    assert NET1.id in world.networks  # networks are ready before the VM boots
    doc = rec.status()
    assert doc["converged"] is True  # waiting for a device is not a failure
    assert doc["ports"][0]["waiting_for_device"] is True
    assert doc["counters"]["pending_retries"] == 0
    rec.on_device(P1.device_name, 42)
    run(rec)
    assert P1.id in world.wired and P1.id in world.filtered
    rec.on_device(P1.device_name, None)
    run(rec)
    assert P1.id not in world.wired and P1.id not in world.filtered
    assert rec.is_converged()


def test_device_recreated_under_the_same_name_is_wired_again() -> None:
    world = World()
    rec = make(world)
    rec.set_devices({P1.device_name: 5})
    feed(rec, state([NET1], [P1]))
    run(rec)
    world.calls.clear()
    rec.on_device(P1.device_name, None)
    rec.on_device(P1.device_name, 6)  # coalesced: one pass sees the new device
    run(rec)
    assert ("plug_ports", (P1.id,)) in world.calls
    assert "unplug_ports" not in world.names()


def test_switch_port_change_reported_by_the_driver_plugs_the_port_again() -> None:
    world, _, rec = started(P1, P2)
    feed(rec, state([NET1], [P1, P2]))
    run(rec)
    world.calls.clear()
    rec.on_port_changed(P2.id)  # e.g. os-vif re-added its OVS port: new ofport
    rec.on_port_changed("not-a-local-port")
    assert run(rec)
    assert world.calls == [("plug_ports", (P2.id,))]
    world.calls.clear()
    run(rec)  # reported once, plugged once
    assert world.calls == []


def test_foreign_devices_are_ignored() -> None:
    world = World()
    rec = make(world)
    rec.set_devices({})
    feed(rec, state([NET1], [P1]))
    run(rec)
    world.calls.clear()
    rec.on_device("tapdeadbeef00", 7)
    assert run(rec) is False
    assert world.calls == []


def test_restart_adopts_existing_state_and_sweeps_only_the_unwanted() -> None:
    world = World()
    first = make(world)
    first.set_devices(devices_for(P1, P3))
    feed(first, state([NET1, NET2], [P1, P3]))
    run(first)
    created = list(world.created)
    # the agent dies; the data plane stays. The new state no longer has P3/NET2.
    world.calls.clear()
    second = make(world)
    second.set_devices(devices_for(P1, P3))
    assert run(second) is False and world.calls == []
    feed(second, state([NET1], [P1]))
    run(second)
    assert world.created == created  # nothing recreated: adopted
    assert set(world.wired) == {P1.id}
    assert set(world.networks) == {NET1.id}
    assert world.deleted == [f"network {NET2.id}"]
    assert P3.id not in world.filtered


def test_full_resync_resends_everything_and_sweeps() -> None:
    world, _, rec = started(P1)
    feed(rec, state([NET1], [P1]))
    run(rec)
    world.networks["stale"] = world.networks[NET1.id]  # something netagent owns, unwanted
    world.calls.clear()
    rec.request_full_resync("SIGHUP")
    run(rec)
    assert world.names() == [
        "apply_ports",
        "ensure_networks",
        "plug_ports",
        "l2.sweep",
        "firewall.sweep",
        "l3.sweep",
    ]
    assert "stale" not in world.networks


def test_periodic_resync() -> None:
    world, clock, rec = started(P1, resync_interval=30.0)
    feed(rec, state([NET1], [P1]))
    run(rec)
    world.calls.clear()
    clock.advance(10)
    run(rec)
    assert world.calls == []
    clock.advance(25)
    run(rec)
    assert "l2.sweep" in world.names()
    assert rec.status()["counters"]["full_syncs"] == 2


def test_driver_initialisation_failure_is_retried_before_anything_else() -> None:
    world = World()
    clock = Clock()
    l2, fw, l3 = fakes.drivers(world)
    l2.init_error = RuntimeError("no bridge module")
    rec = Reconciler(HOST, l2, fw, l3, clock=clock, settle=0.0)
    rec.set_devices(devices_for(P1))
    feed(rec, state([NET1], [P1]))
    assert rec.step(timeout=0) is False
    assert world.calls == []
    l2.init_error = None
    clock.advance(1.1)
    assert rec.step(timeout=0) is True
    assert l2.initialized == 1 and P1.id in world.wired


def test_tunnel_peers_and_remote_ports_reach_the_network_plan() -> None:
    world = World()
    rec = make(world)
    remote = port(9, NET1, host="host-b")
    unbound = port(8, NET1, host=None)
    rec.set_devices(devices_for(P1))
    st = state(
        [NET1],
        [P1, remote, unbound],
        agents=fakes.agents(host_a="198.18.0.1", host_b="198.18.0.2"),
    )
    feed(rec, st)
    run(rec)
    plan = world.networks[NET1.id]
    assert {h: str(ip) for h, ip in plan.tunnel_peers.items()} == {"host-b": "198.18.0.2"}
    assert [(r.mac_address, str(r.tunnel_ip)) for r in plan.remote_ports] == [
        (remote.mac_address, "198.18.0.2")
    ]
    # the remote port moves: the network's FDB/ARP plan is re-sent, no port is
    world.calls.clear()
    moved = dataclasses.replace(remote, mac_address="fa:16:3e:00:00:99")
    feed(rec, dataclasses.replace(st, ports={**st.ports, moved.id: moved}))
    run(rec)
    assert world.calls == [("ensure_networks", (NET1.id,))]


def test_router_lifecycle() -> None:
    from netagent.model import RouterPort  # noqa: PLC0415

    world = World()
    rec = make(world)
    rport = dataclasses.replace(port(5, NET1), device_owner="network:router_interface")
    router = fakes.Router(id=fakes.uid(7, 3), interfaces=(RouterPort(rport),))
    rec.set_devices({})
    feed(rec, state([NET1], [rport], routers=[router]))
    run(rec)
    assert router.id in world.routers
    feed(rec, state([NET1], []))
    run(rec)
    assert world.routers == {}


def test_worker_thread_converges_and_stops() -> None:
    world = World()
    rec = make(world, Clock(), settle=0.05)
    rec.set_devices({})
    rec.start()
    try:
        feed(rec, state([NET1], [P1, P2]))
        assert rec.wait_converged(5)
        for i in range(20):  # a burst of events while the worker runs
            rec.on_device(P1.device_name, 100 + i)
            rec.on_device(P2.device_name, 200 + i)
        time.sleep(0.01)
        assert rec.wait_converged(5)
        assert set(world.wired) == {P1.id, P2.id}
        assert world.wired[P1.id] is not None
        plugs = world.names().count("plug_ports")
        assert plugs < 20  # coalesced, not one pass per event
    finally:
        rec.stop(timeout=5)
    assert not any(t.name == "reconciler" for t in threading.enumerate())


@pytest.mark.parametrize("bad", [None, "not an outcome"])
def test_driver_returning_garbage_counts_as_failure(bad: object) -> None:
    world = World()
    l2, fw, l3 = fakes.drivers(world)
    l2.plug_ports = lambda plans: bad  # type: ignore[method-assign,assignment,return-value]
    rec = Reconciler(HOST, l2, fw, l3, clock=Clock(), settle=0.0)
    rec.set_devices(devices_for(P1))
    feed(rec, state([NET1], [P1]))
    run(rec)
    assert rec.status()["ports"][0]["error"].startswith("plug:")


def test_full_sweep_passes_the_wanted_port_devices_to_l2() -> None:
    # A port deleted while the agent was down must not stay wired: the L2 sweep gets the
    # device names that may stay, and only those.
    world, _, rec = started(P1, P2)
    feed(rec, state([NET1], [P1, P2]))
    run(rec)
    assert world.swept_devices == {P1.device_name, P2.device_name}


def test_integrity_check_runs_on_its_timer_and_before_each_pass() -> None:
    world = World()
    clock = Clock()
    l2, fw, l3 = fakes.drivers(world)
    rec = Reconciler(HOST, l2, fw, l3, clock=clock, settle=0.0, integrity_interval=2.0)
    rec.set_devices(devices_for(P1))
    feed(rec, state([NET1], [P1]))
    assert run(rec) is True
    assert fw.integrity_checks == 0  # nothing applied before the first pass
    assert rec.step(timeout=0) is False
    assert fw.integrity_checks == 0  # not due yet
    clock.advance(2.0)
    fw.tampered = [3]
    assert rec.step(timeout=0) is False  # no pass, but the check ran and repaired
    assert fw.integrity_checks == 1
    counters = rec.status()["counters"]
    assert counters["integrity_checks"] == 1 and counters["integrity_repairs"] == 3
    feed(rec, state([NET1], [P1, P2]))
    assert run(rec) is True
    assert fw.integrity_checks == 2  # at the start of the pass
    assert rec._next_timer() == pytest.approx(2.0)  # the pass restarted the timer


def test_integrity_timer_disabled_with_zero() -> None:
    world = World()
    clock = Clock()
    l2, fw, l3 = fakes.drivers(world)
    rec = Reconciler(HOST, l2, fw, l3, clock=clock, settle=0.0, integrity_interval=0.0)
    feed(rec, state([NET1], [P1]))
    run(rec)
    clock.advance(100.0)  # well past 2 s, before the periodic resync
    assert rec.step(timeout=0) is False
    assert fw.integrity_checks == 0
    rec.request_full_resync("test")
    assert run(rec) is True
    assert fw.integrity_checks == 1  # the pass still checks first


def test_integrity_check_covers_every_driver_and_survives_one_failing() -> None:
    world = World()
    clock = Clock()
    l2, fw, l3 = fakes.drivers(world)
    calls: list[str] = []

    def l2_check() -> int:
        calls.append("l2")
        return 2

    def l3_check() -> int:
        calls.append("l3")
        raise RuntimeError("boom")

    l2.check_integrity = l2_check  # type: ignore[method-assign]
    l3.check_integrity = l3_check  # type: ignore[method-assign]
    rec = Reconciler(HOST, l2, fw, l3, clock=clock, settle=0.0, integrity_interval=2.0)
    rec.set_devices(devices_for(P1))
    feed(rec, state([NET1], [P1]))
    assert run(rec) is True
    assert rec.step(timeout=0) is False  # arms the timer
    clock.advance(2.0)
    fw.tampered = [1]
    assert rec.step(timeout=0) is False
    assert calls == ["l2", "l3"] and fw.integrity_checks == 1
    assert rec.status()["counters"]["integrity_repairs"] == 3


def test_noop_l3_reports_routers_not_applied_and_never_retries() -> None:
    from netagent.drivers.noop import NoopL3Driver  # noqa: PLC0415
    from netagent.model import RouterPort  # noqa: PLC0415

    world = World()
    l2, fw, _ = fakes.drivers(world)
    rec = Reconciler(HOST, l2, fw, NoopL3Driver(None), clock=Clock(), settle=0.0)  # type: ignore[arg-type]
    rport = dataclasses.replace(port(5, NET1), device_owner="network:router_interface")
    router = fakes.Router(id=fakes.uid(7, 3), interfaces=(RouterPort(rport),))
    rec.set_devices({})
    feed(rec, state([NET1], [rport], routers=[router]))
    run(rec)
    doc = rec.status()
    assert doc["routers"] == [
        {"id": router.id, "applied": False, "ready": False, "error": status.NOT_APPLIED}
    ]
    assert doc["counters"]["pending_retries"] == 0
    assert doc["counters"]["failures"] == 0


def test_drift_found_between_passes_is_converged_again_by_the_next_pass() -> None:
    world = World()
    clock = Clock()
    l2, fw, l3 = fakes.drivers(world)
    rec = Reconciler(HOST, l2, fw, l3, clock=clock, settle=0.0, integrity_interval=2.0)
    rec.set_devices(devices_for(P1, P2))
    feed(rec, state([NET1], [P1, P2]))
    assert run(rec) is True
    assert rec.step(timeout=0) is False  # arms the timer
    reports = [Drift(frozenset({NET1.id}), frozenset({P1.id}), ("bridge gone", "tap out"))]
    l2.find_drift = lambda: reports.pop() if reports else Drift()  # type: ignore[method-assign]
    world.calls.clear()
    clock.advance(2.0)
    assert rec.step(timeout=0) is False  # the check ran and marked them
    assert not rec.is_converged()
    assert run(rec) is True  # unchanged plans, sent again: only what drifted
    assert world.calls == [("ensure_networks", (NET1.id,)), ("plug_ports", (P1.id,))]
    assert rec.is_converged()
    doc = rec.status()
    assert doc["counters"]["integrity_repairs"] == 2
    assert doc["last_integrity_repair"]["found"] == ["bridge gone", "tap out"]
    world.calls.clear()
    assert run(rec) is False and world.calls == []  # reported once, converged once


def test_drift_found_at_the_start_of_a_pass_joins_that_pass() -> None:
    world = World()
    l2, fw, l3 = fakes.drivers(world)
    rec = Reconciler(HOST, l2, fw, l3, settle=0.0)
    rec.set_devices(devices_for(P1, P2))
    feed(rec, state([NET1], [P1, P2]))
    assert run(rec) is True
    reports = [Drift(ports=frozenset({P2.id}), found=("tap down",))]
    l2.find_drift = lambda: reports.pop() if reports else Drift()  # type: ignore[method-assign]
    world.calls.clear()
    rec._dirty.mark([("port", P1.id)])  # a pass for P1, whose plan did not change
    assert run(rec) is True
    assert world.calls == [("plug_ports", (P2.id,))]


def test_every_pass_ends_with_end_pass_even_when_a_driver_batch_raises() -> None:
    """Drivers batch writes up to ``end_pass`` (openvswitch: isolation, pending flows):
    the agent calls it after each pass, also one whose driver call raised, and a
    failing ``end_pass`` is counted and does not stop the agent."""
    world = World()
    l2, fw, l3 = fakes.drivers(world)
    ends: list[str] = []
    l2.end_pass = lambda: ends.append("l2")  # type: ignore[method-assign]
    rec = Reconciler(HOST, l2, fw, l3, clock=Clock(), settle=0.0)  # type: ignore[arg-type]
    rec.set_devices(devices_for(P1))
    world.raise_on = {P1.id}
    feed(rec, state([NET1], [P1]))
    run(rec)
    assert ends == ["l2"]
    assert P1.id not in world.wired

    def broken() -> None:
        raise RuntimeError("bundle refused")

    l2.end_pass = broken  # type: ignore[method-assign]
    world.raise_on = set()
    rec.request_full_resync("test")
    assert run(rec) is True
    assert P1.id in world.wired
    assert rec._converger.driver_errors >= 2
