"""Notification handlers: they only mark, and unknown methods/versions are logged once."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from netagent.rpc import consumers, rejects
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


#: stand-in ids: the consumers take only UUIDs
ID = {
    name: str(uuid.UUID(int=n, version=4))
    for n, name in enumerate(
        ("p1", "p2", "p3", "p4", "p5", "n1", "n2", "g1", "g2", "x", "y", "z", "last"), 1
    )
}


def T(resource: str, op: str) -> str:
    return consumers.topic(resource, op)


def test_every_notification_marks(sink: RecordingSink, fake: FakeNeutron) -> None:
    port = {"id": ID["p1"], "network_id": ID["n1"], "mac_address": "fa:16:3e:00:00:01"}
    fake.cast(
        T("port", "update"),
        "port_update",
        port=port,
        network_type="vxlan",
        segmentation_id=5,
        physical_network=None,
    )
    fake.cast(T("port", "delete"), "port_delete", port_id=ID["p2"])
    fake.cast(
        T("network", "update"), "network_update", "1.4", network={"id": ID["n1"], "mtu": 1400}
    )
    fake.cast(T("network", "delete"), "network_delete", network_id=ID["n2"])
    fake.cast(T("binding", "activate"), "binding_activate", "1.5", port_id=ID["p3"], host="cmp1")
    fake.cast(T("binding", "activate"), "binding_activate", "1.5", port_id=ID["p4"], host="other")
    fake.cast(
        T("binding", "deactivate"),
        "binding_deactivate",
        "1.5",
        port_id=ID["p5"],
        host="cmp1",
        network_id=ID["n1"],
    )
    fake.cast(
        T("security_group", "update"),
        "security_groups_rule_updated",
        "1.1",
        security_groups=[ID["g1"]],
    )
    fake.cast(
        T("security_group", "update"),
        "security_groups_member_updated",
        "1.1",
        security_groups=[ID["g2"]],
    )
    fake.cast(T("tunnel", "update"), "tunnel_update", tunnel_ip="198.18.0.9", tunnel_type="vxlan")
    fake.cast(T("l2population", "update"), "add_fdb_entries", fdb_entries={})
    expected = {
        ("port_changed", ID["p1"]),
        ("port_deleted", ID["p2"]),
        ("network_changed", ID["n1"]),
        ("network_changed", ID["n2"]),
        ("port_changed", ID["p3"]),
        ("port_deactivated", ID["p5"]),
        ("security_groups_changed", (ID["g1"],)),
        ("security_groups_changed", (ID["g2"],)),
        ("tunnel_endpoint_changed", ("update", "198.18.0.9", "vxlan")),
        ("fdb_received", "add"),
    }

    def seen() -> set[tuple[str, Any]]:
        return {(k, tuple(v) if isinstance(v, list) else v) for k, v in sink.events}

    wait_for("all notifications", lambda: seen() >= expected)
    assert ("port_changed", ID["p4"]) not in seen()


def test_unknown_method_and_newer_version_logged_once(
    sink: RecordingSink, fake: FakeNeutron, caplog: pytest.LogCaptureFixture
) -> None:
    topic = T("port", "update")
    with caplog.at_level(logging.DEBUG):
        for _ in range(5):
            fake.cast(topic, "port_frobnicate", port={"id": ID["x"]})
            fake.cast(topic, "port_update", "1.7", port={"id": ID["y"]})
            fake.cast(topic, "port_update", "2.0", port={"id": ID["z"]})
        fake.cast(topic, "port_update", port={"id": ID["last"]})
        wait_for("the last update", lambda: ("port_changed", ID["last"]) in sink.events)
        # The threading executor dispatches side by side: ID["last"] can be done before
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
    assert ("port_changed", ID["y"]) not in sink.events
    assert ("port_changed", ID["z"]) not in sink.events


def test_servers_use_threading_executor(transport: Any) -> None:
    group = consumers.Consumers(transport, "cmp1", RecordingSink())
    assert {s.executor_type for s in group.servers} == {"threading"}
    topics = {s._target.topic for s in group.servers}
    assert "q-agent-notifier-security_group-update" in topics
    assert all(s._target.server == "cmp1" for s in group.servers)


def test_malformed_casts_rejected_once_per_kind_without_tracebacks(
    sink: RecordingSink,
    fake: FakeNeutron,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consumers, "REJECTIONS", rejects.Rejections())
    bad_casts: list[tuple[str, str, str, dict[str, Any]]] = [
        (T("port", "update"), "port_update", "1.0", {"port": {"id": "not-a-uuid"}}),
        (T("port", "update"), "port_update", "1.0", {"port": ["not", "a", "dict"]}),
        (T("port", "update"), "port_update", "1.0", {"port": {"id": ID["x"]}, "bogus": 1}),
        (T("port", "delete"), "port_delete", "1.0", {"port_id": 42}),
        (T("network", "delete"), "network_delete", "1.0", {"network_id": "../etc"}),
        (T("binding", "activate"), "binding_activate", "1.5", {"port_id": None, "host": "cmp1"}),
        (
            T("security_group", "update"),
            "security_groups_rule_updated",
            "1.1",
            {"security_groups": "g1"},
        ),
        (
            T("security_group", "update"),
            "security_groups_member_updated",
            "1.1",
            {"security_groups": [1, None, "x"]},
        ),
    ]
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            for topic_name, method, version, kwargs in bad_casts:
                fake.cast(topic_name, method, version, **kwargs)
        fake.cast(T("port", "update"), "port_update", port={"id": ID["last"]})
        wait_for("the last update", lambda: ("port_changed", ID["last"]) in sink.events)
        wait_for(
            "every rejection logged",
            lambda: len([r for r in caplog.records if "Ignoring" in r.getMessage()]) >= 3 * 10,
        )
    assert sink.events == [("port_changed", ID["last"])]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    ignoring = [w for w in warnings if w.startswith("Ignoring")]
    assert len(ignoring) == len(set(ignoring)) == 8  # one per kind, not per cast
    assert consumers.REJECTIONS.total() == 3 * 10
    assert any("not-a-uuid" in w for w in ignoring)  # the offending id is shown
    assert any("arguments do not match" in w and "bogus" in w for w in ignoring)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if r.exc_info]


def test_object_pushes_mark_groups_only_when_membership_changes(
    sink: RecordingSink, fake: FakeNeutron
) -> None:
    """The server pushes every Port change; an allowed address pair added on another
    host's port must reach this agent's remote-group members (no legacy cast says so)."""

    def pushed(port: str, group: str, pairs: list[str], status: str) -> dict[str, Any]:
        child = "versioned_object.name"
        return {
            child: "Port",
            "versioned_object.data": {
                "id": ID[port],
                "mac_address": "FA-16-3E-00-00-01",
                "status": status,
                "security_group_ids": [ID[group]],
                "fixed_ips": [],
                "allowed_address_pairs": [
                    {child: "AllowedAddressPair", "versioned_object.data": {"ip_address": p}}
                    for p in pairs
                ],
            },
        }

    def push(topic: str, *objects: dict[str, Any]) -> None:
        fake.cast(topic, "push", "1.1", resource_list=list(objects), event_type="updated")

    port_topic = consumers.object_topic("Port")
    assert port_topic == "neutron-vo-Port-1.11"
    push(port_topic, pushed("p1", "g1", [], "DOWN"), pushed("p2", "g2", [], "ACTIVE"))
    wait_for("the first push", lambda: len(sink.events) == 1)
    push(port_topic, pushed("p1", "g1", [], "ACTIVE"))  # a status report: no member change
    push(port_topic, pushed("p2", "g2", ["203.0.113.145/32"], "ACTIVE"))
    group = {"versioned_object.name": "AddressGroup", "versioned_object.data": {"id": ID["x"]}}
    push(consumers.object_topic("AddressGroup"), group)
    wait_for("the other pushes", lambda: len(sink.events) >= 3)
    time.sleep(0.5)  # a wrong mark for the status report would come in meanwhile
    assert sorted(sink.events) == [
        ("security_groups_changed", [ID["g1"], ID["g2"]]),  # both first seen
        ("security_groups_changed", [ID["g2"]]),  # the address pair
        ("security_groups_changed", [ID["x"]]),  # the address group
    ]
