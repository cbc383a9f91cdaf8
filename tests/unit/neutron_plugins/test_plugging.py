"""The interface driver's names and MTU rules (no Neutron, no kernel)."""

from __future__ import annotations

import pytest

from netagent.common import names
from netagent.neutron_plugins import plugging

PORT = "3f1c2a9e-7b44-4c1d-9e0a-55aa66bb77cc"


def test_dhcp_agent_names_give_the_ports_tap() -> None:
    # the DHCP agent's get_device_name: ("ns-" + port id)[:14]
    device = ("ns-" + PORT)[:14]
    assert device == names.namespace_side_device(PORT) == "ns-3f1c2a9e-7b"
    assert plugging.host_device(device) == names.tap_device(PORT) == "tap3f1c2a9e-7b"


def test_router_prefixes_map_to_the_tap_too() -> None:
    assert plugging.host_device("qr-3f1c2a9e-7b", "qr-") == "tap3f1c2a9e-7b"
    assert plugging.host_device("qg-3f1c2a9e-7b", "qg-") == "tap3f1c2a9e-7b"


@pytest.mark.parametrize(
    ("device", "prefix"),
    [
        ("tap3f1c2a9e-7b", None),  # not the namespace end
        ("ns-", None),  # nothing behind the prefix
        ("ns-3f1c2a9e-7b", "qr-"),
        ("ns-3f1c2a9e-7b/x", None),
        ("ns-3f1c 2a9e-7b", None),
        ("ns-3f1c2a9e-7b12345", None),  # longer than IFNAMSIZ
        ("", None),
    ],
)
def test_bad_device_names_are_refused(device: str, prefix: str | None) -> None:
    with pytest.raises(ValueError):
        plugging.host_device(device, prefix)


@pytest.mark.parametrize(("value", "expected"), [(None, None), (0, None), (1450, 1450), (68, 68)])
def test_mtu(value: int | None, expected: int | None) -> None:
    assert plugging.mtu(value) == expected


@pytest.mark.parametrize("value", [67, 65536, -1, "1500", 1500.0, True])
def test_bad_mtu_is_refused(value: object) -> None:
    with pytest.raises(ValueError):
        plugging.mtu(value)


def test_plan_names_both_ends_and_carries_mac_and_mtu() -> None:
    plan = plugging.plan(
        PORT, "ns-3f1c2a9e-7b", "FA:16:3E:00:11:22", "qdhcp-" + PORT, mtu_value=1450
    )
    assert plan == plugging.VethPlan(
        host_device="tap3f1c2a9e-7b",
        namespace_device="ns-3f1c2a9e-7b",
        namespace="qdhcp-" + PORT,
        mac="fa:16:3e:00:11:22",
        mtu=1450,
    )


def test_plan_without_namespace_or_mtu() -> None:
    plan = plugging.plan(PORT, "ns-3f1c2a9e-7b", "fa:16:3e:00:11:22", "", mtu_value=None)
    assert plan.namespace is None
    assert plan.mtu is None


def test_plan_refuses_a_device_name_of_another_port() -> None:
    # the agent would wire the tap as the other port (with that port's filter)
    with pytest.raises(ValueError, match="is not port"):
        plugging.plan(PORT, "ns-00000000-00", "fa:16:3e:00:11:22", "qdhcp-x", mtu_value=1450)


@pytest.mark.parametrize("mac", ["01:00:5e:00:00:01", "00:00:00:00:00:00", "fa:16:3e", "x"])
def test_plan_refuses_bad_macs(mac: str) -> None:
    with pytest.raises(ValueError):
        plugging.plan(PORT, "ns-3f1c2a9e-7b", mac, "qdhcp-x", mtu_value=1450)
