"""Unit tests of the iptables firewall driver: golden rule text, fuzzing, fake kernel."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from netagent.conf import iptables as iptables_conf
from netagent.drivers.base import PortPlan
from netagent.drivers.iptables_firewall import antispoof, driver, nd
from netagent.drivers.iptables_firewall import compiler as comp
from netagent.drivers.iptables_firewall import conntrack_cleanup as ct
from netagent.linux import conntrack as lct
from netagent.linux.ebtables import EbRule
from netagent.linux.iptables import plan
from netagent.model import (
    AllowedAddressPair,
    DesiredState,
    FixedIP,
    Network,
    NetworkType,
    Port,
    SecurityGroup,
    SecurityGroupRule,
)
from netagent.model.secgroup import Direction, EtherType
from netagent.privileged import ebtables as priv_eb
from netagent.privileged import ipset as priv_ipset
from netagent.privileged import iptables as priv_ipt

SG = "5e0f0000-0000-4000-8000-000000000001"
RG = "5e0f0000-0000-4000-8000-000000000002"
PORT = "3f1c2a8e-5d0b-4c57-9a57-0d5f8b5d2e11"
NET = Network("9b8e0000-0000-4000-8000-000000000001", "n", NetworkType.FLAT, None, "p")
MARK = 0x1000000


def r(**kw: Any) -> SecurityGroupRule:
    kw.setdefault("id", None)
    kw.setdefault("security_group_id", SG)
    return SecurityGroupRule(**kw)


def render(rules: list[Any], family: int, name: str = "na-x") -> list[str]:
    return list(plan.render_chain(name, family, rules).lines)


def strip(lines: list[str]) -> list[str]:
    """Drop the hash comment (it changes with any content change)."""
    return [
        " ".join(t for t in line.split() if not t.startswith("na:")).replace(
            " -m comment --comment", ""
        )
        for line in lines
    ]


def test_group_chain_golden() -> None:
    group = SecurityGroup(
        SG,
        rules=(
            r(
                direction=Direction.INGRESS,
                protocol=6,
                port_range_min=22,
                port_range_max=22,
                remote_ip_prefix=ipaddress.ip_network("198.51.100.0/24"),
            ),
            r(direction=Direction.INGRESS, protocol=1, icmp_type=8, icmp_code=0),
            r(direction=Direction.INGRESS, remote_group_id=RG),
            r(direction=Direction.INGRESS, protocol=17, port_range_min=5000, port_range_max=5100),
            r(direction=Direction.EGRESS),
            r(direction=Direction.INGRESS, ethertype=EtherType.IPV6, protocol=58),
        ),
    )
    v4 = strip(render(comp.group_rules(group, Direction.INGRESS, 4, MARK), 4))
    assert v4 == [  # in the order of their text, not the group's
        "-A na-x -m set --match-set na45kgrrmy7z4f6iu0rqqc37lo1u src -j MARK --set-xmark "
        "0x1000000/0x1000000",
        "-A na-x -p icmp -m icmp --icmp-type 8/0 -j MARK --set-xmark 0x1000000/0x1000000",
        "-A na-x -p udp -m udp --dport 5000:5100 -j MARK --set-xmark 0x1000000/0x1000000",
        "-A na-x -s 198.51.100.0/24 -p tcp -m tcp --dport 22 -j MARK --set-xmark "
        "0x1000000/0x1000000",
    ]
    # the same rules in another order make the same chain, hash comment included, so a
    # server that lists them in another order causes no rewrite
    shuffled = dataclasses.replace(group, rules=group.rules[::-1])
    for family in (4, 6):
        for direction in Direction:
            assert render(comp.group_rules(shuffled, direction, family, MARK), family) == render(
                comp.group_rules(group, direction, family, MARK), family
            )
    v6 = strip(render(comp.group_rules(group, Direction.INGRESS, 6, MARK), 6))
    assert v6 == ["-A na-x -p ipv6-icmp -j MARK --set-xmark 0x1000000/0x1000000"]
    egress = strip(render(comp.group_rules(group, Direction.EGRESS, 4, MARK), 4))
    assert egress == ["-A na-x -j MARK --set-xmark 0x1000000/0x1000000"]


def test_profile_chain_golden() -> None:
    rules = comp.profile_rules(Direction.INGRESS, 4, True, [SG], MARK)
    sg_chain = comp.group_chain(Direction.INGRESS, SG)
    assert strip(render(rules, 4)) == [
        "-A na-x -m conntrack --ctstate INVALID -j DROP",
        "-A na-x -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN",
        "-A na-x -p udp -m udp --sport 67 -m udp --dport 68 -j RETURN",
        "-A na-x -j MARK --set-xmark 0x0/0x1000000",
        f"-A na-x -j {sg_chain}",
        "-A na-x -m mark --mark 0x1000000/0x1000000 -g na-accept",
        "-A na-x -j DROP",
    ]
    stateless = strip(render(comp.profile_rules(Direction.EGRESS, 4, False, [], MARK), 4))
    assert stateless == [
        "-A na-x -p udp -m udp --sport 68 -m udp --dport 67 -j RETURN",
        "-A na-x -j DROP",
    ]


def test_buckets_and_hook_golden() -> None:
    rules = comp.bucket_rules("e", [("tap3f1c2a8e5d0", "na-po-1"), ("tap3aaaaaaaaaa", None)])
    assert strip(render(rules, 4)) == [
        "-A na-x -m physdev --physdev-in tap3aaaaaaaaaa -j RETURN",
        "-A na-x -m physdev --physdev-in tap3f1c2a8e5d0 -g na-po-1",
        "-A na-x -j DROP",
    ]
    hook = strip(render(comp.hook_rules(4), 4))
    assert hook[0] == (
        "-A na-x -i brq+ -m physdev --physdev-in tap+ --physdev-is-bridged -j na-egress"
    )
    assert (
        hook[-1] == "-A na-x -o qbr+ -m physdev --physdev-out tap+ --physdev-is-bridged -j ACCEPT"
    )
    assert len(strip(render(comp.dispatch_rules("n"), 6))) == 17


def _port(**kw: Any) -> Port:
    base: dict[str, Any] = {
        "id": PORT,
        "network_id": NET.id,
        "mac_address": "fa:16:3e:12:34:56",
        "fixed_ips": (FixedIP(None, ipaddress.ip_address("198.51.100.10")),),
        "security_groups": (SG,),
    }
    base.update(kw)
    return Port(**base)


def test_antispoof_golden() -> None:
    port = _port(
        allowed_address_pairs=(
            AllowedAddressPair(ipaddress.ip_network("0.0.0.0/0"), "fa:16:3e:00:00:99"),
        )
    )
    lines = [rule.render() for rule in antispoof.port_rules(port)]
    assert lines == [
        "-p ARP -s fa:16:3e:12:34:56 --arp-mac-src fa:16:3e:12:34:56 --arp-ip-src "
        "198.51.100.10 -j na-eb-ok",
        "-p IPv4 -s fa:16:3e:12:34:56 --ip-src 198.51.100.10 -j na-eb-ok",
        "-p ARP -s fa:16:3e:00:00:99 --arp-mac-src fa:16:3e:00:00:99 --arp-ip-src 0.0.0.0/0 "
        "-j na-eb-ok",
        "-p IPv4 -s fa:16:3e:00:00:99 --ip-src 0.0.0.0/0 -j na-eb-ok",
        "-p IPv6 -s fa:16:3e:12:34:56 --ip6-src fe80::f816:3eff:fe12:3456 -j na-eb-ok",
        # ARP probes (RFC 5227) only with one of the port's MACs as ARP sender
        "-p ARP -s fa:16:3e:12:34:56 --arp-mac-src fa:16:3e:12:34:56 --arp-ip-src 0.0.0.0 "
        "-j na-eb-ok",
        "-p ARP -s fa:16:3e:00:00:99 --arp-mac-src fa:16:3e:00:00:99 --arp-ip-src 0.0.0.0 "
        "-j na-eb-ok",
        "-j na-eb-tail",
    ]
    # The bucket admits only the port's MACs into its chain; a foreign MAC falls through
    # to the bucket's final DROP.
    bucket = antispoof.bucket_rules([(port.device_name, "na-s-x", antispoof.macs(port))])
    assert [rule.render() for rule in bucket] == [
        f"-i {port.device_name} -s fa:16:3e:12:34:56 -j na-s-x",
        f"-i {port.device_name} -s fa:16:3e:00:00:99 -j na-s-x",
        "-j DROP",
    ]
    # One MAC: the bucket checked it, the chain does not repeat it.
    single = [rule.render() for rule in antispoof.port_rules(_port())]
    assert single == [
        "-p ARP --arp-mac-src fa:16:3e:12:34:56 --arp-ip-src 198.51.100.10 -j na-eb-ok",
        "-p IPv4 --ip-src 198.51.100.10 -j na-eb-ok",
        "-p IPv6 --ip6-src fe80::f816:3eff:fe12:3456 -j na-eb-ok",
        "-p ARP --arp-mac-src fa:16:3e:12:34:56 --arp-ip-src 0.0.0.0 -j na-eb-ok",
        "-j na-eb-tail",
    ]
    unfiltered = antispoof.bucket_rules([(port.device_name, None, ())])
    assert [rule.render() for rule in unfiltered] == [
        f"-i {port.device_name} -j ACCEPT",
        "-j DROP",
    ]


def test_ebrule_validation() -> None:
    with pytest.raises(ValueError):
        EbRule("ACCEPT", "IPv4", arp_ip_src=ipaddress.IPv4Network("1.2.3.4/32"))
    with pytest.raises(ValueError):
        EbRule("ACCEPT", "IPv4", ip_src=ipaddress.IPv6Network("::/0"))
    with pytest.raises(ValueError):
        EbRule("bad chain")
    with pytest.raises(ValueError):
        EbRule("ACCEPT", in_iface="tap x")
    with pytest.raises(ValueError):
        EbRule("ACCEPT", "IPv4", sport=67)


def test_conntrack_filters_collapse() -> None:
    ports = [
        _port(fixed_ips=(FixedIP(None, ipaddress.ip_address(f"198.51.100.{i}")),))
        for i in range(1, 8)
    ]
    removed = [r(direction=Direction.INGRESS, protocol=6)]
    filters = ct.for_removed_rules(removed, ports)
    assert [(f.family, f.proto, f.dst) for f in filters] == [(4, 6, None)]
    few = ct.for_removed_rules(removed, ports[:2])
    assert {str(f.dst) for f in few} == {"198.51.100.1", "198.51.100.2"}
    members = ct.for_removed_members([ipaddress.ip_network("198.51.100.77/32")], ports[:1])
    assert {(str(f.src), str(f.dst)) for f in members} == {
        ("198.51.100.77", "None"),
        ("None", "198.51.100.77"),
    }


# -- fuzzing ------------------------------------------------------------------------------

_protocols = st.sampled_from([None, 0, 1, 6, 17, 33, 47, 58, 132, 136, 255])
_prefix4 = st.builds(
    lambda a, n: ipaddress.ip_network((a, n), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
_prefix6 = st.builds(
    lambda a, n: ipaddress.ip_network((a, n), strict=False),
    st.integers(0, 2**128 - 1),
    st.integers(0, 128),
)


@st.composite
def sg_rules(draw: st.DrawFn) -> SecurityGroupRule:
    ethertype = draw(st.sampled_from(list(EtherType)))
    low = draw(st.one_of(st.none(), st.integers(-5, 70000)))
    high = draw(st.one_of(st.none(), st.integers(-5, 70000)))
    remote = draw(st.sampled_from(["none", "prefix", "wrongprefix", "group"]))
    prefix = None
    if remote in ("prefix", "wrongprefix"):
        v4 = (ethertype is EtherType.IPV4) == (remote == "prefix")
        prefix = draw(_prefix4 if v4 else _prefix6)
    return r(
        direction=draw(st.sampled_from(list(Direction))),
        ethertype=ethertype,
        protocol=draw(_protocols),
        port_range_min=low if draw(st.booleans()) else None,
        port_range_max=high,
        icmp_type=draw(st.one_of(st.none(), st.integers(-1, 300))),
        icmp_code=draw(st.one_of(st.none(), st.integers(-1, 300))),
        remote_ip_prefix=prefix,
        remote_group_id=RG if remote == "group" else None,
    )


@settings(max_examples=400, deadline=None)
@given(st.lists(sg_rules(), max_size=6), st.sampled_from([4, 6]), st.sampled_from(list(Direction)))
def test_fuzz_group_compiler_valid_text_or_value_error(
    rules: list[SecurityGroupRule], family: int, direction: Direction
) -> None:
    group = SecurityGroup(SG, rules=tuple(rules))
    try:
        compiled = comp.compile_group(group, MARK)[(family, direction)]
    except comp.FirewallBuildError as exc:
        assert exc.port_id == SG
        return
    lines = ["*filter", ":nax - [0:0]", *render(compiled, family, "nax"), "COMMIT"]
    text = "\n".join(lines) + "\n"
    priv_ipt.check_restore_input("filter", text)


_macs = st.builds(
    lambda b: ":".join(f"{x:02x}" for x in [b[0] & 0xFE, *b[1:]]),
    st.binary(min_size=6, max_size=6),
)


@st.composite
def ports(draw: st.DrawFn) -> Port:
    fixed = draw(
        st.lists(
            st.one_of(
                st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
                st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
            ),
            max_size=3,
            unique=True,
        )
    )
    pairs = draw(
        st.lists(
            st.builds(
                AllowedAddressPair, st.one_of(_prefix4, _prefix6), st.one_of(st.none(), _macs)
            ),
            max_size=3,
        )
    )
    return _port(
        mac_address=draw(_macs),
        fixed_ips=tuple(FixedIP(None, a) for a in fixed),
        allowed_address_pairs=tuple(pairs),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ports())
def test_fuzz_port_chains_valid_text(port: Port) -> None:
    record = driver.build_record(port, _state([port], []))
    body = [f"-A na-s-x {rule.render()}" for rule in record.spoof_rules]
    priv_eb.check_restore_input("*nat\n:na-s-x RETURN\n" + "\n".join(body) + "\nCOMMIT\n")
    nd_rules = nd.bucket_rules(
        [(port.device_name, antispoof.own_v6_pairs(port), antispoof.macs(port))]
    )
    text = "*filter\n:na-d-3 - [0:0]\n" + "\n".join(render(nd_rules, 6, "na-d-3")) + "\nCOMMIT\n"
    priv_ipt.check_restore_input("filter", text)


# -- the driver over a fake kernel ---------------------------------------------------------


class FakeKernel:
    """Records restore inputs; can refuse chains whose text contains a marker."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.inputs: list[str] = []
        self.refuse: str | None = None
        monkeypatch.setattr(priv_ipt, "save", lambda *a: "")
        monkeypatch.setattr(priv_ipt, "restore", self.ipt_restore)
        monkeypatch.setattr(priv_eb, "save", lambda *a: "")
        monkeypatch.setattr(priv_eb, "restore", self.eb_restore)
        monkeypatch.setattr(priv_ipset, "restore", lambda ns, text: self.inputs.append(text))
        monkeypatch.setattr(priv_ipset, "destroy", lambda ns, name: None)
        self.deleted: list[Any] = []
        monkeypatch.setattr(lct, "delete_entries", lambda ns, f: self.deleted.extend(f) or 0)

    def ipt_restore(
        self, ns: Any, backend: str, family: int, table: str, text: str, *, settle: bool = True
    ) -> None:
        priv_ipt.check_restore_input(table, text)
        if self.refuse:
            for n, line in enumerate(text.splitlines(), 1):
                if self.refuse in line:
                    raise priv_ipt.IptablesRestoreError(family, table, 2, f"line {n}: refused")
        self.inputs.append(text)

    def eb_restore(self, ns: Any, text: str, table: str = "nat") -> None:
        priv_eb.check_restore_input(text, table)
        self.inputs.append(text)


@pytest.fixture
def fw(monkeypatch: pytest.MonkeyPatch) -> tuple[driver.IptablesFirewallDriver, FakeKernel]:
    kernel = FakeKernel(monkeypatch)
    conf = cfg.ConfigOpts()
    iptables_conf.register_opts(conf)
    fixture = config_fixture.Config(conf)
    fixture.setUp()
    fixture.config(group="iptables", backend="nft", verify_interval=None)
    return driver.IptablesFirewallDriver(conf, netns="natest-unit"), kernel


def _state(ports: list[Port], groups: list[SecurityGroup]) -> DesiredState:
    return DesiredState.build(networks=[NET], ports=ports, security_groups=groups)


def test_driver_incremental_and_isolated(
    fw: tuple[driver.IptablesFirewallDriver, FakeKernel],
) -> None:
    drv, kernel = fw
    good = SecurityGroup(
        SG,
        rules=(r(direction=Direction.INGRESS, protocol=6, port_range_min=22, port_range_max=22),),
    )
    bad = SecurityGroup(
        RG, rules=(r(security_group_id=RG, direction=Direction.INGRESS, protocol=6, icmp_type=3),)
    )
    p1 = _port()
    p2 = _port(id="4f1c2a8e-5d0b-4c57-9a57-0d5f8b5d2e12", mac_address="fa:16:3e:00:00:02")
    p3 = _port(
        id="5f1c2a8e-5d0b-4c57-9a57-0d5f8b5d2e13",
        mac_address="fa:16:3e:00:00:03",
        security_groups=(RG,),
    )
    state = _state([p1, p2, p3], [good, bad])
    out = drv.apply_ports([PortPlan(p, NET) for p in (p1, p2, p3)], state)
    assert out.succeeded == {p1.id, p2.id}
    assert set(out.failed) == {p3.id}
    assert "tap5f1c2a8e5d" not in "".join(kernel.inputs)  # the failed port is in no bucket
    # unchanged: nothing written
    kernel.inputs.clear()
    out = drv.apply_ports([PortPlan(p, NET) for p in (p1, p2)], state)
    assert out.succeeded == {p1.id, p2.id} and kernel.inputs == []
    # a rule change rewrites only that group's chain
    good2 = SecurityGroup(SG, rules=(*good.rules, r(direction=Direction.INGRESS, protocol=17)))
    out = drv.apply_ports([PortPlan(p, NET) for p in (p1, p2)], _state([p1, p2, p3], [good2, bad]))
    assert out.succeeded == {p1.id, p2.id}
    assert len(kernel.inputs) == 1
    written = [x for x in kernel.inputs[0].splitlines() if x.startswith(":")]
    assert written == [f":{comp.group_chain(Direction.INGRESS, SG)} - [0:0]"] or written == []
    # removing the UDP rule deletes conntrack entries of that protocol for the ports
    kernel.deleted.clear()
    drv.apply_ports([PortPlan(p, NET) for p in (p1, p2)], state)
    assert {(f.proto, str(f.dst)) for f in kernel.deleted} == {(17, "198.51.100.10")}


def test_driver_kernel_refusal_fails_only_owners(
    fw: tuple[driver.IptablesFirewallDriver, FakeKernel],
) -> None:
    drv, kernel = fw
    g1 = SecurityGroup(SG, rules=(r(direction=Direction.INGRESS, protocol=6),))
    g2 = SecurityGroup(
        RG, rules=(r(security_group_id=RG, direction=Direction.INGRESS, protocol=132),)
    )
    p1 = _port()
    p2 = _port(id="4f1c2a8e-5d0b-4c57-9a57-0d5f8b5d2e12", security_groups=(RG,))
    kernel.refuse = "-p sctp"
    out = drv.apply_ports([PortPlan(p, NET) for p in (p1, p2)], _state([p1, p2], [g1, g2]))
    assert out.succeeded == {p1.id}
    assert set(out.failed) == {p2.id}
    kernel.refuse = None
    out = drv.apply_ports([PortPlan(p2, NET)], _state([p1, p2], [g1, g2]))
    assert out.succeeded == {p2.id}


@pytest.mark.parametrize(
    ("owner", "secured"),
    [
        ("network:router_interface", False),
        ("network:router_gateway", False),
        ("compute:nova", True),
        ("network:routerx", True),
    ],
)
def test_router_ports_are_not_filtered(owner: str, secured: bool) -> None:
    # a router forwards other hosts' addresses and answers for its floating IPs
    port = _port(device_owner=owner, security_groups=())
    assert driver.build_record(port, _state([port], [])).secured is secured
