"""The Neutron source over a real RabbitMQ against the in-repo server stand-in.

Each test gets a vhost of its own (deleted afterwards), a namespace holding the "VM" taps
the source watches, and a relay in front of RabbitMQ so that a broker outage can be
simulated without touching the shared broker. The source runs in-process (the agent
process does not wire ``[agent] source = neutron`` yet): its real link monitor, real
oslo.messaging rabbit driver, real consumers and state reporter; the reconciler is
replaced by a stand-in that converges every port it receives.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

from netagent import conf as netagent_conf
from netagent.agent.source import SourceUpdate
from netagent.linux.link_monitor import LinkMonitor
from netagent.rpc import consumers
from netagent.sources.neutron import NeutronSource
from tests.common.relay import Relay
from tests.fullstack import fake_neutron
from tests.unit.rpc.helpers import details, port_id, wait_for

SG = "5e0f5e0f-3333-4c57-9a57-0d5f8b5d2e11"


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def vhost() -> Iterator[str]:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl not found")
    name = f"netagent-test-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        _rabbitmqctl("delete_vhost", name)


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"nafs-nsrc-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def add_tap(netns: str, pid: str) -> None:
    subprocess.run(
        ["ip", "-n", netns, "tuntap", "add", "dev", "tap" + pid[:11], "mode", "tap"], check=True
    )


class Core:
    """Stands in for the reconciler: converges every local port it is given."""

    def __init__(self) -> None:
        self.updates: list[SourceUpdate] = []

    def on_update(self, update: SourceUpdate) -> None:
        self.updates.append(update)

    def status(self) -> dict[str, Any]:
        ports = self.updates[-1].state.ports.values() if self.updates else []
        return {"ports": [{"id": p.id, "converged": True} for p in ports if p.host == "cmp1"]}


@pytest.fixture
def env(vhost: str, netns: str) -> Iterator[dict[str, Any]]:
    relay = Relay(("127.0.0.1", 5672)).start()
    server = fake_neutron.FakeNeutron(
        fake_neutron.make_transport(f"rabbit://guest:guest@127.0.0.1:5672/{vhost}")
    ).start()
    conf = cfg.ConfigOpts()
    netagent_conf.register_all(conf)
    conf([], project="netagent")
    conf.set_override("host", "cmp1")
    conf.set_override("report_interval", 2, group="neutron")
    conf.set_override("retry_interval", 0.5, group="neutron")
    conf.set_override("resync_interval", 0, group="agent")
    sources: list[NeutronSource] = []
    core = Core()

    def start() -> NeutronSource:
        url = f"rabbit://guest:guest@127.0.0.1:{relay.port}/{vhost}"
        source = NeutronSource(
            conf,
            monitor=LinkMonitor(namespace=netns, name_filter=NeutronSource.is_tap),
            status_provider=core.status,
        )
        # oslo.messaging registers these when the transport is built, i.e. in start()
        from netagent.rpc import transport as rpc_transport  # noqa: PLC0415

        source._transport = rpc_transport.build_transport(conf, url=url)
        source._owns_transport = True
        conf.set_override("transport_url", url)
        conf.set_override("rpc_response_timeout", 3)
        conf.set_override("heartbeat_timeout_threshold", 10, group="oslo_messaging_rabbit")
        source.start(core.on_update)
        sources.append(source)
        return source

    try:
        yield {"fake": server, "core": core, "start": start, "relay": relay, "netns": netns}
    finally:
        for source in sources:
            source.stop()
        server.stop()
        server.transport.cleanup()
        relay.stop()


def add_ports(env: dict[str, Any], numbers: range) -> list[str]:
    ids = []
    for n in numbers:
        pid = port_id(n)
        env["fake"].ports[pid] = details(pid)
        env["fake"].security_groups[pid] = [SG]
        add_tap(env["netns"], pid)
        ids.append(pid)
    return ids


def details_calls(fake: fake_neutron.FakeNeutron) -> list[dict[str, Any]]:
    return fake.calls_of("get_devices_details_list_and_failed_devices")


def test_registers_fetches_in_bulk_reports_up(env: dict[str, Any]) -> None:
    fake = env["fake"]
    ids = add_ports(env, range(25))
    env["start"]()
    wait_for("all ports up", lambda: fake.devices_up() == set(ids), timeout=30)
    assert all(fake.status[p] == "ACTIVE" for p in ids)
    calls = details_calls(fake)
    assert [len(c["devices"]) for c in calls] == [20, 5]
    wait_for("second report", lambda: len(fake.reports()) >= 2, timeout=10)
    first, second = fake.reports()[:2]
    assert first["start_flag"] is True and "start_flag" not in second
    assert second["configurations"]["devices"] == 25
    assert all(c["is_admin"] is True for c in fake.contexts)


def test_malformed_port_failed_others_up(env: dict[str, Any]) -> None:
    fake = env["fake"]
    ids = add_ports(env, range(3))
    bad = ids[1]
    fake.override[bad[:11]] = details(bad, device=bad[:11], fixed_ips="garbage")
    env["start"]()
    wait_for("good ports up", lambda: fake.devices_up() == {ids[0], ids[2]}, timeout=30)
    wait_for("bad port down", lambda: bad[:11] in fake.devices_down(), timeout=10)
    assert bad not in env["core"].updates[-1].state.ports


def test_port_update_cast_refetches_and_unknown_cast_ignored(env: dict[str, Any]) -> None:
    fake = env["fake"]
    ids = add_ports(env, range(2))
    source = env["start"]()
    wait_for("up", lambda: fake.devices_up() == set(ids), timeout=30)
    before = len(details_calls(fake))
    topic = consumers.topic("port", "update")
    fake.cast(topic, "port_frobnicate", port={"id": ids[0]})
    fake.cast(topic, "port_update", "1.9", port={"id": ids[0]})
    fake.ports[ids[1]]["admin_state_up"] = False
    fake.cast(topic, "port_update", port={"id": ids[1]})
    wait_for("refetch", lambda: len(details_calls(fake)) > before, timeout=15)
    assert details_calls(fake)[before]["devices"] == [ids[1][:11]]
    wait_for("admin down reported", lambda: ids[1] in fake.devices_down(), timeout=15)
    assert env["core"].updates[-1].state.ports[ids[1]].admin_state_up is False
    assert source.consumers is not None


def test_timed_out_reply_retried_with_longer_timeout(env: dict[str, Any]) -> None:
    fake = env["fake"]
    ids = add_ports(env, range(1))
    fake.delay["get_devices_details_list_and_failed_devices"] = 4.0
    source = env["start"]()
    wait_for("up after retry", lambda: fake.devices_up() == set(ids), timeout=40)
    assert source.plugin.timeout_for("get_devices_details_list_and_failed_devices") == 6.0
    assert len(details_calls(fake)) >= 2


def test_broker_outage_ends_in_full_resync(env: dict[str, Any]) -> None:
    fake, relay = env["fake"], env["relay"]
    ids = add_ports(env, range(3))
    source = env["start"]()
    wait_for("up", lambda: fake.devices_up() == set(ids), timeout=30)
    updates_before = len(env["core"].updates)
    before = len(details_calls(fake))
    relay.pause()
    wait_for("report failures", lambda: source.reporter.failures >= 1, timeout=30)
    relay.resume()
    wait_for("full refetch", lambda: len(details_calls(fake)) > before, timeout=90)
    refetched = {d for c in details_calls(fake)[before:] for d in c["devices"]}
    assert refetched == {p[:11] for p in ids}
    # the snapshot did not change, so nothing new was handed to the core
    assert env["core"].updates[-1].state == env["core"].updates[updates_before - 1].state
    # notifications flow again after the outage
    fake.ports[ids[0]]["admin_state_up"] = False
    fake.cast(consumers.topic("port", "update"), "port_update", port={"id": ids[0]})
    wait_for("update after outage", lambda: ids[0] in fake.devices_down(), timeout=30)


def test_relay_reaches_rabbitmq_from_a_host_namespace(netns: str) -> None:
    relay = Relay(("127.0.0.1", 5672), listen_port=5672, netns=netns).start()
    try:
        probe = (
            "import socket; s = socket.create_connection(('127.0.0.1', 5672), timeout=5); "
            "s.sendall(b'AMQP\\x00\\x00\\x09\\x01'); print(s.recv(8)[:1].hex())"
        )
        out = subprocess.run(
            ["ip", "netns", "exec", netns, "python3", "-c", probe],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        assert out.stdout.strip() == "01"  # a Connection.Start method frame
    finally:
        relay.stop()
