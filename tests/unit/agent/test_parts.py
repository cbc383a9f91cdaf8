"""Backoff, dirty set, planning and the link monitor's bookkeeping."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import pytest

from netagent.agent import planning
from netagent.agent.backoff import Backoff
from netagent.agent.dirty import DirtySet
from netagent.linux import link_monitor
from netagent.privileged import link_events
from tests.unit.agent.fakes import HOST, Clock, network, port, state

NET1 = network(1)
P1 = port(1, NET1)
P2 = port(2, NET1)
REMOTE = port(3, NET1, host="host-b")


def test_backoff_doubles_up_to_the_maximum_and_resets() -> None:
    clock = Clock()
    backoff: Backoff[str] = Backoff(1.0, 5.0, clock)
    delays = []
    for _ in range(5):
        backoff.failed("x", "why")
        delays.append(backoff.next_due() - clock.now)  # type: ignore[operator]
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff.due() == set()
    clock.advance(5)
    assert backoff.due() == {"x"} and backoff.failures("x") == 5
    backoff.succeeded("x")
    assert backoff.failed("x", "again") == 1 and backoff.reason("x") == "again"


def test_dirty_set_coalesces_and_stops() -> None:
    dirty = DirtySet()
    assert dirty.take(timeout=0) == dirty.take(timeout=0)  # empty batches
    dirty.mark([("port", "a"), ("port", "a"), ("network", "n")])
    dirty.request_full("one")
    dirty.request_full("two")
    batch = dirty.take(timeout=0)
    assert batch is not None
    assert batch.keys == {("port", "a"), ("network", "n")}
    assert batch.full and batch.reasons == ("one", "two")
    assert not dirty.pending()
    results: list[Any] = []
    waiter = threading.Thread(target=lambda: results.append(dirty.take(timeout=10)))
    waiter.start()
    time.sleep(0.05)
    dirty.stop()
    waiter.join(2)
    assert results == [None]


def test_dirty_set_settle_collects_a_burst() -> None:
    dirty = DirtySet()
    dirty.mark([("port", "a")])

    def later() -> None:
        time.sleep(0.02)
        dirty.mark([("port", "b")])

    threading.Thread(target=later).start()
    batch = dirty.take(timeout=1, settle=0.2)
    assert batch is not None and batch.keys == {("port", "a"), ("port", "b")}


def test_plan_only_ports_with_devices_and_their_networks() -> None:
    st = state([NET1], [P1, P2, REMOTE])
    plan = planning.compute(st, HOST, {P1.device_name: 4})
    assert set(plan.port_plans) == {P1.id}
    assert set(plan.ports) == {P1.id, P2.id}
    assert plan.waiting_for_device(P2.id) and not plan.waiting_for_device(P1.id)
    assert set(plan.networks) == {NET1.id}


def test_plan_reports_a_port_whose_network_is_missing() -> None:
    orphan = port(4, network(9))
    plan = planning.compute(state([NET1], [orphan]), HOST, {orphan.device_name: 1})
    assert "not in the desired state" in plan.port_errors[orphan.id]
    assert not plan.waiting_for_device(orphan.id)


def test_changed_keys() -> None:
    old = state([NET1], [P1, P2, REMOTE])
    assert planning.changed_keys(old, old, HOST) == set()
    new = state([NET1], [P1, dataclasses.replace(P2, admin_state_up=False), REMOTE])
    assert planning.changed_keys(old, new, HOST) == {("port", P2.id), ("network", NET1.id)}
    moved = dataclasses.replace(REMOTE, mac_address="fa:16:3e:aa:aa:aa")
    keys = planning.changed_keys(old, state([NET1], [P1, P2, moved]), HOST)
    assert keys == {("network", NET1.id)}
    mtu = dataclasses.replace(NET1, mtu=1300)
    keys = planning.changed_keys(old, state([mtu], [P1, P2, REMOTE]), HOST)
    assert keys == {("network", NET1.id), ("port", P1.id), ("port", P2.id)}


class FakeEventSocket:
    """Stands in for the netlink socket: events are queued by the test."""

    queue: list[Any] = []

    def __init__(self, namespace: str | None = None) -> None:
        self.cond = threading.Condition()
        FakeEventSocket.instance = self  # type: ignore[attr-defined]
        self.closed = False

    def push(self, item: Any) -> None:
        with self.cond:
            FakeEventSocket.queue.append(item)
            self.cond.notify_all()

    def read(self, timeout: float | None = None) -> list[link_events.LinkEvent]:
        with self.cond:
            self.cond.wait_for(lambda: FakeEventSocket.queue or self.closed, 0.1)
            items, FakeEventSocket.queue[:] = list(FakeEventSocket.queue), []
        out = []
        for item in items:
            if isinstance(item, Exception):
                raise item
            out.append(item)
        return out

    def interrupt(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def close(self) -> None:
        self.closed = True


def test_link_monitor_bookkeeping(monkeypatch: pytest.MonkeyPatch) -> None:
    links = {1: "lo", 5: "tapaaaaaaaa-aa"}
    monkeypatch.setattr(link_events, "LinkEventSocket", FakeEventSocket)
    monkeypatch.setattr(
        link_events,
        "dump_links",
        lambda ns=None: [link_events.LinkEvent(True, i, n) for i, n in links.items()],
    )
    seen: list[tuple[str, int | None]] = []
    done = threading.Event()

    def callback(name: str, ifindex: int | None) -> None:
        seen.append((name, ifindex))
        if name == "tapdone":
            done.set()

    monitor = link_monitor.LinkMonitor(name_filter=lambda n: n.startswith("tap"))
    assert monitor.start(callback) == {"tapaaaaaaaa-aa": 5}
    sock = FakeEventSocket.instance  # type: ignore[attr-defined]
    try:
        sock.push(link_events.LinkEvent(True, 5, "tapaaaaaaaa-aa"))  # a flag change: nothing
        sock.push(link_events.LinkEvent(True, 6, "tapbbbbbbbb-bb"))  # new
        sock.push(link_events.LinkEvent(True, 6, "tapcccccccc-cc"))  # renamed
        sock.push(link_events.LinkEvent(True, 7, "eth9"))  # filtered out
        sock.push(link_events.LinkEvent(False, 5, "tapaaaaaaaa-aa"))  # deleted
        for _ in range(500):
            if len(seen) == 4:
                break
            time.sleep(0.01)
        # notifications lost: the monitor dumps again and reports the difference
        links.clear()
        links.update({1: "lo", 6: "tapcccccccc-cc", 8: "tapdone"})
        sock.push(link_events.LinkEventsLostError(None))
        assert done.wait(5)
    finally:
        monitor.stop()
    assert seen == [
        ("tapbbbbbbbb-bb", 6),
        ("tapbbbbbbbb-bb", None),
        ("tapcccccccc-cc", 6),
        ("tapaaaaaaaa-aa", None),
        ("tapdone", 8),
    ]
    assert monitor.devices() == {"tapcccccccc-cc": 6, "tapdone": 8}
