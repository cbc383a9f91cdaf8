"""The Neutron source's L3 identity over fake:// against the fake server (§6)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from oslo_config import cfg

from netagent.agent.source import SourceUpdate
from netagent.rpc import consumers
from netagent.sources.neutron import NeutronSource
from tests.fullstack.fake_neutron import FakeNeutron
from tests.unit.rpc.helpers import wait_for
from tests.unit.rpc.test_source import FakeMonitor

R1 = "3f1c2a8e-5d0b-4c57-9a57-0d5f8b5d2e11"
R2 = "4f1c2a8e-5d0b-4c57-9a57-0d5f8b5d2e12"
EXT = "9b8e0c1a-1111-4c57-9a57-0d5f8b5d2e11"
NET = "9b8e0c1a-2222-4c57-9a57-0d5f8b5d2e11"
FIP = "f1f1f1f1-5d0b-4c57-9a57-0d5f8b5d2e11"


def router_dict(
    router_id: str, fip_port: str | None = "aaaa0000-5d0b-4c57-9a57-0d5f8b5d2e11"
) -> dict[str, Any]:
    """A ``sync_routers`` entry (§6.4): gateway, one interface, one floating IP."""
    n = router_id[:2]
    gw = {
        "id": f"{n}aa0001-5d0b-4c57-9a57-0d5f8b5d2e11",
        "network_id": EXT,
        "mac_address": f"fa:16:3e:{n}:00:01",
        "device_owner": "network:router_gateway",
        "device_id": router_id,
        "fixed_ips": [{"subnet_id": EXT, "ip_address": "203.0.113.5", "prefixlen": 24}],
        "subnets": [{"id": EXT, "cidr": "203.0.113.0/24", "gateway_ip": "203.0.113.1"}],
        "mtu": 1500,
        "binding:host_id": "cmp1",
        "port_security_enabled": False,
        "security_groups": [],
    }
    interface = {
        **gw,
        "id": f"{n}aa0002-5d0b-4c57-9a57-0d5f8b5d2e11",
        "network_id": NET,
        "mac_address": f"fa:16:3e:{n}:00:02",
        "device_owner": "network:router_interface",
        "fixed_ips": [{"subnet_id": NET, "ip_address": "192.0.2.1", "prefixlen": 24}],
        "subnets": [{"id": NET, "cidr": "192.0.2.0/24", "gateway_ip": "192.0.2.1"}],
        "mtu": 1450,
    }
    fips = [
        {
            "id": FIP,
            "floating_ip_address": "203.0.113.20",
            "floating_network_id": EXT,
            "fixed_ip_address": "192.0.2.10" if fip_port else None,
            "port_id": fip_port,
            "router_id": router_id,
            "status": "DOWN",
        }
    ]
    return {
        "id": router_id,
        "name": "r",
        "admin_state_up": True,
        "enable_snat": True,
        "external_gateway_info": {"network_id": EXT, "enable_snat": True},
        "gw_port_id": gw["id"],
        "gw_port": gw,
        "_interfaces": [interface],
        "_floatingips": fips,
        "routes": [],
        "distributed": False,
        "ha": False,
    }


class Core:
    """Stands in for the reconciler: its routers are ready unless listed as failing."""

    def __init__(self) -> None:
        self.updates: list[SourceUpdate] = []
        self.failing: set[str] = set()
        #: the status describes the update before the last one (a core still busy)
        self.lagging = False

    def on_update(self, update: SourceUpdate) -> None:
        self.updates.append(update)

    def status(self) -> dict[str, Any]:
        if not self.updates:
            return {"ports": [], "routers": []}
        update = self.updates[-2 if self.lagging and len(self.updates) > 1 else -1]
        return {
            "origin": update.origin,
            "ports": [],
            "routers": [
                {
                    "id": r,
                    "ready": r not in self.failing,
                    "error": "x" if r in self.failing else None,
                }
                for r in update.state.routers
            ],
        }

    def routers(self) -> set[str]:
        return set(self.updates[-1].state.routers) if self.updates else set()


@pytest.fixture
def make_source(
    conf: cfg.ConfigOpts, transport: Any, fake: FakeNeutron
) -> Iterator[Callable[..., tuple[NeutronSource, Core]]]:
    started: list[NeutronSource] = []

    def make(l3_driver: str = "namespace") -> tuple[NeutronSource, Core]:
        conf.set_override("l3_driver", l3_driver, group="agent")
        core = Core()
        source = NeutronSource(conf, transport, FakeMonitor([]), core.status)
        source.start(core.on_update)
        started.append(source)
        return source, core

    yield make
    for source in started:
        source.stop()


def test_l3_identity_registers_and_syncs_scheduled_routers(
    make_source: Any, fake: FakeNeutron
) -> None:
    fake.routers[R1] = router_dict(R1)
    _source, core = make_source()
    wait_for("router delivered", lambda: core.routers() == {R1})
    wait_for("L3 report", lambda: any(r["agent_type"] == "L3 agent" for r in fake.reports()))
    l3 = next(r for r in fake.reports() if r["agent_type"] == "L3 agent")
    assert (l3["topic"], l3["binary"], l3["host"]) == ("l3_agent", "neutron-l3-agent", "cmp1")
    assert l3["configurations"]["agent_mode"] == "legacy"
    assert fake.calls_of("get_router_ids") == [{"host": "cmp1"}]
    assert fake.calls_of("sync_routers") == [{"host": "cmp1", "router_ids": [R1]}]
    state = core.updates[-1].state
    router = state.routers[R1]
    assert router.gateway is not None and router.gateway.port.host == "cmp1"
    assert [str(f.floating_ip_address) for f in router.floating_ips] == ["203.0.113.20"]
    assert set(state.floatingips) == {FIP}
    # the core applied it: the floating IP is reported ACTIVE
    wait_for("FIP status", lambda: fake.fip_statuses.get(R1) == {FIP: "ACTIVE"})


def test_no_l3_identity_with_the_noop_driver(make_source: Any, fake: FakeNeutron) -> None:
    fake.routers[R1] = router_dict(R1)
    source, _core = make_source("noop")
    wait_for("a pass", lambda: source.passes >= 1 and len(fake.reports()) >= 1)
    assert all(r["agent_type"] != "L3 agent" for r in fake.reports())
    assert fake.calls_of("get_router_ids") == [] and fake.calls_of("sync_routers") == []


def test_notifications_fetch_and_drop_routers(make_source: Any, fake: FakeNeutron) -> None:
    _source, core = make_source()
    wait_for("first pass", lambda: len(core.updates) >= 1)
    fake.routers[R1] = router_dict(R1)
    fake.cast_to("l3_agent", "cmp1", "routers_updated", version="1.1", routers=[R1])
    wait_for("router via routers_updated", lambda: core.routers() == {R1})
    fake.routers[R2] = router_dict(R2)
    # router_added_to_agent is a call: it must be answered at once
    assert fake.call_to("l3_agent", "cmp1", "router_added_to_agent", payload=[R2]) is None
    wait_for("router via router_added_to_agent", lambda: core.routers() == {R1, R2})
    # the floating IP is disassociated: the router is fetched again, statuses re-reported
    fake.routers[R1] = router_dict(R1, fip_port=None)
    fake.cast_to("l3_agent", "cmp1", "routers_updated", version="1.1", routers=[R1])
    wait_for("FIP statuses re-reported", lambda: fake.fip_statuses.get(R1) == {})
    del fake.routers[R1]
    fake.cast("l3_agent", "router_deleted", router_id=R1)
    wait_for("router_deleted", lambda: core.routers() == {R2})
    del fake.routers[R2]
    fake.cast_to("l3_agent", "cmp1", "router_removed_from_agent", payload={"router_id": R2})
    wait_for("router_removed_from_agent", lambda: core.routers() == set())


def test_network_update_fetches_the_routers_on_the_network_again(
    make_source: Any, fake: FakeNeutron
) -> None:
    fake.routers[R1] = router_dict(R1)
    other = router_dict(R2)
    other["_interfaces"] = []  # R2 has no port on NET
    fake.routers[R2] = other
    _source, core = make_source()
    wait_for("routers delivered", lambda: core.routers() == {R1, R2})
    before = len(fake.calls_of("sync_routers"))
    # the tenant network's MTU goes down: the server casts network_update with it
    fake.routers[R1]["_interfaces"][0]["mtu"] = 1400
    network = {"id": NET, "mtu": 1400}
    fake.cast(consumers.topic("network", "update"), "network_update", "1.4", network=network)

    def interface_mtu() -> int | None:
        return core.updates[-1].state.routers[R1].interfaces[0].mtu

    wait_for("new MTU delivered", lambda: interface_mtu() == 1400)
    calls = fake.calls_of("sync_routers")[before:]
    assert calls == [{"host": "cmp1", "router_ids": [R1]}]


def test_bad_router_is_skipped_alone_and_failures_are_reported(
    make_source: Any, fake: FakeNeutron
) -> None:
    bad = copy.deepcopy(router_dict(R2))
    bad["routes"] = [{"destination": "198.18.0.0/16", "nexthop": "not-an-ip"}]
    fake.routers[R1] = router_dict(R1)
    fake.routers[R2] = bad
    source, core = make_source()
    core.failing.add(R1)
    wait_for("good router delivered", lambda: core.routers() == {R1})
    assert any(e.startswith(f"router {R2}:") and "nexthop" in e for e in core.updates[-1].errors)
    # the core failed the router: its floating IP is ERROR
    wait_for("FIP ERROR", lambda: fake.fip_statuses.get(R1) == {FIP: "ERROR"})
    # the pass is counted after its last report: the FIP status can be seen a moment before
    wait_for("the pass counted", lambda: source.passes >= 1)


def test_floating_ip_status_waits_for_the_core_then_goes_out_unprompted(
    make_source: Any, fake: FakeNeutron
) -> None:
    fake.routers[R1] = router_dict(R1, fip_port=None)
    _source, core = make_source()
    wait_for("first report", lambda: fake.fip_statuses.get(R1) == {})
    core.lagging = True
    fake.routers[R1] = router_dict(R1)
    fake.cast_to("l3_agent", "cmp1", "routers_updated", version="1.1", routers=[R1])
    wait_for("new router delivered", lambda: len(core.updates[-1].state.floatingips) == 1)
    time.sleep(0.5)
    assert fake.fip_statuses[R1] == {}  # the core has not applied it yet
    core.lagging = False  # the core catches up; no notification follows
    wait_for("FIP ACTIVE", lambda: fake.fip_statuses.get(R1) == {FIP: "ACTIVE"})
