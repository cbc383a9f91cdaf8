"""Per-network conntrack zones of the iptables firewall driver (fake kernel)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from netagent.common import names
from netagent.conf import agent as agent_conf
from netagent.conf import iptables as iptables_conf
from netagent.drivers.base import PortPlan
from netagent.drivers.iptables_firewall import driver, zones
from netagent.linux.conntrack import ZONE_MAX, ZONE_MIN
from netagent.linux.iptables import IptablesManager
from netagent.model import SecurityGroup
from tests.unit.drivers.test_iptables_firewall import (
    NET,
    PORT,
    SG,
    FakeKernel,
    _port,
    _state,
)

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


def _driver(
    monkeypatch: pytest.MonkeyPatch, l2_driver: str = "linuxbridge"
) -> tuple[driver.IptablesFirewallDriver, FakeKernel]:
    kernel = FakeKernel(monkeypatch)
    conf = cfg.ConfigOpts()
    iptables_conf.register_opts(conf)
    agent_conf.register_opts(conf)
    fixture = config_fixture.Config(conf)
    fixture.setUp()
    fixture.config(group="iptables", backend="nft", verify_interval=None)
    fixture.config(group="agent", l2_driver=l2_driver)
    return driver.IptablesFirewallDriver(conf, netns="natest-unit"), kernel


@pytest.fixture
def fw(monkeypatch: pytest.MonkeyPatch) -> tuple[driver.IptablesFirewallDriver, FakeKernel]:
    return _driver(monkeypatch)


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


def _raw_lines(kernel: FakeKernel) -> list[str]:
    raw = [t for t in kernel.inputs if t.startswith("*raw")][-1]
    lines = [line for line in raw.splitlines() if line.startswith("-A na-ct-net")]
    return [re.sub(r" -m comment --comment \S+", "", line) for line in lines]


def test_hybrid_plug_zone_rule_per_port_bridge_in_the_network_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On Open vSwitch each port has its own qbr: one rule per port, all of a network's
    ports in the network's zone, another network's port in another zone; a removed
    port's rule goes, the others stay."""
    drv, kernel = _driver(monkeypatch, "openvswitch")
    other = "8c1d0000-0000-4000-8000-00000000000b"
    third = "7d2e0000-0000-4000-8000-00000000000c"
    ports = [
        _port(),
        _port(id=other, mac_address="fa:16:3e:12:34:57"),
        _port(id=third, network_id=NET2, mac_address="fa:16:3e:12:34:58"),
    ]
    net2 = dataclasses.replace(NET, id=NET2)
    state = _state(ports, [SecurityGroup(SG)])
    plans = [PortPlan(p, NET if p.network_id == NET.id else net2) for p in ports]
    assert not drv.apply_ports(plans, state).failed
    zone1, zone2 = drv._ctz.zone_of(NET.id), drv._ctz.zone_of(NET2)
    assert zone1 != zone2
    assert sorted(_raw_lines(kernel)) == sorted(
        [
            f"-A na-ct-net -i {names.hybrid_bridge(PORT)} -j CT --zone {zone1}",
            f"-A na-ct-net -i {names.hybrid_bridge(other)} -j CT --zone {zone1}",
            f"-A na-ct-net -i {names.hybrid_bridge(third)} -j CT --zone {zone2}",
        ]
    )
    kernel.inputs.clear()
    drv.remove_ports([other])
    assert sorted(_raw_lines(kernel)) == sorted(
        [
            f"-A na-ct-net -i {names.hybrid_bridge(PORT)} -j CT --zone {zone1}",
            f"-A na-ct-net -i {names.hybrid_bridge(third)} -j CT --zone {zone2}",
        ]
    )
    assert drv._ctz.zone_of(NET.id) == zone1  # the network still has a port: zone kept


def test_hybrid_plug_zone_rule_refused_fails_only_that_port_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drv, kernel = _driver(monkeypatch, "openvswitch")
    port = _port()
    state = _state([port], [SecurityGroup(SG)])
    assert not drv.apply_ports([PortPlan(port, NET)], state).failed
    kernel.refuse = "--zone"
    other = _port(id="8c1d0000-0000-4000-8000-00000000000b", mac_address="fa:16:3e:12:34:57")
    state = _state([port, other], [SecurityGroup(SG)])
    out = drv.apply_ports([PortPlan(port, NET), PortPlan(other, NET)], state)
    # the first port's rule is in place (a failed restore changes nothing): it keeps
    # forwarding; the new one, whose qbr has no zone rule, is left out
    assert set(out.failed) == {other.id} and "conntrack zone" in out.failed[other.id]
    assert port.id in out.succeeded
