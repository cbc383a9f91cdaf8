"""report_state: payload shape (§3), start flag, revived, ignored reports, outages."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from oslo_config import cfg

from netagent.rpc import clients, report
from tests.fullstack.fake_neutron import FakeNeutron


def make_reporter(
    conf: cfg.ConfigOpts, transport: Any, resyncs: list[str]
) -> report.StateReporter:
    api = clients.StateReportApi(transport, 2.0)
    return report.StateReporter(api, conf, lambda: 3, resyncs.append, "fake:/")


def test_first_report_has_exact_shape(
    conf: cfg.ConfigOpts, transport: Any, fake: FakeNeutron
) -> None:
    conf.set_override("physical_interface_mappings", ["physnet1:eth1"], group="linuxbridge")
    conf.set_override("local_ip", "198.18.0.1", group="linuxbridge")
    reporter = make_reporter(conf, transport, [])
    assert reporter.report_once() == "alive"
    (call,) = fake.calls_of("report_state")
    assert set(call) == {"agent_state", "time"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", call["time"])
    state = call["agent_state"]["agent_state"]
    assert state == {
        "binary": "netagent-agent",
        "host": "cmp1",
        "topic": "N/A",
        "agent_type": "Netagent agent",
        "availability_zone": "nova",
        "configurations": {
            "interface_mappings": {"physnet1": "eth1"},
            "bridge_mappings": {},
            "tunnel_types": ["vxlan"],
            "tunneling_ip": "198.18.0.1",
            "l2_population": False,
            "devices": 3,
            "extensions": [],
            "firewall_driver": "noop",
            "l2_driver": "noop",
        },
        "resource_versions": report.RESOURCE_VERSIONS,
        "start_flag": True,
        "uuid": reporter.uuid,
    }
    ctx = fake.contexts[-1]
    assert ctx["is_admin"] is True and ctx["roles"] == ["admin"]


def test_openvswitch_agent_reports_its_bridges_and_ovs_local_ip(
    conf: cfg.ConfigOpts, transport: Any, fake: FakeNeutron
) -> None:
    conf.set_override("l2_driver", "openvswitch", group="agent")
    conf.set_override("physical_interface_mappings", ["physnet1:eth1"], group="linuxbridge")
    conf.set_override("local_ip", "198.18.0.9", group="linuxbridge")
    conf.set_override("bridge_mappings", ["physnet1:br-ex"], group="ovs")
    conf.set_override("local_ip", "198.18.0.1", group="ovs")
    reporter = make_reporter(conf, transport, [])
    assert reporter.report_once() == "alive"
    (call,) = fake.calls_of("report_state")
    configurations = call["agent_state"]["agent_state"]["configurations"]
    assert configurations["interface_mappings"] == {}
    assert configurations["bridge_mappings"] == {"physnet1": "br-ex"}
    assert configurations["tunneling_ip"] == "198.18.0.1"
    assert configurations["l2_driver"] == "openvswitch"
    assert configurations["integration_bridge"] == "br-int"
    assert configurations["datapath_type"] == "system"


def test_start_flag_only_on_first_report(
    conf: cfg.ConfigOpts, transport: Any, fake: FakeNeutron
) -> None:
    reporter = make_reporter(conf, transport, [])
    fake.report_replies = ["new"]
    reporter.report_once()
    reporter.report_once()
    first, second = fake.reports()
    assert first["start_flag"] is True and "resource_versions" in first
    assert "start_flag" not in second and "resource_versions" not in second
    assert "tunneling_ip" not in first["configurations"]
    assert first["configurations"]["tunnel_types"] == []


def test_none_reply_keeps_start_flag(
    conf: cfg.ConfigOpts, transport: Any, fake: FakeNeutron
) -> None:
    reporter = make_reporter(conf, transport, [])
    fake.report_replies = [None]
    assert reporter.report_once() is None
    reporter.report_once()
    assert [r.get("start_flag") for r in fake.reports()] == [True, True]
    reporter.report_once()
    assert "start_flag" not in fake.reports()[-1]


def test_revived_asks_for_full_resync(
    conf: cfg.ConfigOpts, transport: Any, fake: FakeNeutron
) -> None:
    resyncs: list[str] = []
    reporter = make_reporter(conf, transport, resyncs)
    fake.report_replies = ["alive", "revived"]
    reporter.report_once()
    assert resyncs == []
    reporter.report_once()
    assert resyncs == ["agent revived"]


def test_server_down_then_back_logs_and_resyncs(
    conf: cfg.ConfigOpts, transport: Any, fake: FakeNeutron, caplog: pytest.LogCaptureFixture
) -> None:
    resyncs: list[str] = []
    reporter = make_reporter(conf, transport, resyncs)
    fake.fail["report_state"] = 2
    with caplog.at_level(logging.WARNING, logger="netagent.rpc.report"):
        assert reporter.report_once() is None
        assert reporter.report_once() is None
    waiting = [
        r for r in caplog.records if "Waiting for neutron-server on fake:/" in r.getMessage()
    ]
    assert len(waiting) == 1
    assert reporter.report_once() == "alive"
    assert resyncs == ["server reachable again"]
    # the flag stays until a report got through
    assert [r.get("start_flag") for r in fake.reports()] == [True, True, True]


def test_interface_mappings_parsing() -> None:
    assert report.interface_mappings(["a:eth1", " b : eth2 ", "bad", ":x"]) == {
        "a": "eth1",
        "b": "eth2",
    }


def test_report_state_is_served_by_a_2024_2_server(
    conf: cfg.ConfigOpts, transport: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neutron 25.x's AgentExtRpcCallback is version 1.3: a 1.4 call is refused there."""
    import oslo_messaging  # noqa: PLC0415

    from tests.fullstack import fake_neutron  # noqa: PLC0415

    monkeypatch.setattr(fake_neutron._Reports, "target", oslo_messaging.Target(version="1.3"))
    server = FakeNeutron(transport).start()
    try:
        assert make_reporter(conf, transport, []).report_once() == "alive"
        assert len(server.calls_of("report_state")) == 1
    finally:
        server.stop()
