"""The security_group_info_for_devices reply."""

from __future__ import annotations

import ipaddress

import pytest

from netagent.model import EtherType, MemberAddress, ModelError, SecurityGroupInfo
from tests.unit.model import samples as s
from tests.unit.model.samples import changed


def test_reply() -> None:
    info = SecurityGroupInfo.from_rpc(s.sg_info())
    assert info.errors == ()
    port = info.devices[s.PORT]
    assert [f.subnet_id for f in port.fixed_ips] == [None, None]
    assert [str(a) for a in port.addresses] == ["192.0.2.10", "fd00:1::10"]
    assert [r.icmp_type for r in info.provider_rules[s.PORT]] == [134, None]
    assert len(info.security_groups[s.SG].rules) == 3
    assert info.member_ips[s.SG][EtherType.IPV4] == (
        MemberAddress(ipaddress.ip_network("192.0.2.10/32")),
        MemberAddress(ipaddress.ip_network("192.0.2.200/32"), "fa:16:3e:12:34:56"),
    )
    assert EtherType.IPV6 not in info.member_ips[s.SG]


def test_bare_member_strings_of_call_version_1_2() -> None:
    reply = changed(s.sg_info(), f"sg_member_ips.{s.SG}.IPv4", ["192.0.2.10", "192.0.2.11"])
    members = SecurityGroupInfo.from_rpc(reply).member_ips[s.SG][EtherType.IPV4]
    assert [m.mac_address for m in members] == [None, None]


@pytest.mark.parametrize(
    ("path", "value", "kind", "field"),
    [
        (f"devices.{s.PORT}.fixed_ips[0]", "192.0.2.300", "port", "fixed_ips[0]"),
        (f"devices.{s.PORT}.id", s.PORT2, "port", "id"),
        (
            f"devices.{s.PORT}.security_group_rules[1].dest_ip_prefix",
            "fd00::/64",
            "port",
            "security_group_rules[1].dest_ip_prefix",
        ),
        (f"security_groups.{s.SG}[1].protocol", "bogus", "security_group", "rules[1].protocol"),
        (f"sg_member_ips.{s.SG}.IPv4[1][0]", "fd00::1", "security_group", "IPv4[1]"),
        (f"sg_member_ips.{s.SG}.IPv4[1][1]", "01:00:00:00:00:00", "security_group", "IPv4[1][1]"),
    ],
)
def test_bad_parts_are_reported_and_left_out(
    path: str, value: object, kind: str, field: str
) -> None:
    info = SecurityGroupInfo.from_rpc(changed(s.sg_info(), path, value))
    [error] = info.errors
    assert (error.kind, error.field) == (kind, field)
    assert len(info.devices) + len(info.security_groups) + len(info.member_ips) == 2


def test_bad_reply() -> None:
    with pytest.raises(ModelError):
        SecurityGroupInfo.from_rpc([])
    with pytest.raises(ModelError) as info:
        SecurityGroupInfo.from_rpc({"devices": []})
    assert info.value.field == "devices"
