"""Security group rules, groups and address groups."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from netagent.model import (
    AddressGroup,
    Direction,
    EtherType,
    ModelError,
    SecurityGroup,
    SecurityGroupRule,
)
from tests.unit.model import samples as s
from tests.unit.model.samples import DELETE, changed


def test_api_rule() -> None:
    rule = SecurityGroupRule.from_api(s.rule())
    assert rule == SecurityGroupRule(
        id=s.RULE,
        security_group_id=s.SG,
        direction=Direction.INGRESS,
        ethertype=EtherType.IPV4,
        protocol=6,
        port_range_min=22,
        port_range_max=22,
        remote_ip_prefix=ipaddress.ip_network("198.51.100.0/24"),
    )


@pytest.mark.parametrize(
    ("protocol", "ethertype", "number"),
    [
        ("tcp", "IPv4", 6),
        ("TCP", "IPv4", 6),
        ("udp", "IPv6", 17),
        ("icmp", "IPv4", 1),
        ("icmp", "IPv6", 58),
        ("ipv6-icmp", "IPv6", 58),
        ("icmpv6", "IPv6", 58),
        ("1", "IPv6", 58),
        ("sctp", "IPv4", 132),
        ("vrrp", "IPv4", 112),
        ("6", "IPv4", 6),
        (17, "IPv4", 17),
        # Protocol 0 is "any protocol" (Neutron's meaning), never hop-by-hop only.
        (0, "IPv4", None),
        (0, "IPv6", None),
        ("0", "IPv4", None),
        ("000", "IPv6", None),
        ("hopopt", "IPv4", None),
        ("HOPOPT", "IPv6", None),
        (255, "IPv6", 255),
        ("any", "IPv4", None),
        (None, "IPv4", None),
    ],
)
def test_protocols(protocol: object, ethertype: str, number: int | None) -> None:
    data = s.rule(protocol=protocol, ethertype=ethertype, port_range_min=None, port_range_max=None)
    data["remote_ip_prefix"] = None
    assert SecurityGroupRule.from_api(data).protocol == number


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"protocol": "icmp", "port_range_min": 8, "port_range_max": 0}, (None, None, 8, 0)),
        ({"protocol": "icmp", "port_range_min": 8, "port_range_max": None}, (None, None, 8, None)),
        (
            {"protocol": "icmp", "port_range_min": None, "port_range_max": None},
            (None, None, None, None),
        ),
        (
            {"protocol": "udp", "port_range_min": 1, "port_range_max": 65535},
            (1, 65535, None, None),
        ),
        ({"protocol": "dccp", "port_range_min": 5, "port_range_max": 6}, (5, 6, None, None)),
        (
            {"protocol": "gre", "port_range_min": None, "port_range_max": None},
            (None, None, None, None),
        ),
    ],
)
def test_port_ranges(changes: dict[str, Any], expected: tuple[object, ...]) -> None:
    rule = SecurityGroupRule.from_api(s.rule(**changes))
    assert (rule.port_range_min, rule.port_range_max, rule.icmp_type, rule.icmp_code) == expected


def test_remote_prefix_is_masked() -> None:
    rule = SecurityGroupRule.from_api(s.rule(remote_ip_prefix="198.18.0.1/15"))
    assert rule.remote_ip_prefix == ipaddress.ip_network("198.18.0.0/15")
    assert SecurityGroupRule.from_api(
        s.rule(remote_ip_prefix="198.51.100.7")
    ).remote_ip_prefix == (ipaddress.ip_network("198.51.100.7/32"))


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("id", "rule-1", "id"),
        ("security_group_id", "sg", "security_group_id"),
        ("direction", "in", "direction"),
        ("direction", DELETE, "direction"),
        ("ethertype", "ipv4", "ethertype"),
        ("protocol", "tcp6", "protocol"),
        ("protocol", "256", "protocol"),
        ("protocol", 256, "protocol"),
        ("protocol", -1, "protocol"),
        ("protocol", "06 ", "protocol"),
        ("protocol", "\u0661", "protocol"),
        ("protocol", "", "protocol"),
        ("protocol", 6.0, "protocol"),
        ("port_range_min", 0, "port_range_min"),
        ("port_range_min", 65536, "port_range_min"),
        ("port_range_min", 23, "port_range_min"),
        ("port_range_min", "22", "port_range_min"),
        ("port_range_max", DELETE, "port_range_max"),
        ("port_range_min", DELETE, "port_range_min"),
        ("protocol", DELETE, "port_range_min"),
        ("protocol", "gre", "port_range_min"),
        ("remote_ip_prefix", "fd00::/8", "remote_ip_prefix"),
        ("remote_ip_prefix", "198.51.100.0/24\n", "remote_ip_prefix"),
        ("remote_group_id", s.SG, "remote_group_id"),
        ("remote_address_group_id", s.AG, "remote_address_group_id"),
    ],
)
def test_invalid_rule(path: str, value: object, field: str) -> None:
    with pytest.raises(ModelError) as info:
        SecurityGroupRule.from_api(changed(s.rule(), path, value))
    expected_id = None if field == "id" else s.RULE
    assert (info.value.kind, info.value.object_id, info.value.field) == (
        "security_group_rule",
        expected_id,
        field,
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"protocol": "icmp", "port_range_min": 256, "port_range_max": None}, "port_range_min"),
        ({"protocol": "icmp", "port_range_min": 3, "port_range_max": 256}, "port_range_max"),
        ({"protocol": "icmp", "port_range_min": None, "port_range_max": 0}, "port_range_min"),
        ({"protocol": "ipv6-icmp", "port_range_min": None, "port_range_max": None}, "protocol"),
        ({"protocol": 58, "port_range_min": None, "port_range_max": None}, "protocol"),
    ],
)
def test_invalid_icmp_rule(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ModelError) as info:
        SecurityGroupRule.from_api(s.rule(remote_ip_prefix=None, **changes))
    assert info.value.field == field


def test_rpc_rules() -> None:
    rule = SecurityGroupRule.from_rpc(s.rpc_rule(), s.SG)
    assert rule.remote_ip_prefix == ipaddress.ip_network("198.51.100.0/24")
    assert rule.security_group_id == s.SG and rule.id is None
    egress = SecurityGroupRule.from_rpc(
        {"direction": "egress", "ethertype": "IPv6", "dest_ip_prefix": "fd00::/8"}
    )
    assert egress.remote_ip_prefix == ipaddress.ip_network("fd00::/8")
    ra = SecurityGroupRule.from_rpc(
        {
            "direction": "ingress",
            "ethertype": "IPv6",
            "protocol": "ipv6-icmp",
            "source_port_range_min": 134,
        }
    )
    assert (ra.protocol, ra.icmp_type, ra.source_port_range_min) == (58, 134, None)
    dhcp = SecurityGroupRule.from_rpc(
        {
            "direction": "ingress",
            "ethertype": "IPv4",
            "protocol": "udp",
            "port_range_min": 68,
            "port_range_max": 68,
            "source_port_range_min": 67,
            "dest_ip_prefix": "192.0.2.10/32",
        }
    )
    assert (dhcp.source_port_range_min, dhcp.source_port_range_max) == (67, 67)
    assert (
        dhcp.local_ip_prefix == ipaddress.ip_network("192.0.2.10/32")
        and dhcp.remote_ip_prefix is None
    )


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("source_ip_prefix", "fd00::/64", "source_ip_prefix"),
        ("source_port_range_max", 10, "source_port_range_min"),
        ("security_group_id", s.SG2, "security_group_id"),
    ],
)
def test_invalid_rpc_rule(path: str, value: object, field: str) -> None:
    with pytest.raises(ModelError) as info:
        SecurityGroupRule.from_rpc(changed(s.rpc_rule(), path, value), s.SG)
    assert info.value.field == field


def test_api_rule_refuses_rpc_only_fields() -> None:
    with pytest.raises(ModelError) as info:
        SecurityGroupRule.from_api(s.rule(source_port_range_min=67))
    assert info.value.field == "source_port_range_min"


def test_security_group() -> None:
    group = SecurityGroup.from_api(s.security_group())
    assert (group.id, group.name, group.stateful, len(group.rules)) == (s.SG, "web", True, 4)
    assert all(rule.security_group_id == s.SG for rule in group.rules)
    assert group.rules[2].protocol == 58 and group.rules[2].icmp_type == 128


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("name", "web\tservers", "name"),
        ("stateful", "true", "stateful"),
        ("security_group_rules", "all", "security_group_rules"),
        ("security_group_rules[1].direction", "both", "security_group_rules[1].direction"),
        (
            "security_group_rules[0].security_group_id",
            s.SG2,
            "security_group_rules[0].security_group_id",
        ),
        (
            "security_group_rules[3].remote_address_group_id",
            "ag",
            "security_group_rules[3].remote_address_group_id",
        ),
    ],
)
def test_invalid_security_group(path: str, value: object, field: str) -> None:
    with pytest.raises(ModelError) as info:
        SecurityGroup.from_api(changed(s.security_group(), path, value))
    assert (info.value.kind, info.value.object_id, info.value.field) == (
        "security_group",
        s.SG,
        field,
    )


def test_security_group_from_rpc() -> None:
    group = SecurityGroup.from_rpc(s.SG, [s.rpc_rule(stateful=False)])
    assert not group.stateful and group.rules[0].security_group_id == s.SG
    assert SecurityGroup.from_rpc(s.SG, []).stateful
    with pytest.raises(ModelError) as info:
        SecurityGroup.from_rpc(s.SG, [s.rpc_rule(stateful=False), s.rpc_rule()])
    assert info.value.field == "rules"
    with pytest.raises(ModelError) as info:
        SecurityGroup.from_rpc("sg", [])
    assert info.value.field == "id"


def test_address_group() -> None:
    group = AddressGroup.from_api(s.address_group())
    assert group.addresses == (
        ipaddress.ip_network("198.51.100.0/25"),
        ipaddress.ip_network("fd00:9::/64"),
        ipaddress.ip_network("198.51.100.200/32"),
    )
    with pytest.raises(ModelError) as info:
        AddressGroup.from_api(changed(s.address_group(), "addresses[1]", "fd00:9::/129"))
    assert info.value.field == "addresses[1]"


@pytest.mark.parametrize(
    ("changes", "summary"),
    [
        ({"protocol": 0, "ethertype": "IPv6"}, "ingress IPv6 any protocol from anywhere"),
        ({"protocol": "hopopt"}, "ingress IPv4 any protocol from anywhere"),
        ({"protocol": None}, "ingress IPv4 any protocol from anywhere"),
        (
            {"protocol": "tcp", "port_range_min": 22, "port_range_max": 22},
            "ingress IPv4 tcp port 22-22 from anywhere",
        ),
        (
            {"protocol": "icmp", "port_range_min": 8, "port_range_max": 0},
            "ingress IPv4 icmp type 8 code 0 from anywhere",
        ),
        (
            {"direction": "egress", "protocol": 47, "remote_ip_prefix": "198.51.100.7/24"},
            "egress IPv4 gre to 198.51.100.0/24",
        ),
        ({"protocol": 253}, "ingress IPv4 protocol 253 from anywhere"),
    ],
)
def test_summary_reads_protocol_zero_as_any(changes: dict[str, object], summary: str) -> None:
    data = s.rule(port_range_min=None, port_range_max=None, remote_ip_prefix=None)
    data.update(changes)
    assert SecurityGroupRule.from_api(data).summary() == summary
