"""Per-network conntrack zones of the iptables firewall driver (fake kernel)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from netagent.common import names
from netagent.conf import iptables as iptables_conf
from netagent.drivers.base import PortPlan
from netagent.drivers.iptables_firewall import driver, zones
from netagent.linux.conntrack import ZONE_MAX, ZONE_MIN
from netagent.linux.iptables import IptablesManager
from netagent.model import SecurityGroup
from tests.unit.drivers.test_iptables_firewall import NET, SG, FakeKernel, _port, _state

NET2 = "9b8e0000-0000-4000-8000-000000000002"


def _zones(monkeypatch: pytest.MonkeyPatch, state_path: str | None) -> zones.NetworkZones:
    FakeKernel(monkeypatch)
    return zones.NetworkZones(IptablesManager("natest-unit", "nft", None), state_path)


def test_preferred_zone_is_stable_and_in_range() -> None:
    for net in (NET.id, NET2):
        zone = zones.preferred_zone(net)
        assert zone == zones.preferred_zone(net)
        assert ZONE_MIN <= zone <= ZONE_MAX


def test_collision_probes_and_allocation_persists(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    z = _zones(monkeypatch, str(tmp_path))
    taken = zones.preferred_zone(NET2)
    z._zones["other"] = taken  # another network already holds NET2's preferred zone
    expected = ZONE_MIN if taken == ZONE_MAX else taken + 1
    assert z.zone_of(NET2) == expected
    saved = json.loads((tmp_path / zones.STATE_FILE).read_text())
    assert saved[NET2] == expected
    again = _zones(monkeypatch, str(tmp_path))
    assert again.zone_of(NET2) == expected
    again.release(["other"])
    assert NET2 not in json.loads((tmp_path / zones.STATE_FILE).read_text())


@pytest.fixture
def fw(monkeypatch: pytest.MonkeyPatch) -> tuple[driver.IptablesFirewallDriver, FakeKernel]:
    kernel = FakeKernel(monkeypatch)
    conf = cfg.ConfigOpts()
    iptables_conf.register_opts(conf)
    fixture = config_fixture.Config(conf)
    fixture.setUp()
    fixture.config(group="iptables", backend="nft", verify_interval=None)
    return driver.IptablesFirewallDriver(conf, netns="natest-unit"), kernel


def test_zone_rule_before_filter_and_removed_after(
    fw: tuple[driver.IptablesFirewallDriver, FakeKernel],
) -> None:
    drv, kernel = fw
    port = _port()
    state = _state([port], [SecurityGroup(SG)])
    assert not drv.apply_ports([PortPlan(port, NET)], state).failed
    zone = zones.preferred_zone(NET.id)
    first_raw = next(i for i, t in enumerate(kernel.inputs) if t.startswith("*raw"))
    first_filter = next(i for i, t in enumerate(kernel.inputs) if t.startswith("*filter"))
    assert first_raw < first_filter
    raw = kernel.inputs[first_raw]
    assert f"-i {names.network_bridge(NET.id)} " in raw and f"-j CT --zone {zone}" in raw
    assert "-A PREROUTING" in raw or "-I PREROUTING" in raw
    kernel.inputs.clear()
    drv.remove_ports([port.id])
    last_raw = max(i for i, t in enumerate(kernel.inputs) if t.startswith("*raw"))
    last_filter = max(i for i, t in enumerate(kernel.inputs) if t.startswith("*filter"))
    assert last_filter < last_raw
    assert "-X na-ct-net" in kernel.inputs[last_raw]
    # deletions are scoped: the network's zone, and zone 0 (what no zone rule covered)
    assert kernel.deleted and {f.zone for f in kernel.deleted} == {zone, 0}


def test_zone_rule_refused_fails_the_network_closed(
    fw: tuple[driver.IptablesFirewallDriver, FakeKernel],
) -> None:
    drv, kernel = fw
    kernel.refuse = "--zone"
    port = _port()
    out = drv.apply_ports([PortPlan(port, NET)], _state([port], [SecurityGroup(SG)]))
    assert port.id in out.failed and "conntrack zone" in out.failed[port.id]
    kernel.refuse = None
    out = drv.apply_ports([PortPlan(port, NET)], _state([port], [SecurityGroup(SG)]))
    assert not out.failed
