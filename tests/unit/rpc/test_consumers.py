"""Notification handlers: they only mark, and unknown methods/versions are logged once."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from netagent.rpc import consumers
from tests.fullstack.fake_neutron import FakeNeutron
from tests.unit.rpc.helpers import wait_for


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def port_changed(self, port_id: str) -> None:
        self.events.append(("port_changed", port_id))

    def port_deleted(self, port_id: str) -> None:
        self.events.append(("port_deleted", port_id))

    def port_deactivated(self, port_id: str) -> None:
        self.events.append(("port_deactivated", port_id))

    def network_changed(self, network_id: str) -> None:
        self.events.append(("network_changed", network_id))

    def security_groups_changed(self, group_ids: Sequence[str]) -> None:
        self.events.append(("security_groups_changed", list(group_ids)))

    def tunnel_endpoint_changed(
        self, operation: str, tunnel_ip: object, tunnel_type: object
    ) -> None:
        self.events.append(("tunnel_endpoint_changed", (operation, tunnel_ip, tunnel_type)))

    def fdb_received(self, operation: str, fdb_entries: object) -> None:
        self.events.append(("fdb_received", operation))


@pytest.fixture
def sink(transport: Any) -> Iterator[RecordingSink]:
    sink = RecordingSink()
    group = consumers.Consumers(transport, "cmp1", sink)
    group.start()
    yield sink
    group.stop()


def T(resource: str, op: str) -> str:
    return consumers.topic(resource, op)


def test_every_notification_marks(sink: RecordingSink, fake: FakeNeutron) -> None:
    port = {"id": "p1", "network_id": "n1", "mac_address": "fa:16:3e:00:00:01"}
    fake.cast(
        T("port", "update"),
        "port_update",
        port=port,
        network_type="vxlan",
        segmentation_id=5,
        physical_network=None,
    )
    fake.cast(T("port", "delete"), "port_delete", port_id="p2")
    fake.cast(T("network", "update"), "network_update", "1.4", network={"id": "n1", "mtu": 1400})
    fake.cast(T("network", "delete"), "network_delete", network_id="n2")
    fake.cast(T("binding", "activate"), "binding_activate", "1.5", port_id="p3", host="cmp1")
    fake.cast(T("binding", "activate"), "binding_activate", "1.5", port_id="p4", host="other")
    fake.cast(
        T("binding", "deactivate"),
        "binding_deactivate",
        "1.5",
        port_id="p5",
        host="cmp1",
        network_id="n1",
    )
    fake.cast(
        T("security_group", "update"),
        "security_groups_rule_updated",
        "1.1",
        security_groups=["g1"],
    )
    fake.cast(
        T("security_group", "update"),
        "security_groups_member_updated",
        "1.1",
        security_groups=["g2"],
    )
    fake.cast(T("tunnel", "update"), "tunnel_update", tunnel_ip="198.18.0.9", tunnel_type="vxlan")
    fake.cast(T("l2population", "update"), "add_fdb_entries", fdb_entries={})
    expected = {
        ("port_changed", "p1"),
        ("port_deleted", "p2"),
        ("network_changed", "n1"),
        ("network_changed", "n2"),
        ("port_changed", "p3"),
        ("port_deactivated", "p5"),
        ("security_groups_changed", ("g1",)),
        ("security_groups_changed", ("g2",)),
        ("tunnel_endpoint_changed", ("update", "198.18.0.9", "vxlan")),
        ("fdb_received", "add"),
    }

    def seen() -> set[tuple[str, Any]]:
        return {(k, tuple(v) if isinstance(v, list) else v) for k, v in sink.events}

    wait_for("all notifications", lambda: seen() >= expected)
    assert ("port_changed", "p4") not in seen()


def test_unknown_method_and_newer_version_logged_once(
    sink: RecordingSink, fake: FakeNeutron, caplog: pytest.LogCaptureFixture
) -> None:
    topic = T("port", "update")
    with caplog.at_level(logging.DEBUG):
        for _ in range(5):
            fake.cast(topic, "port_frobnicate", port={"id": "x"})
            fake.cast(topic, "port_update", "1.7", port={"id": "y"})
            fake.cast(topic, "port_update", "2.0", port={"id": "z"})
        fake.cast(topic, "port_update", port={"id": "last"})
        wait_for("the last update", lambda: ("port_changed", "last") in sink.events)
        # The threading executor dispatches side by side: "last" can be done before
        # the refused casts are, so wait for all 15 of them to be logged.
        wait_for(
            "the 15 refused casts",
            lambda: len([r for r in caplog.records if "Ignoring" in r.getMessage()]) == 15,
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([w for w in warnings if "port_frobnicate" in w]) == 1
    assert len([w for w in warnings if "version 1.7" in w]) == 1
    assert len([w for w in warnings if "version 2.0" in w]) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert ("port_changed", "y") not in sink.events
    assert ("port_changed", "z") not in sink.events


def test_servers_use_threading_executor(transport: Any) -> None:
    group = consumers.Consumers(transport, "cmp1", RecordingSink())
    assert {s.executor_type for s in group.servers} == {"threading"}
    topics = {s._target.topic for s in group.servers}
    assert "q-agent-notifier-security_group-update" in topics
    assert all(s._target.server == "cmp1" for s in group.servers)
