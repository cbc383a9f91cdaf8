"""The Neutron source end to end over fake:// against the fake server."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from oslo_config import cfg

from netagent.agent.source import SourceUpdate
from netagent.model import EtherType
from netagent.rpc import consumers
from netagent.sources.neutron import NeutronSource
from tests.fullstack.fake_neutron import FakeNeutron
from tests.unit.rpc.helpers import details, port_id, wait_for

SG = "5e0f5e0f-3333-4c57-9a57-0d5f8b5d2e11"
REMOTE_SG = "6e0f6e0f-4444-4c57-9a57-0d5f8b5d2e11"


class FakeMonitor:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.callback: Callable[[str, int | None], None] | None = None

    def start(self, callback: Callable[[str, int | None], None]) -> dict[str, int]:
        self.callback = callback
        return {name: i for i, name in enumerate(self.names, 10)}

    def stop(self) -> None:
        pass


class Core:
    """Stands in for the reconciler: keeps updates, converges whatever it gets."""

    def __init__(self) -> None:
        self.updates: list[SourceUpdate] = []
        #: index of the update the status describes (None: the last one)
        self.applied: int | None = None

    def on_update(self, update: SourceUpdate) -> None:
        self.updates.append(update)

    def status(self) -> dict[str, Any]:
        if not self.updates:
            return {"ports": []}
        update = self.updates[-1 if self.applied is None else self.applied]
        ports = update.state.ports.values()
        return {
            "origin": update.origin,
            "ports": [{"id": p.id, "converged": True} for p in ports if p.host == "cmp1"],
        }


def tap(pid: str) -> str:
    return "tap" + pid[:11]


@pytest.fixture
def make_source(
    conf: cfg.ConfigOpts, transport: Any, fake: FakeNeutron
) -> Iterator[Callable[..., tuple[NeutronSource, Core, FakeMonitor]]]:
    started: list[NeutronSource] = []

    def make(ports: int, step: int = 20) -> tuple[NeutronSource, Core, FakeMonitor]:
        conf.set_override("rpc_resources_processing_step", step, group="neutron")
        for n in range(ports):
            fake.ports[port_id(n)] = details(port_id(n))
            fake.security_groups[port_id(n)] = [SG]
        core = Core()
        monitor = FakeMonitor([tap(port_id(n)) for n in range(ports)])
        source = NeutronSource(conf, transport, monitor, core.status)
        source.start(core.on_update)
        started.append(source)
        return source, core, monitor

    yield make
    for source in started:
        source.stop()


def test_bulk_details_by_prefix_then_devices_up(make_source: Any, fake: FakeNeutron) -> None:
    _source, core, _ = make_source(5, step=2)
    wanted = {port_id(n) for n in range(5)}
    wait_for("devices up", lambda: fake.devices_up() == wanted)
    calls = fake.calls_of("get_devices_details_list_and_failed_devices")
    assert [len(c["devices"]) for c in calls] == [2, 2, 1]
    assert {d for c in calls for d in c["devices"]} == {p[:11] for p in wanted}
    assert all(c["host"] == "cmp1" and c["agent_id"] == "netagent-cmp1" for c in calls)
    updates = fake.calls_of("update_device_list")
    assert all(len(u["devices_up"]) + len(u["devices_down"]) <= 2 for u in updates)
    state = core.updates[-1].state
    assert set(state.ports) == wanted
    assert all(p.security_groups == (SG,) for p in state.ports.values())
    (network,) = state.networks.values()
    assert (network.network_type, network.segmentation_id, network.mtu) == ("vxlan", 101, 1450)
    sg_calls = fake.calls_of("security_group_info_for_devices")
    assert all(c["call_version"] == "1.3" and len(c["devices"]) <= 2 for c in sg_calls)


def test_malformed_entry_is_reported_down_others_up(
    make_source: Any, fake: FakeNeutron, caplog: pytest.LogCaptureFixture
) -> None:
    bad = port_id(1)
    fake.override[bad[:11]] = details(bad, mac_address="not-a-mac", device=bad[:11])
    with caplog.at_level(logging.WARNING):
        source, core, _ = make_source(3)
        wait_for("good ports up", lambda: fake.devices_up() == {port_id(0), port_id(2)})
        wait_for("bad port down", lambda: bad[:11] in fake.devices_down())
        before = len(fake.calls_of("get_devices_details_list_and_failed_devices"))
        source.request_full("test")
        wait_for(
            "second pass",
            lambda: len(fake.calls_of("get_devices_details_list_and_failed_devices")) > before,
        )
        wait_for("pass done", lambda: not source.awaiting_up())
    assert bad not in core.updates[-1].state.ports
    assert len([r for r in caplog.records if "not-a-mac" in r.getMessage()]) == 1
    assert any("not-a-mac" in e for e in core.updates[-1].errors)


def test_entry_without_port_id_is_skipped(make_source: Any, fake: FakeNeutron) -> None:
    unbound = port_id(7)
    fake.override[unbound[:11]] = {"device": unbound[:11]}
    _source, core, monitor = make_source(1)
    monitor.callback(tap(unbound), 99)
    wait_for("port 0 up", lambda: fake.devices_up() == {port_id(0)})
    wait_for(
        "unbound asked",
        lambda: any(
            unbound[:11] in c["devices"]
            for c in fake.calls_of("get_devices_details_list_and_failed_devices")
        ),
    )
    assert unbound not in core.updates[-1].state.ports
    assert unbound[:11] not in fake.devices_down()


def test_port_update_cast_refetches(make_source: Any, fake: FakeNeutron) -> None:
    source, core, _ = make_source(2)
    wait_for("up", lambda: len(fake.devices_up()) == 2)
    before = len(fake.calls_of("get_devices_details_list_and_failed_devices"))
    fake.ports[port_id(1)]["admin_state_up"] = False
    fake.cast(consumers.topic("port", "update"), "port_update", port={"id": port_id(1)})
    wait_for("down after admin down", lambda: port_id(1) in fake.devices_down())
    calls = fake.calls_of("get_devices_details_list_and_failed_devices")[before:]
    assert [c["devices"] for c in calls] == [[port_id(1)[:11]]]
    assert core.updates[-1].state.ports[port_id(1)].admin_state_up is False
    # a port update for a port that is not local costs nothing
    fake.cast(consumers.topic("port", "update"), "port_update", port={"id": port_id(42)})
    fake.cast(consumers.topic("port", "update"), "port_frobnicate", port={"id": port_id(0)})
    source.request_full("sync point")
    wait_for(
        "full pass",
        lambda: len(fake.calls_of("get_devices_details_list_and_failed_devices")) > before + 1,
    )
    assert all(
        port_id(42)[:11] not in c["devices"]
        for c in fake.calls_of("get_devices_details_list_and_failed_devices")
    )


def test_vanished_tap_reported_down(make_source: Any, fake: FakeNeutron) -> None:
    _source, core, monitor = make_source(2)
    wait_for("up", lambda: len(fake.devices_up()) == 2)
    monitor.callback(tap(port_id(0)), None)
    wait_for("down", lambda: port_id(0) in fake.devices_down())
    wait_for("gone from state", lambda: port_id(0) not in core.updates[-1].state.ports)


def test_security_group_info_parsed_into_model(make_source: Any, fake: FakeNeutron) -> None:
    fake.rules[SG] = [
        {"direction": "egress", "ethertype": "IPv4", "stateful": True},
        {
            "direction": "ingress",
            "ethertype": "IPv4",
            "protocol": "tcp",
            "port_range_min": 22,
            "port_range_max": 22,
            "source_ip_prefix": "198.51.100.7/24",
            "stateful": True,
        },
        {
            "direction": "ingress",
            "ethertype": "IPv4",
            "remote_group_id": REMOTE_SG,
            "stateful": True,
        },
    ]
    fake.members[REMOTE_SG] = {
        "IPv4": [["192.0.2.50", None], ["192.0.2.200", "fa:16:3e:00:00:09"]]
    }
    fake.members[SG] = {"IPv4": [["192.0.2.10", None]]}
    _source, core, _ = make_source(1)
    wait_for("up", lambda: fake.devices_up() == {port_id(0)})
    state = core.updates[-1].state
    group = state.security_groups[SG]
    assert len(group.rules) == 3
    ssh = next(r for r in group.rules if r.port_range_min == 22)
    assert str(ssh.remote_ip_prefix) == "198.51.100.0/24"
    view = state.for_host("cmp1")
    members = {str(a) for a in view.remote_group_members(REMOTE_SG, EtherType.IPV4)}
    assert members == {"192.0.2.50/32", "192.0.2.200/32"}


def test_sg_update_cast_refetches_sg_info(make_source: Any, fake: FakeNeutron) -> None:
    _source, core, _ = make_source(2)
    wait_for("up", lambda: len(fake.devices_up()) == 2)
    before = len(fake.calls_of("security_group_info_for_devices"))
    fake.rules[SG] = [
        {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp", "stateful": True}
    ]
    fake.cast(
        consumers.topic("security_group", "update"),
        "security_groups_rule_updated",
        "1.1",
        security_groups=[SG],
    )
    wait_for("sg refetch", lambda: len(fake.calls_of("security_group_info_for_devices")) > before)
    wait_for("new rules", lambda: len(core.updates[-1].state.security_groups[SG].rules) == 1)


def test_timed_out_call_is_retried_with_longer_timeout(
    conf: cfg.ConfigOpts, make_source: Any, fake: FakeNeutron
) -> None:
    conf.set_override("rpc_response_timeout", 1)
    fake.delay["get_devices_details_list_and_failed_devices"] = 1.5
    source, _core, _ = make_source(1)
    wait_for("up after retry", lambda: fake.devices_up() == {port_id(0)}, timeout=15)
    assert source.plugin.timeout_for("get_devices_details_list_and_failed_devices") == 2.0
    assert len(fake.calls_of("get_devices_details_list_and_failed_devices")) >= 2


def test_tunnel_sync_gives_peers(
    conf: cfg.ConfigOpts, make_source: Any, fake: FakeNeutron
) -> None:
    conf.set_override("local_ip", "198.18.0.1", group="linuxbridge")
    fake.tunnels = [
        {"ip_address": "198.18.0.1", "host": "cmp1"},
        {"ip_address": "198.18.0.2", "host": "cmp2"},
    ]
    _source, core, _ = make_source(1)
    wait_for("up", lambda: fake.devices_up() == {port_id(0)})
    (call,) = fake.calls_of("tunnel_sync")
    assert call == {"tunnel_ip": "198.18.0.1", "tunnel_type": "vxlan", "host": "cmp1"}
    view = core.updates[-1].state.for_host("cmp1")
    peers = {h: str(ip) for h, ip in view.tunnel_peers(next(iter(view.networks))).items()}
    assert peers == {"cmp2": "198.18.0.2"}
    network_id = next(iter(view.networks))

    def peer_ips() -> set[str]:
        state = core.updates[-1].state.for_host("cmp1")
        return {str(ip) for ip in state.tunnel_peers(network_id).values()}

    # casts are applied locally: no tunnel_sync in answer (that would make the server
    # cast tunnel_update to every agent again, a feedback loop)
    for tunnel_ip in ("198.18.0.3", "198.18.0.1", "not-an-ip"):
        fake.cast(
            consumers.topic("tunnel", "update"),
            "tunnel_update",
            tunnel_ip=tunnel_ip,
            tunnel_type="vxlan",
        )
    wait_for("new peer", lambda: "198.18.0.3" in peer_ips())
    fake.cast(
        consumers.topic("tunnel", "delete"),
        "tunnel_delete",
        tunnel_ip="198.18.0.2",
        tunnel_type="vxlan",
    )
    wait_for("peer removed", lambda: "198.18.0.2" not in peer_ips())
    assert peer_ips() == {"198.18.0.3"}  # never our own address
    assert len(fake.calls_of("tunnel_sync")) == 1


def test_revived_report_causes_full_resync(make_source: Any, fake: FakeNeutron) -> None:
    source, _core, _ = make_source(1)
    wait_for("up", lambda: fake.devices_up() == {port_id(0)})
    before = len(fake.calls_of("get_devices_details_list_and_failed_devices"))
    fake.report_replies = ["revived"]
    source.reporter.report_once()
    wait_for(
        "refetch",
        lambda: len(fake.calls_of("get_devices_details_list_and_failed_devices")) > before,
    )


def test_passes_wait_while_state_reports_fail(
    conf: cfg.ConfigOpts, make_source: Any, fake: FakeNeutron
) -> None:
    """While the server does not answer state reports no device call is made (each would
    time out and double that method's timeout); the first answered report resumes them."""
    conf.set_override("report_interval", 1, group="neutron")
    fake.fail["report_state"] = 1000
    source, _core, _ = make_source(1)
    wait_for("failed reports", lambda: source.reporter.failures >= 2)
    time.sleep(0.3)  # a pass started before the first failure ends
    before = len(fake.calls_of("get_devices_details_list_and_failed_devices"))
    source.port_changed(port_id(0))
    source.request_full("test")
    time.sleep(1.0)
    assert len(fake.calls_of("get_devices_details_list_and_failed_devices")) == before
    reports_up = len(fake.calls_of("update_device_list"))
    fake.fail["report_state"] = 0
    wait_for(
        "passes resume",
        lambda: (
            len(fake.calls_of("get_devices_details_list_and_failed_devices")) > before
            and len(fake.calls_of("update_device_list")) > reports_up
        ),
        timeout=10,
    )
    assert fake.calls_of("update_device_list")[-1]["devices_up"] == [port_id(0)]


def test_ports_reported_only_once_the_core_applied_the_last_snapshot(
    make_source: Any, fake: FakeNeutron
) -> None:
    """The core's per-port "converged" describes the snapshot named by its ``origin``:
    a port set admin down is not reported down while the core still shows it wired up."""
    source, core, _ = make_source(2)
    wait_for("up", lambda: len(fake.devices_up()) == 2)
    core.applied = len(core.updates) - 1  # the core stalls on the current snapshot
    fake.ports[port_id(1)]["admin_state_up"] = False
    source.port_changed(port_id(1))
    wait_for("new snapshot", lambda: len(core.updates) > (core.applied or 0) + 1)
    time.sleep(0.5)  # several status polls
    assert port_id(1) not in fake.devices_down()
    core.applied = None  # the core catches up
    wait_for("down once applied", lambda: port_id(1) in fake.devices_down())
