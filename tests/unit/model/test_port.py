"""Port parsing: API shape, device details, and the SG-info device shape."""

from __future__ import annotations

import ipaddress

import pytest

from netagent.model import AllowedAddressPair, DeviceDetails, FixedIP, ModelError, Port
from tests.unit.model import samples as s
from tests.unit.model.samples import DELETE, changed


def test_api_port() -> None:
    port = Port.from_api(s.port(mac_address="FA:16:3E:12:34:56"))
    assert port.id == s.PORT
    assert port.mac_address == "fa:16:3e:12:34:56"
    assert port.fixed_ips == (
        FixedIP(s.SUBNET4, ipaddress.ip_address("192.0.2.10")),
        FixedIP(s.SUBNET6, ipaddress.ip_address("fd00:1::10")),
    )
    assert port.host == "host-a"
    assert port.security_groups == (s.SG,)
    assert port.allowed_address_pairs == (
        AllowedAddressPair(ipaddress.ip_network("192.0.2.200/32"), "fa:16:3e:12:34:56"),
    )
    assert port.device_name == "tap3f1c2a8e-5d"
    assert port.device_id == s.VM


def test_defaults_and_normalisation() -> None:
    port = Port.from_api(
        {
            "id": s.PORT,
            "network_id": s.NET,
            "mac_address": "fa-16-3e-00-00-01",
            "binding:host_id": "",
            "device_id": "",
            "security_groups": [s.SG, s.SG2, s.SG],
            "allowed_address_pairs": [{"ip_address": "0.0.0.0/0"}, {"ip_address": "::/0"}],
        }
    )
    assert port.host is None and port.device_id is None
    assert port.mac_address == "fa:16:3e:00:00:01"
    assert port.security_groups == (s.SG, s.SG2)
    assert [p.ip_address for p in port.allowed_address_pairs] == [
        ipaddress.ip_network("0.0.0.0/0"),
        ipaddress.ip_network("::/0"),
    ]
    assert (
        port.fixed_ips,
        port.device_owner,
        port.admin_state_up,
        port.port_security_enabled,
    ) == (
        (),
        "",
        True,
        True,
    )


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("network_id", DELETE, "network_id"),
        ("network_id", None, "network_id"),
        ("mac_address", "01:16:3e:12:34:56", "mac_address"),
        ("mac_address", "fa:16:3e:12:34:56\n", "mac_address"),
        ("fixed_ips", {"subnet_id": s.SUBNET4}, "fixed_ips"),
        ("fixed_ips[1].ip_address", "1.2.3", "fixed_ips[1].ip_address"),
        ("fixed_ips[1].ip_address", "fd00:1::10/64", "fixed_ips[1].ip_address"),
        ("fixed_ips[0].subnet_id", DELETE, "fixed_ips[0].subnet_id"),
        ("fixed_ips[0]", "192.0.2.10", "fixed_ips[0]"),
        ("fixed_ips[1].ip_address", "192.0.2.10", "fixed_ips[1]"),
        ("binding:host_id", "host a", "binding:host_id"),
        ("binding:host_id", "host;rm", "binding:host_id"),
        ("device_owner", "compute:nova\n", "device_owner"),
        ("device_owner", 'x"y', "device_owner"),
        ("device_id", "a b", "device_id"),
        ("admin_state_up", 0, "admin_state_up"),
        ("port_security_enabled", "false", "port_security_enabled"),
        ("security_groups", s.SG, "security_groups"),
        ("security_groups[0]", "default", "security_groups[0]"),
        (
            "allowed_address_pairs[0].ip_address",
            "192.0.2.300",
            "allowed_address_pairs[0].ip_address",
        ),
        ("allowed_address_pairs[0].ip_address", DELETE, "allowed_address_pairs[0].ip_address"),
        (
            "allowed_address_pairs[0].mac_address",
            "ff:ff:ff:ff:ff:ff",
            "allowed_address_pairs[0].mac_address",
        ),
        ("allowed_address_pairs[0]", None, "allowed_address_pairs[0]"),
        ("port_security_enabled", False, "security_groups"),
    ],
)
def test_invalid_port(path: str, value: object, field: str) -> None:
    with pytest.raises(ModelError) as info:
        Port.from_api(changed(s.port(), path, value))
    assert (info.value.kind, info.value.object_id, info.value.field) == ("port", s.PORT, field)


def test_port_security_disabled() -> None:
    port = Port.from_api(
        s.port(port_security_enabled=False, security_groups=[], allowed_address_pairs=[])
    )
    assert not port.port_security_enabled
    with pytest.raises(ModelError) as info:
        Port.from_api(s.port(port_security_enabled=False, security_groups=[]))
    assert info.value.field == "allowed_address_pairs"


def test_bad_id_has_no_object_id() -> None:
    with pytest.raises(ModelError) as info:
        Port.from_api(s.port(id="3f1c2a8e"))
    assert (info.value.object_id, info.value.field) == (None, "id")
    assert str(info.value).startswith("port: field id: not a lower-case UUID")


def test_device_details() -> None:
    details = DeviceDetails.from_rpc(s.device_details(), host="cmp1")
    assert details.device == s.PORT
    assert details.port is not None and details.network is not None
    assert details.port.host == "cmp1"
    assert details.port.security_groups == ()
    assert details.network.segmentation_id == 101
    port = Port.from_device_details(s.device_details(), host="cmp1", security_groups=(s.SG,))
    assert port.security_groups == (s.SG,)
    with pytest.raises(ModelError) as info:
        Port.from_device_details(
            s.device_details(port_security_enabled=False, allowed_address_pairs=[]),
            security_groups=(s.SG,),
        )
    assert info.value.field == "port_security_enabled"


@pytest.mark.parametrize(
    "entry",
    [{"device": s.PORT}, {"device": "tap3f1c2a8e-5d", "no_active_binding": True}],
)
def test_device_details_without_port(entry: dict[str, object]) -> None:
    details = DeviceDetails.from_rpc(entry)
    assert details.port is None and details.network is None
    assert details.no_active_binding == ("no_active_binding" in entry)


@pytest.mark.parametrize(
    ("path", "value", "kind", "field"),
    [
        ("port_id", "x", "port", "port_id"),
        ("device", "tap x", "port", "device"),
        ("mtu", 10, "network", "mtu"),
        ("network_type", "gre", "network", "network_type"),
        ("fixed_ips[0].ip_address", "192.0.2", "port", "fixed_ips[0].ip_address"),
    ],
)
def test_invalid_device_details(path: str, value: object, kind: str, field: str) -> None:
    data = changed(s.device_details(), path, value)
    with pytest.raises(ModelError) as info:
        DeviceDetails.from_rpc(data)
    assert (info.value.kind, info.value.field) == (kind, field)


@pytest.mark.parametrize(
    ("mtu", "address", "refused"),
    [
        (1279, "fd00:1::10", True),
        (1280, "fd00:1::10", False),
        (100, "192.0.2.10", False),
    ],
)
def test_device_details_refuse_an_ipv6_port_on_a_network_below_1280(
    mtu: int, address: str, refused: bool
) -> None:
    entry = s.device_details(mtu=mtu, fixed_ips=[{"subnet_id": s.SUBNET4, "ip_address": address}])
    if not refused:
        assert DeviceDetails.from_rpc(entry).network is not None
        return
    with pytest.raises(ModelError) as info:
        DeviceDetails.from_rpc(entry)
    error = info.value
    assert (error.kind, error.object_id, error.field) == ("network", s.NET, "mtu")
    assert "below 1280" in error.reason and "fd00:1::10" in error.reason
