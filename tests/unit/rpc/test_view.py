"""Which local ports the Neutron view trusts (left unfiltered) and which it filters."""

from __future__ import annotations

import dataclasses

import pytest

from netagent.model import DeviceDetails, Network, NetworkType, Port
from netagent.model.secgroup import Direction, SecurityGroup, SecurityGroupRule
from netagent.model.sginfo import SecurityGroupInfo
from netagent.rpc.view import NeutronView

NET = "8a6e6b0c-1111-4222-8333-944455556666"
DHCP = "3f1c2a9e-7b44-4c1d-9e0a-55aa66bb77cc"
VM = "5b2d3c4e-1a2b-4c3d-8e4f-001122334455"
SG = "0d0e0f10-2222-4333-8444-955566667777"


def _port(port_id: str, owner: str, security: bool = True) -> Port:
    return Port(
        id=port_id,
        network_id=NET,
        mac_address="fa:16:3e:00:00:01",
        host="host-a",
        device_owner=owner,
        port_security_enabled=security,
    )


def _view(*ports: Port) -> NeutronView:
    view = NeutronView(host="host-a")
    network = Network(
        id=NET,
        name="",
        network_type=NetworkType.VXLAN,
        segmentation_id=1001,
        physical_network=None,
        mtu=1450,
    )
    for port in ports:
        view.details[port.id] = DeviceDetails("tap" + port.id[:11], port, network)
    return view


def _reply(*filtered: Port) -> SecurityGroupInfo:
    devices = {p.id: _with_group(p) for p in filtered}
    return SecurityGroupInfo(devices=devices, provider_rules={}, security_groups={}, member_ips={})


def _with_group(port: Port) -> Port:
    return dataclasses.replace(port, security_groups=(SG,))


def _ready(view: NeutronView) -> dict[str, Port]:
    return {p.id: p for p in view.ready_ports()}


@pytest.mark.parametrize("owner", ["network:dhcp", "network:router_interface"])
def test_network_owned_port_left_out_of_sg_reply_is_unfiltered(owner: str) -> None:
    view = _view(_port(DHCP, owner), _port(VM, "compute:nova"))
    view.merge_sg_info(_reply(_port(VM, "compute:nova")), [DHCP, VM])
    ready = _ready(view)
    assert ready[DHCP].port_security_enabled is False
    assert ready[DHCP].security_groups == ()
    assert ready[VM].port_security_enabled is True
    assert ready[VM].security_groups == (SG,)


def test_compute_port_left_out_of_sg_reply_stays_filtered() -> None:
    # the server omitted it (unknown port, a race): not a reason to drop its filter
    view = _view(_port(VM, "compute:nova"))
    view.merge_sg_info(_reply(), [VM])
    ready = _ready(view)
    assert ready[VM].port_security_enabled is True
    assert ready[VM].security_groups == ()


def test_network_owner_in_sg_reply_keeps_its_filter() -> None:
    # only the server's omission makes a port trusted, not the owner string alone
    port = _port(DHCP, "network:dhcp")
    view = _view(port)
    view.merge_sg_info(_reply(port), [DHCP])
    assert _ready(view)[DHCP].port_security_enabled is True
    assert _ready(view)[DHCP].security_groups == (SG,)


def test_owner_change_to_compute_ends_the_trust() -> None:
    view = _view(_port(DHCP, "network:dhcp"))
    view.merge_sg_info(_reply(), [DHCP])
    assert _ready(view)[DHCP].port_security_enabled is False
    # new details arrive (device_owner changed) before the SG reply is asked again
    view.details[DHCP] = DeviceDetails(
        "tap" + DHCP[:11], _port(DHCP, "compute:nova"), view.details[DHCP].network
    )
    assert _ready(view)[DHCP].port_security_enabled is True


@pytest.mark.parametrize("field", ["remote_group_id", "remote_address_group_id"])
def test_member_change_of_a_remote_group_affects_the_ports_using_it(field: str) -> None:
    """A member update (or an object push) naming a remote group or address group
    refetches the local ports whose rules use it, and no other."""
    remote = "1e2f3a4b-3333-4444-8555-a66677778888"
    view = _view(_port(VM, "compute:nova"), _port(DHCP, "compute:nova"))
    view.merge_sg_info(_reply(_port(VM, "compute:nova")), [VM, DHCP])
    rule = SecurityGroupRule(
        id=None, security_group_id=SG, direction=Direction.INGRESS, **{field: remote}
    )
    view.groups[SG] = SecurityGroup(id=SG, rules=(rule,))
    assert view.ports_affected_by([remote]) == {VM}
    assert view.ports_affected_by(["9e2f3a4b-3333-4444-8555-a66677778888"]) == set()
