"""Pure logic of the kernel layer: name validation, op validation, message encoding."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from netagent.privileged import batch, nlbuild, packets, validate
from netagent.privileged import nlcodec as nl
from netagent.privileged.errors import (
    DeviceExists,
    DeviceNotFound,
    EntryExists,
    EntryNotFound,
    InvalidArgument,
    KernelError,
    NamespaceNotFound,
    translate,
)


@pytest.mark.parametrize("name", ["eth0", "tap1234567890a", "br-int", "a.b_c", "x" * 15])
def test_valid_device_names(name: str) -> None:
    assert validate.device_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "x" * 16, ".", "..", "a/b", "a b", "a:b", "é", "a\n", None, 5, "a;b", "$(x)"]
)
def test_invalid_device_names(name: object) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate.device_name(name)
    assert info.value.field == "device"


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "x" * 129, "../x", "a b"])
def test_invalid_namespace_names(name: str) -> None:
    with pytest.raises(InvalidArgument):
        validate.namespace_name(name)


def test_mac_and_ranges() -> None:
    assert validate.mac_address("FA:16:3E:00:00:01") == "fa:16:3e:00:00:01"
    for bad in ("fa:16:3e:00:00", "fa-16-3e-00-00-01", "zz:16:3e:00:00:01"):
        with pytest.raises(InvalidArgument):
            validate.mac_address(bad)
    with pytest.raises(InvalidArgument):
        validate.int_range(True, 0, 10, "x")
    with pytest.raises(InvalidArgument):
        validate.int_range(11, 0, 10, "x")


@pytest.mark.parametrize(
    "op",
    [
        {"op": "nope"},
        {"op": "create_veth", "name": "a"},  # no peer
        {"op": "create_bridge", "name": "b", "ageing_time": 0},
        {"op": "create_vxlan", "name": "v", "vni": 0},
        {"op": "set_link", "name": "a", "mtu": 20},
        {"op": "add_address", "device": "a", "cidr": "300.1.1.1/24"},
        {"op": "add_route", "destination": "10.0.0.1/8"},  # host bits set
        {"op": "add_route", "destination": "10.0.0.0/8", "gateway": "fd00::1"},
        {"op": "add_rule", "family": 6, "source": "10.0.0.0/8"},
        {"op": "add_fdb", "device": "v", "mac": "nonsense"},
        {"op": "create_veth", "name": "a", "peer_name": "b", "peer_namespace": "../x"},
    ],
)
def test_bad_ops_rejected_before_sending(op: dict[str, object]) -> None:
    # _dry_run is what execute() runs before it opens any socket
    with pytest.raises(InvalidArgument):
        batch._dry_run([op])


def test_veth_encoding_nests_peer() -> None:
    ctx = nlbuild.Context(lambda name: {"br0": 7}[name])
    op = {"op": "create_veth", "name": "a", "peer_name": "b", "master": "br0", "mtu": 1450}
    built = nlbuild.create_veth({**op, "up": True, "peer_up": True}, ctx)
    (kind, target, create), (_k, peer_target, peer_up) = built
    assert (kind, target, peer_target) == ("link", "a", "b")
    assert create.msg_type == nl.RTM_NEWLINK
    assert create.flags == nl.NLM_F_CREATE | nl.NLM_F_EXCL
    attrs = nl.parse_attrs(create.body, nl.IFINFOMSG.size)
    assert nl.cstr(attrs[nl.IFLA_IFNAME]) == "a"
    assert nl.u32(attrs[nl.IFLA_MASTER]) == 7
    assert nl.u32(attrs[nl.IFLA_MTU]) == 1450
    info = nl.parse_attrs(attrs[nl.IFLA_LINKINFO])
    assert nl.cstr(info[nl.IFLA_INFO_KIND]) == "veth"
    peer = nl.parse_attrs(info[nl.IFLA_INFO_DATA])[nl.VETH_INFO_PEER]
    assert nl.cstr(nl.parse_attrs(peer, nl.IFINFOMSG.size)[nl.IFLA_IFNAME]) == "b"
    # the peer is brought up by a separate RTM_SETLINK (IFF_UP at creation: ENOTCONN)
    assert peer_up.msg_type == nl.RTM_SETLINK
    assert nl.IFINFOMSG.unpack_from(peer_up.body)[3] & nl.IFF_UP


def test_error_translation_and_rebuild() -> None:
    assert isinstance(translate(19, "link", "op", "x", None), DeviceNotFound)
    assert isinstance(translate(17, "link", "op", "x", None), DeviceExists)
    assert isinstance(translate(17, "route", "op", "x", None), EntryExists)
    assert isinstance(translate(3, "route", "op", "x", None), EntryNotFound)
    assert type(translate(22, "link", "op", "x", None)) is KernelError
    for exc in (
        DeviceNotFound(19, "set_link", "eth9", "ns1"),
        NamespaceNotFound("ns1"),
        InvalidArgument("device", "a/b", "bad"),
        batch.BatchError("ns1", [(0, 19, "link", "set_link", "x", "")]),
    ):
        again = type(exc)(*exc.args)
        assert str(again) == str(exc)


def test_gratuitous_frames() -> None:
    mac = bytes.fromhex("fa163e000001")
    request = packets.arp_frame(mac, ipaddress.IPv4Address("192.0.2.1"), reply=False)
    assert request[:6] == b"\xff" * 6 and request[12:14] == b"\x08\x06"
    assert struct.unpack("!H", request[20:22])[0] == 1
    reply = packets.arp_frame(mac, ipaddress.IPv4Address("192.0.2.1"), reply=True)
    assert struct.unpack("!H", reply[20:22])[0] == 2 and reply[32:38] == mac
    na = packets.na_frame(mac, ipaddress.IPv6Address("fd00::1"), router=False)
    assert na[:6] == bytes.fromhex("333300000001") and na[20] == 58 and na[21] == 255
    icmp = na[54:]
    assert icmp[0] == 136 and struct.unpack("!I", icmp[4:8])[0] == 0x20000000
    # a correct checksum makes the sum over pseudo header + message fold to zero
    src, dst = na[22:38], na[38:54]
    pseudo = src + dst + struct.pack("!I3xB", len(icmp), 58)
    assert packets._checksum(pseudo + icmp) == 0
