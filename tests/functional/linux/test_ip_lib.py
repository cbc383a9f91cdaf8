"""Devices and addresses against the real kernel (netagent.linux.ip_lib)."""

from __future__ import annotations

import errno
import ipaddress
import json
from collections.abc import Callable

import pytest

from netagent.linux import errors, ip_lib
from netagent.linux import netns as netns_lib
from netagent.privileged import batch as priv_batch
from netagent.privileged import nlsocket
from netagent.privileged.errors import (
    DeviceExists,
    DeviceNotFound,
    EntryExists,
    EntryNotFound,
    InvalidArgument,
    KernelError,
    NamespaceNotFound,
)
from tests.functional.linux.helpers import apply_all, ip_do, ip_out, ping, wait_for

V4 = ipaddress.ip_interface
apply = ip_lib.apply


def _details(namespace: str, device: str) -> dict:  # type: ignore[type-arg]
    return json.loads(ip_out(namespace, "-j", "-d", "link", "show", device))[0]  # type: ignore[no-any-return]


def test_veth_same_namespace(netns: str) -> None:
    op = ip_lib.CreateVeth(name="va", peer="vb", mtu=1400, peer_mtu=1300, up=True, peer_up=True)
    apply(op, namespace=netns)
    a = ip_lib.get_device("va", namespace=netns)
    b = ip_lib.get_device("vb", namespace=netns)
    assert (a.kind, a.mtu, a.up) == ("veth", 1400, True)
    assert (b.kind, b.mtu, b.up) == ("veth", 1300, True)
    assert ip_out(netns, "link", "show", "vb").count("vb@va") == 1


def test_veth_peer_in_other_namespace_passes_ping(make_netns: Callable[[str], str]) -> None:
    left, right = make_netns("l"), make_netns("r")
    apply(
        ip_lib.CreateVeth(name="vl", peer="vr", peer_namespace=right, up=True, mtu=1450),
        namespace=left,
    )
    assert ip_lib.device_exists("vr", namespace=right)
    assert not ip_lib.device_exists("vr", namespace=left)
    assert not ip_lib.get_device("vr", namespace=right).up  # never up at creation
    apply_all(left, ip_lib.AddAddress(device="vl", cidr="198.51.100.1/24"))
    apply_all(
        right,
        ip_lib.SetLink(name="vr", up=True),
        ip_lib.AddAddress(device="vr", cidr="198.51.100.2/24"),
    )
    assert ping(left, "198.51.100.2")


def test_tap(netns: str) -> None:
    # a tap as libvirt makes it (netagent never creates taps), configured by SetLink
    ip_do(netns, "tuntap", "add", "dev", "tap0", "mode", "tap")
    apply(ip_lib.SetLink(name="tap0", mtu=1450, mac="fa:16:3e:00:00:01", up=True), namespace=netns)
    tap = ip_lib.get_device("tap0", namespace=netns)
    assert (tap.kind, tap.mtu, tap.mac, tap.up) == ("tun", 1450, "fa:16:3e:00:00:01", True)


def test_bridge_enslave_release(netns: str) -> None:
    apply(ip_lib.CreateBridge(name="br0", mtu=1400, up=True), namespace=netns)
    bridge = ip_lib.get_device("br0", namespace=netns)
    assert (bridge.kind, bridge.mtu, bridge.up) == ("bridge", 1400, True)
    assert bridge.data == {"stp_state": 0, "ageing_time": 300, "forward_delay": 0}
    apply(ip_lib.CreateVeth(name="d0", peer="d0p"), namespace=netns)
    apply(ip_lib.SetLink(name="d0", master="br0"), namespace=netns)
    port = ip_lib.get_device("d0", namespace=netns)
    assert (port.master, port.slave_kind) == ("br0", "bridge")
    apply(ip_lib.SetLink(name="d0", nomaster=True), namespace=netns)
    assert ip_lib.get_device("d0", namespace=netns).master is None
    with pytest.raises(InvalidArgument):
        ip_lib.CreateBridge(name="br1", ageing_time=0)
    apply(ip_lib.CreateBridge(name="br2", ageing_time=20, forward_delay=2), namespace=netns)
    assert ip_lib.get_device("br2", namespace=netns).data == {
        "stp_state": 0,
        "ageing_time": 20,
        "forward_delay": 2,
    }


def test_bridge_port_flags(netns: str) -> None:
    apply_all(
        netns,
        ip_lib.CreateBridge(name="brp", up=True),
        ip_lib.CreateVeth(name="bp0", peer="bp0p", master="brp"),
    )
    port = ip_lib.get_device("bp0", namespace=netns)
    assert (port.neigh_suppress, port.port_learning) == (False, True)  # the kernel's defaults
    apply(ip_lib.SetBridgePort(name="bp0", neigh_suppress=True, learning=False), namespace=netns)
    port = ip_lib.get_device("bp0", namespace=netns)
    assert (port.neigh_suppress, port.port_learning) == (True, False)
    apply(ip_lib.SetBridgePort(name="bp0", learning=True), namespace=netns)  # one flag only
    port = ip_lib.get_device("bp0", namespace=netns)
    assert (port.neigh_suppress, port.port_learning) == (True, True)
    assert ip_lib.get_device("bp0p", namespace=netns).neigh_suppress is None  # not a port


def test_vxlan(netns: str) -> None:
    apply_all(
        netns,
        ip_lib.CreateVeth(name="under0", peer="under0p", up=True),
        ip_lib.AddAddress(device="under0", cidr="198.18.0.1/15"),
        ip_lib.CreateVxlan(
            name="vx-100",
            vni=100,
            local="198.18.0.1",
            port=4790,
            learning=False,
            underlay="under0",
            mtu=1450,
        ),
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
    apply(ip_lib.CreateVxlan(name="vx-101", vni=101, learning=True), namespace=netns)
    assert ip_lib.get_device("vx-101", namespace=netns).data["learning"] is True


def test_link_attributes(netns: str) -> None:
    apply(ip_lib.CreateVeth(name="d1", peer="d1p"), namespace=netns)
    apply(ip_lib.SetLink(name="d1", mtu=1280), namespace=netns)
    apply(ip_lib.SetLink(name="d1", mac="02:00:00:00:00:aa"), namespace=netns)
    apply(ip_lib.SetLink(name="d1", up=True), namespace=netns)
    link = ip_lib.get_device("d1", namespace=netns)
    assert (link.mtu, link.mac, link.up) == (1280, "02:00:00:00:00:aa", True)
    # a change that does not mention up leaves the device up
    apply(ip_lib.SetLink(name="d1", mtu=1300), namespace=netns)
    assert ip_lib.get_device("d1", namespace=netns).up
    apply(ip_lib.SetLink(name="d1", up=False), namespace=netns)
    link = ip_lib.get_device("d1", namespace=netns)
    assert (link.up, link.mtu) == (False, 1300)
    names = {link.name for link in ip_lib.list_devices(namespace=netns)}
    assert names == {"lo", "d1", "d1p"}
    apply(ip_lib.DeleteLink(name="d1"), namespace=netns)
    assert not ip_lib.device_exists("d1", namespace=netns)
    assert not ip_lib.device_exists("d1p", namespace=netns)  # the peer went with it
    apply(ip_lib.DeleteLink(name="d1"), namespace=netns, missing_ok=True)
    with pytest.raises(DeviceNotFound):
        apply(ip_lib.DeleteLink(name="d1"), namespace=netns)
    with pytest.raises(DeviceNotFound):  # missing_ok is for deletions only
        apply(ip_lib.SetLink(name="d1", mtu=1400), namespace=netns, missing_ok=True)


def test_addresses(netns: str) -> None:
    apply(ip_lib.CreateBridge(name="d2", up=True), namespace=netns)
    apply(ip_lib.AddAddress(device="d2", cidr="203.0.113.5/24"), namespace=netns)
    apply(ip_lib.AddAddress(device="d2", cidr="fd00:1::5/64", nodad=True), namespace=netns)
    found = {a.interface for a in ip_lib.list_addresses(namespace=netns, device="d2")}
    assert V4("203.0.113.5/24") in found and V4("fd00:1::5/64") in found
    text = ip_out(netns, "addr", "show", "dev", "d2")
    assert "brd 203.0.113.255" in text
    assert "nodad" in text and "tentative" not in text.split("fd00:1::5")[1].split("\n")[0]
    with pytest.raises(EntryExists):
        apply(ip_lib.AddAddress(device="d2", cidr="203.0.113.5/24"), namespace=netns)
    apply(ip_lib.DeleteAddress(device="d2", cidr="203.0.113.5/24"), namespace=netns)
    with pytest.raises(EntryNotFound):
        apply(ip_lib.DeleteAddress(device="d2", cidr="203.0.113.5/24"), namespace=netns)
    assert len(ip_lib.list_addresses(namespace=netns, device="d2", family=4)) == 0


def test_vlan(netns: str) -> None:
    apply(ip_lib.CreateVeth(name="p0", peer="p0p", up=True), namespace=netns)
    try:
        op = ip_lib.CreateVlan(name="p0.100", link="p0", vlan_id=100, mtu=1400, up=True)
        apply(op, namespace=netns)
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
    apply(ip_lib.CreateBridge(name="brm"), namespace=netns)
    apply(ip_lib.CreateVeth(name="m0", peer="m0p"), namespace=netns)
    apply(ip_lib.SetLink(name="m0", master="brm", mtu=1400, up=True), namespace=netns)
    port = ip_lib.get_device("m0", namespace=netns)
    assert (port.master, port.mtu, port.up) == ("brm", 1400, True)
    apply(ip_lib.SetLink(name="m0", nomaster=True), namespace=netns)
    assert ip_lib.get_device("m0", namespace=netns).master is None
    with pytest.raises(DeviceNotFound):
        apply(ip_lib.SetLink(name="m0", master="nosuchbr", mtu=1300), namespace=netns)
    assert ip_lib.get_device("m0", namespace=netns).mtu == 1400


def test_typed_errors(netns: str) -> None:
    with pytest.raises(DeviceNotFound):
        apply(ip_lib.SetLink(name="nosuchdev", mtu=1400), namespace=netns)
    with pytest.raises(DeviceNotFound):
        apply(ip_lib.DeleteLink(name="nosuchdev"), namespace=netns)
    with pytest.raises(DeviceNotFound):
        ip_lib.get_device("nosuchdev", namespace=netns)
    with pytest.raises(DeviceNotFound):
        apply(ip_lib.AddAddress(device="nosuchdev", cidr="192.0.2.1/24"), namespace=netns)
    apply(ip_lib.CreateBridge(name="d3"), namespace=netns)
    with pytest.raises(DeviceExists):
        apply(ip_lib.CreateVeth(name="d3", peer="d3p"), namespace=netns)
    with pytest.raises(DeviceNotFound):
        apply(ip_lib.SetLink(name="d3", master="nosuchbr"), namespace=netns)
    with pytest.raises(NamespaceNotFound):
        apply(ip_lib.CreateBridge(name="d4"), namespace=netns + "-missing")
    with pytest.raises(NamespaceNotFound):
        op = ip_lib.CreateVeth(name="d4", peer="d4p", peer_namespace=netns + "-missing")
        apply(op, namespace=netns)
    assert not ip_lib.device_exists("d4", namespace=netns)
    # drivers catch these from netagent.linux.errors: the same classes
    assert errors.DeviceNotFound is DeviceNotFound and errors.EntryExists is EntryExists


@pytest.mark.parametrize(
    "name", ["", "x" * 16, "a/b", "a b", "a:b", ".", "..", "tap\n0", "ä", "a;rm"]
)
def test_invalid_names_rejected_before_kernel(
    netns: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_socket(_ns: str | None) -> None:
        raise AssertionError("netlink socket requested for an invalid name")

    monkeypatch.setattr(nlsocket, "get_socket", no_socket)
    monkeypatch.setattr(priv_batch, "get_socket", no_socket)
    with pytest.raises(InvalidArgument):
        ip_lib.CreateBridge(name=name)
    with pytest.raises(InvalidArgument):
        ip_lib.CreateVeth(name="ok0", peer=name)
    with pytest.raises(InvalidArgument):
        ip_lib.SetLink(name="ok0", master=name)
    with pytest.raises(InvalidArgument):
        ip_lib.AddAddress(device=name, cidr="192.0.2.1/24")
    with pytest.raises(InvalidArgument):
        ip_lib.get_device(name, namespace=netns)
    with pytest.raises(InvalidArgument):
        ip_lib.Batch(netns).add({"op": "create_bridge", "name": name})  # type: ignore[arg-type]


def test_batch_reports_per_request_errors(netns: str) -> None:
    batch = ip_lib.Batch(netns)
    ops = [
        ip_lib.CreateBridge(name="b0", up=True),
        ip_lib.CreateBridge(name="b0"),  # exists
        ip_lib.SetLink(name="ghost", mtu=1400),  # missing
        ip_lib.CreateBridge(name="b1"),
        ip_lib.AddAddress(device="b1", cidr="192.0.2.9/24"),
    ]
    for number, op in enumerate(ops):
        batch.add(op, owner=f"owner-{number}")
    assert len(batch) == len(ops)
    failed = batch.send()
    assert len(batch) == 0  # sent: the queue is empty again
    assert [(f.owner, f.op) for f in failed] == [("owner-1", ops[1]), ("owner-2", ops[2])]
    assert isinstance(failed[0].error, DeviceExists)
    assert isinstance(failed[1].error, DeviceNotFound)
    assert ip_lib.get_device("b0", namespace=netns).up
    assert [a.interface for a in ip_lib.list_addresses(namespace=netns, device="b1")] == [
        V4("192.0.2.9/24")
    ]
    assert batch.send() == []  # nothing queued: nothing sent


def test_batch_one_missing_device_fails_alone(netns: str) -> None:
    taps = [f"tapm{i}" for i in range(6)]
    for tap in taps:
        ip_do(netns, "tuntap", "add", "dev", tap, "mode", "tap")
    apply(ip_lib.CreateBridge(name="brm1", up=True), namespace=netns)
    batch = ip_lib.Batch(netns)
    for tap in taps:
        batch.add(ip_lib.SetLink(name=tap, mtu=1450, up=True), owner=f"port-{tap}")
    missing = ip_lib.SetLink(name="tapgone0", mtu=1450, up=True)
    batch.add(missing, owner="port-gone")
    for tap in taps:  # requests after the failing one
        batch.add(ip_lib.SetLink(name=tap, master="brm1"), owner=f"port-{tap}")
    batch.add(ip_lib.AddAddress(device="brm1", cidr="198.51.100.1/24"), owner="network")

    failed = batch.send()
    assert [(f.owner, f.op) for f in failed] == [("port-gone", missing)]
    assert isinstance(failed[0].error, errors.DeviceNotFound)
    assert failed[0].error.errno == errno.ENODEV
    for tap in taps:
        link = ip_lib.get_device(tap, namespace=netns)
        assert (link.mtu, link.up, link.master) == (1450, True, "brm1"), tap
    found = [a.interface for a in ip_lib.list_addresses(namespace=netns, device="brm1", family=4)]
    assert found == [V4("198.51.100.1/24")]


def test_batch_tap_vanished_before_send(netns: str) -> None:
    """A port's tap is deleted (the VM went away) between the pass that read the links and
    the send of the pass's batch: that port's requests fail, typed, with their owner;
    every other port is wired."""
    apply(ip_lib.CreateBridge(name="brv", up=True), namespace=netns)
    ports = {f"port-{i}": f"tapv{i}" for i in range(4)}
    for tap in ports.values():
        ip_do(netns, "tuntap", "add", "dev", tap, "mode", "tap")
    batch = ip_lib.Batch(netns)
    for owner, tap in ports.items():
        batch.add(ip_lib.SetLink(name=tap, master="brv", mtu=1450, up=True), owner=owner)
        batch.add(ip_lib.SetBridgePort(name=tap, neigh_suppress=True, learning=False), owner)
    apply(ip_lib.DeleteLink(name="tapv2"), namespace=netns)  # the tap vanishes

    failed = batch.send()
    assert [f.owner for f in failed] == ["port-2", "port-2"]
    assert [type(f.op) for f in failed] == [ip_lib.SetLink, ip_lib.SetBridgePort]
    assert all(isinstance(f.error, errors.DeviceNotFound) for f in failed)
    assert all(f.error.errno == errno.ENODEV for f in failed)
    for owner, tap in ports.items():
        if owner == "port-2":
            assert not ip_lib.device_exists(tap, namespace=netns)
            continue
        link = ip_lib.get_device(tap, namespace=netns)
        assert (link.master, link.mtu, link.up) == ("brv", 1450, True), tap
        assert (link.neigh_suppress, link.port_learning) == (True, False), tap


def test_batch_invalid_op_sends_nothing(netns: str) -> None:
    batch = ip_lib.Batch(netns)
    batch.add(ip_lib.CreateBridge(name="c0"))
    with pytest.raises(InvalidArgument):
        ip_lib.SetLink(name="c0", mtu=10)  # below the minimum MTU: no such operation exists
    with pytest.raises(InvalidArgument):
        batch.add({"op": "set_link", "name": "c0", "mtu": 1400})  # type: ignore[arg-type]
    assert len(batch) == 1
    assert not ip_lib.device_exists("c0", namespace=netns)
    # one bad element in a list given to the privileged layer: none of the list is sent
    with pytest.raises(InvalidArgument):
        priv_batch.execute(netns, [ip_lib.CreateBridge(name="c1"), {"op": "x"}])  # type: ignore[list-item]
    assert not ip_lib.device_exists("c1", namespace=netns)
    assert batch.send() == []
    assert ip_lib.device_exists("c0", namespace=netns)


def test_batch_wiring_passes_ping(netns: str, make_netns: Callable[[str], str]) -> None:
    vm1, vm2 = make_netns("vm1"), make_netns("vm2")
    ops: list[ip_lib.Op] = [ip_lib.CreateBridge(name="brq", up=True)]
    for vm, tap in ((vm1, "tapa"), (vm2, "tapb")):
        ops.append(
            ip_lib.CreateVeth(
                name=tap, peer="eth0", peer_namespace=vm, master="brq", up=True, mtu=1450
            )
        )
    apply_all(netns, *ops)
    for vm, addr in ((vm1, "198.18.1.1/15"), (vm2, "198.18.1.2/15")):
        apply_all(
            vm,
            ip_lib.SetLink(name="eth0", mtu=1450, up=True),
            ip_lib.AddAddress(device="eth0", cidr=addr),
        )
    assert wait_for(lambda: ping(vm1, "198.18.1.2"), timeout=6)


def test_socket_cache_reused_and_dropped(make_netns: Callable[[str], str]) -> None:
    name = make_netns("cache")
    apply(ip_lib.CreateBridge(name="s0"), namespace=name)
    sock = nlsocket.get_socket(name)
    apply(ip_lib.CreateBridge(name="s1"), namespace=name)
    assert nlsocket.get_socket(name) is sock
    netns_lib.delete(name)
    with pytest.raises(NamespaceNotFound):
        ip_lib.list_devices(namespace=name)
    netns_lib.create(name)  # same name, new namespace: a new socket
    assert nlsocket.get_socket(name) is not sock
    assert {link.name for link in ip_lib.list_devices(namespace=name)} == {"lo"}
