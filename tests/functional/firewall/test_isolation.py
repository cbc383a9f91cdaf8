"""A broken rule (refused by the compiler, or by the kernel) fails its ports only."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from netagent.drivers.iptables_firewall import compiler
from netagent.linux.iptables import Rule, SetMark, SetMatch
from netagent.model.secgroup import Direction, SecurityGroup
from tests.functional.firewall.conftest import (
    EGRESS_ALL,
    Listener,
    Topology,
    eventually_ping,
    ping,
    rule,
    sg_id,
    tcp_ok,
)


def _check_isolated(topo: Topology, listen: Callable[..., Listener], mode: str) -> None:
    bad_port, b, c = topo.add_vm("1"), topo.add_vm("2"), topo.add_vm("3")
    bad = sg_id()
    broken = rule("ingress", "IPv4", 6, (80, 80))
    if mode == "compiler":
        broken = dataclasses.replace(broken, icmp_type=300)  # not expressible
    topo.group(*EGRESS_ALL, rule("ingress", "IPv4", 1), broken, gid=bad)
    good = topo.group(
        *EGRESS_ALL, rule("ingress", "IPv4", 1), rule("ingress", "IPv4", 6, (22, 22))
    )
    topo.port(bad_port, (bad,))
    topo.port(b, (good,))
    topo.port(c, (good,))
    ok, failed = topo.apply()
    assert set(failed) == {bad_port.port_id}, failed
    assert ok == {b.port_id, c.port_id}
    listen(b, 22)
    listen(b, 23)
    assert eventually_ping(c, b.ip4)
    assert tcp_ok(c, b.ip4, 22)
    assert not tcp_ok(c, b.ip4, 23)
    assert not ping(bad_port, b.ip4)
    assert not ping(c, bad_port.ip4)
    # fixing the group heals the port
    topo.group(*EGRESS_ALL, rule("ingress", "IPv4", 1), gid=bad)
    if mode == "kernel":
        topo.groups[bad] = dataclasses.replace(topo.groups[bad], name="fixed")
    ok, failed = topo.apply()
    assert not failed, failed
    assert eventually_ping(c, bad_port.ip4)


def test_rule_the_compiler_refuses(topo: Topology, listen: Callable[..., Listener]) -> None:
    _check_isolated(topo, listen, "compiler")


def test_rule_the_kernel_refuses(
    topo: Topology, listen: Callable[..., Listener], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = compiler.group_rules

    def sabotaged(
        group: SecurityGroup, direction: Direction, family: int, mark: int
    ) -> list[Rule]:
        rules = real(group, direction, family, mark)
        if group.name == "sg" and any(r.port_range_min == 80 for r in group.rules):
            # a set that does not exist: iptables-restore refuses the chain
            rules.append(Rule((SetMatch("na4doesnotexist000000000000"),), SetMark(mark, mark)))
        return rules

    monkeypatch.setattr(compiler, "group_rules", sabotaged)
    _check_isolated(topo, listen, "kernel")
