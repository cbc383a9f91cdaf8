"""Network and Subnet parsing."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from netagent.model import ModelError, Network, NetworkType, Subnet
from tests.unit.model import samples as s
from tests.unit.model.samples import DELETE, changed


def test_vxlan_network() -> None:
    net = Network.from_api(s.network())
    assert net == Network(s.NET, "tenant", NetworkType.VXLAN, 1001, None, 1450, True)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {
                "provider:network_type": "flat",
                "provider:segmentation_id": None,
                "provider:physical_network": "physnet1",
            },
            (NetworkType.FLAT, None, "physnet1"),
        ),
        (
            {
                "provider:network_type": "vlan",
                "provider:segmentation_id": 4094,
                "provider:physical_network": "phys.net_1-a",
            },
            (NetworkType.VLAN, 4094, "phys.net_1-a"),
        ),
        (
            {"provider:network_type": "local", "provider:segmentation_id": None},
            (NetworkType.LOCAL, None, None),
        ),
        ({"provider:segmentation_id": 16777215}, (NetworkType.VXLAN, 16777215, None)),
        ({"provider:segmentation_id": 1}, (NetworkType.VXLAN, 1, None)),
    ],
)
def test_valid_segments(changes: dict[str, Any], expected: tuple[object, ...]) -> None:
    net = Network.from_api(s.network(**changes))
    assert (net.network_type, net.segmentation_id, net.physical_network) == expected


def test_defaults() -> None:
    data = s.network()
    del data["mtu"], data["admin_state_up"], data["name"]
    net = Network.from_api(data)
    assert (net.mtu, net.admin_state_up, net.name) == (1500, True, "")


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("id", DELETE, "id"),
        ("id", "5BF5B5FE-D6AB-4868-BAC7-A0DEA247A672", "id"),
        ("name", "my\nnet", "name"),
        ("name", "n" * 256, "name"),
        ("provider:network_type", "gre", "provider:network_type"),
        ("provider:network_type", DELETE, "provider:network_type"),
        ("provider:segmentation_id", 0, "provider:segmentation_id"),
        ("provider:segmentation_id", 16777216, "provider:segmentation_id"),
        ("provider:segmentation_id", None, "provider:segmentation_id"),
        ("provider:segmentation_id", "1001", "provider:segmentation_id"),
        ("provider:segmentation_id", True, "provider:segmentation_id"),
        ("provider:physical_network", "physnet1", "provider:physical_network"),
        ("mtu", 67, "mtu"),
        ("mtu", 65536, "mtu"),
        ("mtu", 1450.0, "mtu"),
        ("admin_state_up", "yes", "admin_state_up"),
    ],
)
def test_invalid_vxlan_network(path: str, value: object, field: str) -> None:
    with pytest.raises(ModelError) as info:
        Network.from_api(changed(s.network(), path, value))
    assert info.value.field == field
    assert info.value.kind == "network"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (
            {
                "provider:network_type": "vlan",
                "provider:segmentation_id": 4095,
                "provider:physical_network": "p",
            },
            "provider:segmentation_id",
        ),
        (
            {"provider:network_type": "vlan", "provider:segmentation_id": 10},
            "provider:physical_network",
        ),
        (
            {"provider:network_type": "flat", "provider:physical_network": "p"},
            "provider:segmentation_id",
        ),
        (
            {"provider:network_type": "flat", "provider:segmentation_id": None},
            "provider:physical_network",
        ),
        (
            {
                "provider:network_type": "flat",
                "provider:segmentation_id": None,
                "provider:physical_network": "p n",
            },
            "provider:physical_network",
        ),
        (
            {
                "provider:network_type": "local",
                "provider:segmentation_id": None,
                "provider:physical_network": "p",
            },
            "provider:physical_network",
        ),
    ],
)
def test_invalid_segments(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ModelError) as info:
        Network.from_api(s.network(**changes))
    assert info.value.field == field


def test_network_from_device_details() -> None:
    net = Network.from_device_details(s.device_details())
    assert net == Network(s.NET, "", NetworkType.VLAN, 101, "physnet1", 1500, True)
    with pytest.raises(ModelError) as info:
        Network.from_device_details(s.device_details(segmentation_id=5000))
    assert (info.value.kind, info.value.object_id, info.value.field) == (
        "network",
        s.NET,
        "segmentation_id",
    )


def test_subnets() -> None:
    sub = Subnet.from_api(s.subnet())
    assert sub.cidr == ipaddress.ip_network("192.0.2.0/24")
    assert sub.gateway_ip == ipaddress.ip_address("192.0.2.1")
    assert (sub.ip_version, sub.enable_dhcp) == (4, True)
    six = Subnet.from_api(s.subnet6())
    assert (six.ip_version, six.ipv6_ra_mode, six.ipv6_address_mode) == (6, "slaac", "slaac")
    data = s.subnet(gateway_ip=None)
    del data["ip_version"]
    assert Subnet.from_api(data).ip_version == 4


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("network_id", "n1", "network_id"),
        ("cidr", "192.0.2.1/24", "cidr"),
        ("cidr", "192.0.2.0", "cidr"),
        ("cidr", DELETE, "cidr"),
        ("ip_version", 6, "ip_version"),
        ("ip_version", 5, "ip_version"),
        ("ip_version", "4", "ip_version"),
        ("gateway_ip", "fd00::1", "gateway_ip"),
        ("gateway_ip", "192.0.2.1 ", "gateway_ip"),
        ("ipv6_ra_mode", "slaac", "ipv6_ra_mode"),
        ("enable_dhcp", 1, "enable_dhcp"),
    ],
)
def test_invalid_subnet(path: str, value: object, field: str) -> None:
    with pytest.raises(ModelError) as info:
        Subnet.from_api(changed(s.subnet(), path, value))
    assert (info.value.kind, info.value.object_id, info.value.field) == (
        "subnet",
        s.SUBNET4,
        field,
    )


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [("ipv6_address_mode", "dhcp", "ipv6_address_mode"), ("cidr", "fd00:1::1/64", "cidr")],
)
def test_invalid_subnet6(path: str, value: object, field: str) -> None:
    with pytest.raises(ModelError) as info:
        Subnet.from_api(changed(s.subnet6(), path, value))
    assert info.value.field == field
