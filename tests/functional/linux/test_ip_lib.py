"""Devices and addresses against the real kernel (netagent.linux.ip_lib)."""

from __future__ import annotations

import errno
import ipaddress
import json
from collections.abc import Callable

import pytest

from netagent.linux import ip_lib
from netagent.linux import netns as netns_lib
from netagent.privileged import nlsocket
from netagent.privileged.batch import BatchError
from netagent.privileged.errors import (
    DeviceExists,
    DeviceNotFound,
    EntryExists,
    EntryNotFound,
    InvalidArgument,
    KernelError,
    NamespaceNotFound,
)
from tests.functional.linux.helpers import ip_out, ping, wait_for

V4 = ipaddress.ip_interface


def _details(namespace: str, device: str) -> dict:  # type: ignore[type-arg]
    return json.loads(ip_out(namespace, "-j", "-d", "link", "show", device))[0]  # type: ignore[no-any-return]


def test_veth_same_namespace(netns: str) -> None:
    ip_lib.create_veth("va", "vb", namespace=netns, mtu=1400, peer_mtu=1300, up=True, peer_up=True)
    a = ip_lib.get_device("va", namespace=netns)
    b = ip_lib.get_device("vb", namespace=netns)
    assert (a.kind, a.mtu, a.up) == ("veth", 1400, True)
    assert (b.kind, b.mtu, b.up) == ("veth", 1300, True)
    assert ip_out(netns, "link", "show", "vb").count("vb@va") == 1


def test_veth_peer_in_other_namespace_passes_ping(make_netns: Callable[[str], str]) -> None:
    left, right = make_netns("l"), make_netns("r")
    ip_lib.create_veth(
        "vl", "vr", namespace=left, peer_namespace=right, up=True, peer_up=True, mtu=1450
    )
    assert ip_lib.device_exists("vr", namespace=right)
    assert not ip_lib.device_exists("vr", namespace=left)
    ip_lib.add_address("vl", V4("198.51.100.1/24"), namespace=left)
    ip_lib.add_address("vr", V4("198.51.100.2/24"), namespace=right)
    assert ping(left, "198.51.100.2")


def test_tap(netns: str) -> None:
    ip_lib.create_tap("tap0", namespace=netns, mtu=1450, mac="fa:16:3e:00:00:01", up=True)
    tap = ip_lib.get_device("tap0", namespace=netns)
    assert (tap.kind, tap.mtu, tap.mac, tap.up) == ("tun", 1450, "fa:16:3e:00:00:01", True)
    info = _details(netns, "tap0")["linkinfo"]["info_data"]
    assert info["type"] == "tap" and info["pi"] is False
    with pytest.raises(DeviceExists):
        ip_lib.create_tap("tap0", namespace=netns)


def test_bridge_enslave_release(netns: str) -> None:
    ip_lib.create_bridge("br0", namespace=netns, up=True)
    bridge = ip_lib.get_device("br0", namespace=netns)
    assert bridge.kind == "bridge"
    assert bridge.data == {"stp_state": 0, "ageing_time": 300, "forward_delay": 0}
    ip_lib.create_veth("d0", "d0p", namespace=netns)
    ip_lib.set_master("d0", "br0", namespace=netns)
    port = ip_lib.get_device("d0", namespace=netns)
    assert (port.master, port.slave_kind) == ("br0", "bridge")
    ip_lib.release("d0", namespace=netns)
    assert ip_lib.get_device("d0", namespace=netns).master is None
    with pytest.raises(InvalidArgument):
        ip_lib.create_bridge("br1", namespace=netns, ageing_time=0)


def test_vxlan(netns: str) -> None:
    ip_lib.create_veth("under0", "under0p", namespace=netns, up=True)
    ip_lib.add_address("under0", V4("198.18.0.1/15"), namespace=netns)
    ip_lib.create_vxlan(
        "vx-100",
        100,
        namespace=netns,
        local=ipaddress.ip_address("198.18.0.1"),
        port=4790,
        learning=False,
        underlay="under0",
        mtu=1450,
    )
    vx = ip_lib.get_device("vx-100", namespace=netns)
    under = ip_lib.get_device("under0", namespace=netns)
    assert vx.kind == "vxlan" and vx.mtu == 1450
    assert vx.data == {
        "vni": 100,
        "port": 4790,
        "learning": False,
        "local": "198.18.0.1",
        "underlay": under.index,
    }
    ip_lib.create_vxlan("vx-101", 101, namespace=netns, learning=True)
    assert ip_lib.get_device("vx-101", namespace=netns).data["learning"] is True


def test_link_attributes(netns: str) -> None:
    ip_lib.create_veth("d1", "d1p", namespace=netns)
    ip_lib.set_mtu("d1", 1280, namespace=netns)
    ip_lib.set_mac("d1", "02:00:00:00:00:aa", namespace=netns)
    ip_lib.set_up("d1", namespace=netns)
    link = ip_lib.get_device("d1", namespace=netns)
    assert (link.mtu, link.mac, link.up) == (1280, "02:00:00:00:00:aa", True)
    ip_lib.set_down("d1", namespace=netns)
    assert not ip_lib.get_device("d1", namespace=netns).up
    names = {link.name for link in ip_lib.list_devices(namespace=netns)}
    assert names == {"lo", "d1", "d1p"}
    ip_lib.delete_device("d1", namespace=netns)
    assert not ip_lib.device_exists("d1", namespace=netns)
    ip_lib.delete_device("d1", namespace=netns, missing_ok=True)


def test_addresses(netns: str) -> None:
    ip_lib.create_bridge("d2", namespace=netns, up=True)
    ip_lib.add_address("d2", V4("203.0.113.5/24"), namespace=netns)
    ip_lib.add_address("d2", V4("fd00:1::5/64"), namespace=netns, nodad=True)
    found = {a.interface for a in ip_lib.list_addresses(namespace=netns, device="d2")}
    assert V4("203.0.113.5/24") in found and V4("fd00:1::5/64") in found
    text = ip_out(netns, "addr", "show", "dev", "d2")
    assert "brd 203.0.113.255" in text
    assert "nodad" in text and "tentative" not in text.split("fd00:1::5")[1].split("\n")[0]
    with pytest.raises(EntryExists):
        ip_lib.add_address("d2", V4("203.0.113.5/24"), namespace=netns)
    ip_lib.delete_address("d2", V4("203.0.113.5/24"), namespace=netns)
    with pytest.raises(EntryNotFound):
        ip_lib.delete_address("d2", V4("203.0.113.5/24"), namespace=netns)
    assert len(ip_lib.list_addresses(namespace=netns, device="d2", family=4)) == 0


def test_dummy(netns: str) -> None:
    try:
        ip_lib.create_dummy("dm0", namespace=netns, mtu=1400, up=True)
    except KernelError as exc:
        if exc.errno == errno.EOPNOTSUPP:
            pytest.skip("this kernel has no dummy device support")
        raise
    link = ip_lib.get_device("dm0", namespace=netns)
    assert (link.kind, link.mtu, link.up) == ("dummy", 1400, True)


def test_vlan(netns: str) -> None:
    ip_lib.create_veth("p0", "p0p", namespace=netns, up=True)
    try:
        ip_lib.create_vlan("p0.100", "p0", 100, namespace=netns, mtu=1400, up=True)
    except KernelError as exc:
        if exc.errno == errno.EOPNOTSUPP:
            pytest.skip("kernel has no 802.1q module")
        raise
    link = ip_lib.get_device("p0.100", namespace=netns)
    parent = ip_lib.get_device("p0", namespace=netns)
    assert (link.kind, link.mtu, link.up) == ("vlan", 1400, True)
    assert link.data == {"vlan_id": 100, "link": parent.index}
    assert _details(netns, "p0.100")["linkinfo"]["info_data"]["id"] == 100


def test_set_link_master_in_one_request(netns: str) -> None:
    ip_lib.create_bridge("brm", namespace=netns)
    ip_lib.create_veth("m0", "m0p", namespace=netns)
    ip_lib.set_link("m0", namespace=netns, master="brm", mtu=1400, up=True)
    port = ip_lib.get_device("m0", namespace=netns)
    assert (port.master, port.mtu, port.up) == ("brm", 1400, True)
    ip_lib.set_link("m0", namespace=netns, nomaster=True)
    assert ip_lib.get_device("m0", namespace=netns).master is None
    with pytest.raises(DeviceNotFound):
        ip_lib.set_link("m0", namespace=netns, master="nosuchbr", mtu=1300)
    assert ip_lib.get_device("m0", namespace=netns).mtu == 1400


def test_typed_errors(netns: str) -> None:
    with pytest.raises(DeviceNotFound):
        ip_lib.set_mtu("nosuchdev", 1400, namespace=netns)
    with pytest.raises(DeviceNotFound):
        ip_lib.delete_device("nosuchdev", namespace=netns)
    with pytest.raises(DeviceNotFound):
        ip_lib.get_device("nosuchdev", namespace=netns)
    with pytest.raises(DeviceNotFound):
        ip_lib.add_address("nosuchdev", V4("192.0.2.1/24"), namespace=netns)
    ip_lib.create_bridge("d3", namespace=netns)
    with pytest.raises(DeviceExists):
        ip_lib.create_veth("d3", "d3p", namespace=netns)
    with pytest.raises(DeviceNotFound):
        ip_lib.set_master("d3", "nosuchbr", namespace=netns)
    with pytest.raises(NamespaceNotFound):
        ip_lib.create_bridge("d4", namespace=netns + "-missing")
    with pytest.raises(NamespaceNotFound):
        ip_lib.create_veth("d4", "d4p", namespace=netns, peer_namespace=netns + "-missing")
    assert not ip_lib.device_exists("d4", namespace=netns)


@pytest.mark.parametrize(
    "name", ["", "x" * 16, "a/b", "a b", "a:b", ".", "..", "tap\n0", "ä", "a;rm"]
)
def test_invalid_names_rejected_before_kernel(
    netns: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_socket(_ns: str | None) -> None:
        raise AssertionError("netlink socket requested for an invalid name")

    monkeypatch.setattr(nlsocket, "get_socket", no_socket)
    with pytest.raises(InvalidArgument):
        ip_lib.create_dummy(name, namespace=netns)
    with pytest.raises(InvalidArgument):
        ip_lib.create_veth("ok0", name, namespace=netns)
    with pytest.raises(InvalidArgument):
        ip_lib.set_master("ok0", name, namespace=netns)
    with pytest.raises(InvalidArgument), ip_lib.batch(netns) as b:
        b.create_dummy(name)


def test_batch_reports_per_request_errors(netns: str) -> None:
    with pytest.raises(BatchError) as info, ip_lib.batch(netns) as b:
        b.create_bridge("b0", up=True)
        b.create_bridge("b0")  # exists
        b.set_mtu("ghost", 1400)  # missing
        b.create_bridge("b1")
        b.add_address("b1", V4("192.0.2.9/24"))
    errors = info.value.errors()
    assert [index for index, _exc in errors] == [1, 2]
    assert isinstance(errors[0][1], DeviceExists)
    assert isinstance(errors[1][1], DeviceNotFound)
    assert ip_lib.get_device("b0", namespace=netns).up
    assert [a.interface for a in ip_lib.list_addresses(namespace=netns, device="b1")] == [
        V4("192.0.2.9/24")
    ]


def test_batch_invalid_op_sends_nothing(netns: str) -> None:
    batch = ip_lib.Batch(netns)
    batch.create_bridge("c0")
    batch.add_raw({"op": "set_link", "name": "c0", "mtu": 10})  # below the minimum MTU
    with pytest.raises(InvalidArgument):
        batch.apply()
    assert not ip_lib.device_exists("c0", namespace=netns)


def test_batch_wiring_passes_ping(netns: str, make_netns: Callable[[str], str]) -> None:
    vm1, vm2 = make_netns("vm1"), make_netns("vm2")
    with ip_lib.batch(netns) as b:
        b.create_bridge("brq", up=True)
        for vm, tap in ((vm1, "tapa"), (vm2, "tapb")):
            b.create_veth(tap, "eth0", peer_namespace=vm, master="brq", up=True, mtu=1450)
    for vm, addr in ((vm1, "198.18.1.1/15"), (vm2, "198.18.1.2/15")):
        with ip_lib.batch(vm) as b:
            b.set_link("eth0", mtu=1450, up=True)
            b.add_address("eth0", V4(addr))
    assert wait_for(lambda: ping(vm1, "198.18.1.2"), timeout=6)


def test_socket_cache_reused_and_dropped(make_netns: Callable[[str], str]) -> None:
    name = make_netns("cache")
    ip_lib.create_bridge("s0", namespace=name)
    sock = nlsocket.get_socket(name)
    ip_lib.create_bridge("s1", namespace=name)
    assert nlsocket.get_socket(name) is sock
    netns_lib.delete(name)
    with pytest.raises(NamespaceNotFound):
        ip_lib.list_devices(namespace=name)
    netns_lib.create(name)  # same name, new namespace: a new socket
    assert nlsocket.get_socket(name) is not sock
    assert {link.name for link in ip_lib.list_devices(namespace=name)} == {"lo"}
