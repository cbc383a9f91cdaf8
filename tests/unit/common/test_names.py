"""Name derivation: interop names exact, all names within kernel limits and distinct."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netagent.common import constants as c
from netagent.common import names

PORT = "3f1c2a8e-5d0b-4c57-9a57-0d5f8b5d2e11"
NET = "9b8e6c1a-0d3f-4e5a-8b7c-6d5e4f3a2b1c"

uuids = st.uuids().map(str)

DEVICE_FUNCS = [
    names.tap_device,
    names.hybrid_bridge,
    names.hybrid_veth_bridge_side,
    names.hybrid_veth_ovs_side,
    names.network_bridge,
    names.router_internal_device,
    names.router_gateway_device,
    names.vlan_device,
]


def test_interop_names_match_nova_and_neutron() -> None:
    assert names.tap_device(PORT) == "tap3f1c2a8e-5d"
    assert names.hybrid_bridge(PORT) == "qbr3f1c2a8e-5d"
    assert names.hybrid_veth_bridge_side(PORT) == "qvb3f1c2a8e-5d"
    assert names.hybrid_veth_ovs_side(PORT) == "qvo3f1c2a8e-5d"
    assert names.network_bridge(NET) == "brq9b8e6c1a-0d"
    assert names.router_namespace(NET) == "qrouter-" + NET
    assert names.router_internal_device(PORT) == "qr-3f1c2a8e-5d"
    assert names.router_gateway_device(PORT) == "qg-3f1c2a8e-5d"


@pytest.mark.parametrize(
    "bad", ["", "3F1C2A8E-5D0B-4C57-9A57-0D5F8B5D2E11", "x" * 36, PORT + " ", "tap; rm", 7]
)
@pytest.mark.parametrize("func", [*DEVICE_FUNCS, names.router_namespace, names.compact_id])
def test_bad_ids_raise_value_error(func: object, bad: object) -> None:
    with pytest.raises(ValueError):
        func(bad)  # type: ignore[operator]


@given(uuids)
@settings(max_examples=300)
def test_device_names_fit_ifnamsiz(resource_id: str) -> None:
    for func in DEVICE_FUNCS:
        assert len(func(resource_id)) <= c.MAX_DEVICE_NAME_LEN


@given(uuids, uuids)
@settings(max_examples=300)
def test_full_id_names_are_distinct_for_distinct_ids(a: str, b: str) -> None:
    if a == b:
        return
    assert names.compact_id(a) != names.compact_id(b)
    for direction in ("ingress", "egress"):
        assert names.security_group_chain(direction, a) != names.security_group_chain(direction, b)
    for family in (4, 6):
        assert names.ipset_name(family, a) != names.ipset_name(family, b)


def test_compact_id_is_injective_on_extremes() -> None:
    low = str(uuid.UUID(int=0))
    high = str(uuid.UUID(int=2**128 - 1))
    assert names.compact_id(low) == "0" * 25
    assert len(names.compact_id(high)) == 25
    assert names.compact_id(low) != names.compact_id(high)


@given(uuids)
@settings(max_examples=300)
def test_chain_and_set_names_fit_kernel_limits(group_id: str) -> None:
    for direction in ("ingress", "egress"):
        assert len(names.security_group_chain(direction, group_id)) <= c.MAX_CHAIN_NAME_LEN
        assert len(names.port_chain(direction, group_id)) <= c.MAX_CHAIN_NAME_LEN
    for family in (4, 6):
        for temporary in (False, True):
            name = names.ipset_name(family, group_id, temporary=temporary)
            assert len(name) <= c.MAX_IPSET_NAME_LEN
            assert name.isalnum()
    assert names.ipset_name(4, group_id) != names.ipset_name(4, group_id, temporary=True)
    assert names.ipset_name(4, group_id) != names.ipset_name(6, group_id)


def test_kinds_do_not_collide() -> None:
    generated = {
        names.port_chain("ingress", PORT),
        names.port_chain("egress", PORT),
        names.port_spoof_chain(PORT),
        names.security_group_chain("ingress", PORT),
        names.security_group_chain("egress", PORT),
    }
    assert len(generated) == 5


@pytest.mark.parametrize("vni", [0, -1, 2**24, True, "5", 1.0])
def test_bad_vni(vni: object) -> None:
    with pytest.raises(ValueError):
        names.vxlan_device(vni)  # type: ignore[arg-type]


def test_vxlan_names() -> None:
    assert names.vxlan_device(1) == "nvx-1"
    assert names.vxlan_device(2**24 - 1) == "nvx-16777215"
    assert len(names.vxlan_device(2**24 - 1)) <= c.MAX_DEVICE_NAME_LEN


def test_bad_direction_and_family() -> None:
    with pytest.raises(ValueError):
        names.port_chain("sideways", PORT)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        names.ipset_name(5, PORT)  # type: ignore[arg-type]
