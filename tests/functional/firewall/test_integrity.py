"""The firewall driver's integrity check on the real kernel: every tamper is found and
rewritten to exactly what was there, and netagent's own changes are never reported."""

from __future__ import annotations

import ipaddress
import logging

import pytest

from netagent.model import AllowedAddressPair, SecurityGroup
from tests.functional.firewall.conftest import EGRESS_ALL, VM, Topology, nsrun, rule

WARNING = "changed behind netagent's back"


def _setup(topo: Topology) -> tuple[VM, VM, str]:
    a, b = topo.add_vm("1"), topo.add_vm("2")
    gid = topo.group(*EGRESS_ALL, rule("ingress", "IPv4", protocol=1))
    topo.port(a, (gid,))
    topo.port(b, (gid,))
    assert not topo.apply()[1]
    return a, b, gid


def _saves(topo: Topology) -> list[str]:
    """ebtables nat and both families' filter and raw tables, without comment lines."""
    out = [nsrun(topo.host, "ebtables-nft-save", "-t", "nat")]
    for tool in (f"iptables-{topo.backend}-save", f"ip6tables-{topo.backend}-save"):
        out += [nsrun(topo.host, tool, "-t", table) for table in ("filter", "raw")]
    return [
        "\n".join(x for x in text.splitlines() if not x.startswith("#") and "[" not in x)
        for text in out
    ]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if WARNING in r.getMessage()]


def test_own_changes_are_no_tampering(topo: Topology, caplog: pytest.LogCaptureFixture) -> None:
    """Rule, group and port changes applied (with the manager's verify before every apply,
    where the old false alarm came from) and checked: no warning, nothing repaired."""
    caplog.set_level(logging.WARNING)
    a, b, gid = _setup(topo)
    assert topo.driver.check_integrity() == 0
    changes = [
        (rule("ingress", "IPv4", protocol=6, ports=(22, 22)),),
        (rule("ingress", "IPv4", protocol=0),),  # "any protocol": the example
        (rule("ingress", "IPv6"), rule("ingress", "IPv4", remote_prefix="198.51.100.0/25")),
    ]
    for extra in changes:
        topo.groups[gid] = SecurityGroup(gid, "sg", True, (*EGRESS_ALL, *extra))
        assert not topo.apply()[1]
        assert topo.driver.check_integrity() == 0
    pair = AllowedAddressPair(ipaddress.ip_network("198.51.100.128/25"), "fa:16:3e:aa:bb:cc")
    topo.port(a, (gid,), pairs=(pair,))  # the port's spoof chain and bucket change
    assert not topo.apply(a)[1]
    assert topo.driver.check_integrity() == 0
    topo.port(b, (gid,), security=False)
    assert not topo.apply(b)[1]
    assert topo.driver.check_integrity() == 0
    assert _warnings(caplog) == []


def _ipt(topo: Topology, *argv: str) -> None:
    nsrun(topo.host, f"iptables-{topo.backend}", *argv)


TAMPERS = {
    "flush-na-PREROUTING": [["eb", "-F", "na-PREROUTING"]],
    "delete-eb-hook": [["eb", "-D", "PREROUTING", "-j", "na-PREROUTING"]],
    "rule-before-eb-hook": [["eb", "-I", "PREROUTING", "1", "-j", "ACCEPT"]],
    "port-chain-accept": [["eb", "-F", "{port}"], ["eb", "-A", "{port}", "-j", "ACCEPT"]],
    "eb-policy": [["eb", "-P", "na-PREROUTING", "ACCEPT"]],
    "flush-ipt-bucket": [["ipt", "-F", "na-n-2"]],
    "delete-ipt-hook": [["ipt", "-D", "FORWARD", "1"]],
    "accept-top-of-na-FORWARD": [["ipt", "-I", "na-FORWARD", "1", "-j", "ACCEPT"]],
}


@pytest.mark.parametrize("case", sorted(TAMPERS))
def test_tampering_is_found_and_undone(
    topo: Topology, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    a, _, _ = _setup(topo)
    if case.endswith("ipt-hook"):
        assert "-j na-FORWARD" in nsrun(topo.host, f"iptables-{topo.backend}-save")
    before = _saves(topo)
    port_chain = "na-s-" + a.port_id[:11]
    for tool, *argv in TAMPERS[case]:
        argv = [x.format(port=port_chain) for x in argv]
        if tool == "eb":
            nsrun(topo.host, "ebtables-nft", "-t", "nat", *argv)
        else:
            _ipt(topo, *argv)
    assert _saves(topo) != before
    assert topo.driver.check_integrity() >= 1
    after = _saves(topo)
    if case == "rule-before-eb-hook":
        # netagent's jump is rule 1 again; the foreign rule is left alone, after it
        hook = "-A PREROUTING -j na-PREROUTING\n"
        assert hook + "-A PREROUTING -j ACCEPT\n" in after[0]
        after[0] = after[0].replace("-A PREROUTING -j ACCEPT\n", "")
    assert after == before
    assert len(_warnings(caplog)) >= 1
    assert topo.driver.check_integrity() == 0  # repaired once, not again
