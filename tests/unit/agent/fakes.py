"""In-memory drivers with a data plane of their own, and model builders for the tests."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from netagent.drivers.base import (
    FirewallDriver,
    L2Driver,
    L3Driver,
    NetworkPlan,
    Outcome,
    PortPlan,
)
from netagent.model import Agent, DesiredState, FixedIP, Network, NetworkType, Port, Router

__all__ = ["Router"]


class World:
    """The fake host: what the fake drivers have built, and the calls they got, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.networks: dict[str, NetworkPlan] = {}
        self.filtered: dict[str, PortPlan] = {}
        self.wired: dict[str, PortPlan] = {}
        self.routers: dict[str, Router] = {}
        self.created: list[str] = []
        self.deleted: list[str] = []
        #: "<id>" or "<method>:<id>" -> reason the driver reports for that resource
        self.fail: dict[str, str] = {}
        self.raise_on: set[str] = set()  # a batch containing one of these raises
        self.unfiltered_wiring: list[str] = []  # fail-closed violations
        self.swept_devices: set[str] | None = None  # wanted_devices of the last l2.sweep

    def call(self, name: str, ids: Sequence[str]) -> None:
        self.calls.append((name, tuple(ids)))
        bad = self.raise_on.intersection(ids)
        if bad:
            raise RuntimeError(f"injected driver crash for {sorted(bad)}")

    def names(self) -> list[str]:
        return [name for name, _ids in self.calls]

    def outcome(self, ids: Sequence[str]) -> Outcome:
        method = self.calls[-1][0]
        out = Outcome()
        for rid in ids:
            reason = self.fail.get(f"{method}:{rid}") or self.fail.get(rid)
            if reason:
                out.failed[rid] = reason
            else:
                out.succeeded.add(rid)
        return out


class FakeL2(L2Driver):
    def __init__(self, world: World) -> None:
        super().__init__(None)
        self.world = world
        self.initialized = 0
        self.init_error: Exception | None = None

    def initialize(self) -> None:
        if self.init_error is not None:
            raise self.init_error
        self.initialized += 1

    def ensure_networks(self, plans: Sequence[NetworkPlan]) -> Outcome:
        ids = [p.network.id for p in plans]
        self.world.call("ensure_networks", ids)
        out = self.world.outcome(ids)
        for plan in plans:
            if plan.network.id in out.succeeded:
                if plan.network.id not in self.world.networks:
                    self.world.created.append(f"network {plan.network.id}")
                self.world.networks[plan.network.id] = plan
        return out

    def plug_ports(self, plans: Sequence[PortPlan]) -> Outcome:
        ids = [p.port.id for p in plans]
        self.world.call("plug_ports", ids)
        out = self.world.outcome(ids)
        for plan in plans:
            pid = plan.port.id
            if pid in out.succeeded:
                if pid not in self.world.filtered:
                    self.world.unfiltered_wiring.append(pid)
                if pid not in self.world.wired:
                    self.world.created.append(f"wire {pid}")
                self.world.wired[pid] = plan
        return out

    def unplug_ports(self, plans: Sequence[PortPlan]) -> Outcome:
        ids = [p.port.id for p in plans]
        self.world.call("unplug_ports", ids)
        out = self.world.outcome(ids)
        for pid in out.succeeded:
            if self.world.wired.pop(pid, None) is not None:
                self.world.deleted.append(f"wire {pid}")
        return out

    def sweep(
        self,
        wanted: Sequence[NetworkPlan],
        dry_run: bool = False,
        wanted_devices: AbstractSet[str] | None = None,
    ) -> list[str]:
        keep = {p.network.id for p in wanted}
        self.world.swept_devices = None if wanted_devices is None else set(wanted_devices)
        self.world.calls.append(("l2.sweep", tuple(sorted(keep))))
        actions = []
        for nid in sorted(set(self.world.networks) - keep):
            del self.world.networks[nid]
            self.world.deleted.append(f"network {nid}")
            actions.append(f"deleted network {nid}")
            # deleting a bridge detaches its ports, as the kernel does
            for pid, plan in list(self.world.wired.items()):
                if plan.network.id == nid:
                    del self.world.wired[pid]
        return actions


class FakeFirewall(FirewallDriver):
    def __init__(self, world: World) -> None:
        super().__init__(None)
        self.world = world
        self.states: list[DesiredState] = []
        self.integrity_checks = 0
        #: what the next integrity checks report as repaired (then 0)
        self.tampered: list[int] = []

    def check_integrity(self) -> int:
        self.integrity_checks += 1
        return self.tampered.pop(0) if self.tampered else 0

    def apply_ports(self, plans: Sequence[PortPlan], state: DesiredState) -> Outcome:
        ids = [p.port.id for p in plans]
        self.world.call("apply_ports", ids)
        self.states.append(state)
        out = self.world.outcome(ids)
        for plan in plans:
            if plan.port.id in out.succeeded:
                self.world.filtered[plan.port.id] = plan
        return out

    def remove_ports(self, port_ids: Sequence[str]) -> Outcome:
        self.world.call("remove_ports", port_ids)
        out = self.world.outcome(port_ids)
        for pid in out.succeeded:
            if pid in self.world.wired:
                self.world.unfiltered_wiring.append(pid)
            self.world.filtered.pop(pid, None)
        return out

    def sweep(self, wanted_port_ids: set[str], dry_run: bool = False) -> list[str]:
        self.world.calls.append(("firewall.sweep", tuple(sorted(wanted_port_ids))))
        gone = sorted(set(self.world.filtered) - wanted_port_ids)
        for pid in gone:
            del self.world.filtered[pid]
        return [f"removed filter {pid}" for pid in gone]


class FakeL3(L3Driver):
    def __init__(self, world: World) -> None:
        super().__init__(None)
        self.world = world

    def apply_routers(self, routers: Sequence[Router], state: DesiredState) -> Outcome:
        ids = [r.id for r in routers]
        self.world.call("apply_routers", ids)
        out = self.world.outcome(ids)
        for router in routers:
            if router.id in out.succeeded:
                self.world.routers[router.id] = router
        return out

    def remove_routers(self, router_ids: Sequence[str]) -> Outcome:
        self.world.call("remove_routers", router_ids)
        out = self.world.outcome(router_ids)
        for rid in out.succeeded:
            self.world.routers.pop(rid, None)
        return out

    def sweep(self, wanted_router_ids: set[str], dry_run: bool = False) -> list[str]:
        self.world.calls.append(("l3.sweep", tuple(sorted(wanted_router_ids))))
        return []


def drivers(world: World) -> tuple[FakeL2, FakeFirewall, FakeL3]:
    return FakeL2(world), FakeFirewall(world), FakeL3(world)


class Clock:
    """A manual monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


HOST = "host-a"


def uid(n: int, kind: int = 0) -> str:
    """A stable UUID whose first 11 characters differ per ``n`` (tap names stay unique)."""
    return str(uuid.UUID(int=(n << 96) | (kind << 80) | 0x4000_8000_0000_0000))


def network(n: int, vni: int | None = None, mtu: int = 1450) -> Network:
    return Network(uid(n, 1), f"net{n}", NetworkType.VXLAN, vni or 1000 + n, None, mtu)


def port(
    n: int,
    net: Network,
    host: str | None = HOST,
    *,
    admin_up: bool = True,
    security_groups: tuple[str, ...] = (),
) -> Port:
    return Port(
        id=uid(n, 2),
        network_id=net.id,
        mac_address=f"fa:16:3e:00:00:{n:02x}",
        fixed_ips=(FixedIP(None, ipaddress.ip_address(f"192.0.2.{n}")),),
        host=host,
        admin_state_up=admin_up,
        security_groups=security_groups,
    )


def agents(**hosts: str) -> list[Agent]:
    return [Agent(h.replace("_", "-"), ipaddress.ip_address(ip)) for h, ip in hosts.items()]


def state(networks: Sequence[Network] = (), ports: Sequence[Port] = (), **kw: Any) -> DesiredState:
    return DesiredState.build(networks=networks, ports=ports, **kw)
