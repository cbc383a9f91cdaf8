"""Pure logic of the kernel layer: name validation, op validation, message encoding."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from netagent.linux import ip_lib, neighbour, sysctl
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
from netagent.privileged.nlsocket import Request


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
        {"op": "set_bridge_port", "name": "vx"},  # no flag
        {"op": "set_bridge_port", "name": "vx", "neigh_suppress": 1},  # not a bool
    ],
)
def test_bad_ops_rejected_before_sending(op: dict[str, object]) -> None:
    # _dry_run is what execute() runs before it opens any socket
    with pytest.raises(InvalidArgument):
        batch._dry_run([op])


def _encoded(request: Request) -> nl.Message:
    """Encode a built request with pyroute2 and decode it back with the class of its type."""
    data = nl.encode(request.msg, request.msg_type, request.flags, 42)
    (msg,) = nl.decode(data)
    assert msg["header"]["sequence_number"] == 42
    assert msg["header"]["type"] == request.msg_type
    return msg


def test_veth_encoding_nests_peer() -> None:
    ctx = nlbuild.Context(lambda name: {"br0": 7}[name])
    op = {"op": "create_veth", "name": "a", "peer_name": "b", "master": "br0", "mtu": 1450}
    built = nlbuild.create_veth({**op, "up": True, "peer_up": True}, ctx)
    (kind, target, create), (_k, peer_target, peer_up) = built
    assert (kind, target, peer_target) == ("link", "a", "b")
    assert create.msg_type == nl.RTM_NEWLINK
    assert create.flags == nl.NLM_F_CREATE | nl.NLM_F_EXCL
    msg = _encoded(create)
    assert msg.get_attr("IFLA_IFNAME") == "a"
    assert msg.get_attr("IFLA_MASTER") == 7
    assert msg.get_attr("IFLA_MTU") == 1450
    assert msg["flags"] & nl.IFF_UP and msg["change"] & nl.IFF_UP
    info = msg.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "veth"
    peer = info.get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert peer.get_attr("IFLA_IFNAME") == "b"
    assert peer["flags"] == 0  # never IFF_UP at creation
    # the peer is brought up by a separate RTM_SETLINK (IFF_UP at creation: ENOTCONN)
    assert peer_up.msg_type == nl.RTM_SETLINK
    assert _encoded(peer_up)["flags"] & nl.IFF_UP


def test_vxlan_encoding() -> None:
    ctx = nlbuild.Context(lambda name: {"eth1": 9}[name])
    op = {"op": "create_vxlan", "name": "vx", "vni": 1000, "local": "192.0.2.1"}
    ((_kind, _target, request),) = nlbuild.create_vxlan(
        {**op, "port": 4790, "underlay": "eth1", "ttl": 64}, ctx
    )
    data = nl.encode(request.msg, request.msg_type, request.flags, 1)
    # IFLA_VXLAN_PORT (15) goes in network byte order
    assert struct.pack("=HH", 6, 15) + struct.pack("!H", 4790) in data
    vxlan = _encoded(request).get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
    assert vxlan.get_attr("IFLA_VXLAN_ID") == 1000
    assert vxlan.get_attr("IFLA_VXLAN_PORT") == 4790
    assert vxlan.get_attr("IFLA_VXLAN_LOCAL") == "192.0.2.1"
    assert vxlan.get_attr("IFLA_VXLAN_LEARNING") == 0
    assert vxlan.get_attr("IFLA_VXLAN_LINK") == 9
    assert vxlan.get_attr("IFLA_VXLAN_TTL") == 64


def test_vlan_encoding_and_validation() -> None:
    ctx = nlbuild.Context(lambda name: {"eth1": 9}[name])
    op = {"op": "create_vlan", "name": "eth1.100", "link": "eth1", "vlan_id": 100, "mtu": 1500}
    ((kind, target, request),) = nlbuild.create_vlan(op, ctx)
    assert (kind, target, request.msg_type) == ("link", "eth1.100", nl.RTM_NEWLINK)
    assert request.flags == nl.NLM_F_CREATE | nl.NLM_F_EXCL
    msg = _encoded(request)
    assert msg.get_attr("IFLA_IFNAME") == "eth1.100"
    assert msg.get_attr("IFLA_LINK") == 9
    assert msg.get_attr("IFLA_MTU") == 1500
    info = msg.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "vlan"
    assert info.get_attr("IFLA_INFO_DATA").get_attr("IFLA_VLAN_ID") == 100
    for bad in ({"vlan_id": 0}, {"vlan_id": 4095}, {"vlan_id": True}, {"link": "a b"}):
        with pytest.raises(InvalidArgument):
            batch._dry_run([{**op, **bad}])


def test_fdb_and_route_encoding() -> None:
    ctx = nlbuild.Context(lambda name: {"vx": 11, "a": 3}[name])
    fdb = {"op": "add_fdb", "device": "vx", "mac": "00:00:00:00:00:00"}
    ((_k, _t, request),) = nlbuild.add_fdb({**fdb, "destination": "fd00::7", "append": True}, ctx)
    assert request.flags == nl.NLM_F_CREATE | nl.NLM_F_APPEND
    msg = _encoded(request)
    assert (msg["family"], msg["ifindex"], msg["flags"]) == (7, 11, nl.NTF_SELF)
    assert msg.get_attr("NDA_DST") == "fd00::7"
    assert msg.get_attr("NDA_LLADDR") == "00:00:00:00:00:00"
    route = {"op": "add_route", "destination": "10.0.0.0/8", "device": "a", "table": 1000}
    ((_k, _t, request),) = nlbuild.add_route({**route, "gateway": "192.0.2.1"}, ctx)
    msg = _encoded(request)
    assert (msg["dst_len"], msg["table"], msg["type"]) == (8, nl.RT_TABLE_COMPAT, nl.RTN_UNICAST)
    assert msg.get_attr("RTA_TABLE") == 1000
    assert msg.get_attr("RTA_DST") == "10.0.0.0"
    assert msg.get_attr("RTA_GATEWAY") == "192.0.2.1"
    assert msg.get_attr("RTA_OIF") == 3
    with pytest.raises(InvalidArgument):
        batch._dry_run([{**route, "source": "fd00::1"}])


def test_bridge_port_encoding() -> None:
    ctx = nlbuild.Context(lambda name: {"vx": 11}[name])
    op = {"op": "set_bridge_port", "name": "vx", "neigh_suppress": True, "learning": False}
    ((kind, target, request),) = nlbuild.set_bridge_port(op, ctx)
    assert (kind, target, request.msg_type, request.flags) == ("link", "vx", nl.RTM_SETLINK, 0)
    data = nl.encode(request.msg, request.msg_type, request.flags, 1)
    # IFLA_PROTINFO (12) must carry NLA_F_NESTED, or the bridge reads one STP-state byte
    assert struct.pack("=H", 12 | nl.NLA_F_NESTED) in data
    msg = _encoded(request)
    assert (msg["family"], msg["index"]) == (7, 11)  # AF_BRIDGE, by ifindex
    info = msg.get_attr("IFLA_PROTINFO")
    assert info.get_attr("IFLA_BRPORT_NEIGH_SUPPRESS") == 1
    assert info.get_attr("IFLA_BRPORT_LEARNING") == 0
    with pytest.raises(InvalidArgument):
        ip_lib.set_bridge_port("vx", namespace="nope")
    with pytest.raises(InvalidArgument):
        ip_lib.set_bridge_port("vx", neigh_suppress="on", namespace="nope")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        ip_lib.Batch(None).set_bridge_port("bad name", learning=True)


def test_linux_api_validates_before_sending() -> None:
    # no namespace exists and nothing is root here: these must fail on the arguments
    for vlan_id in (0, 4095, True):
        with pytest.raises(InvalidArgument):
            ip_lib.create_vlan("v.1", "eth1", vlan_id, namespace="nope")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        ip_lib.create_vlan("v.1", "bad parent", 10, namespace="nope")
    with pytest.raises(InvalidArgument):
        ip_lib.set_link("v0", namespace="nope", master="br0", nomaster=True)
    with pytest.raises(InvalidArgument):
        sysctl.set_disable_ipv6("nope", "eth1.100")
    with pytest.raises(InvalidArgument):
        neighbour.add_fdb_entries("vx", [("not-a-mac", ipaddress.ip_address("192.0.2.1"))])
    assert neighbour.is_flooding_mac("00:00:00:00:00:00")
    assert neighbour.is_flooding_mac("01:00:5E:00:00:01")
    assert not neighbour.is_flooding_mac("fa:16:3e:00:00:01")


def test_capped_ack_decoding() -> None:
    # NLMSG_ERROR as the kernel sends it with NETLINK_CAP_ACK and extended acks:
    # error, the request's header, then NLMSGERR_ATTR_MSG
    text = b"Unknown device type\0"
    tlv = struct.pack("=HH", 4 + len(text), 1) + text + b"\0" * (-len(text) % 4)
    body = struct.pack("=i", -95) + struct.pack("=IHHII", 100, nl.RTM_NEWLINK, 0x605, 5, 0)
    header = struct.pack("=IHHII", 16 + len(body) + len(tlv), nl.NLMSG_ERROR, 0x300, 5, 0)
    done = struct.pack("=IHHII", 20, nl.NLMSG_DONE, 2, 6, 0) + struct.pack("=i", 0)
    ack, end = nl.decode(header + body + tlv + done)
    assert isinstance(ack, nl.AckMsg)
    assert ack["error"] == -95 and ack["header"]["sequence_number"] == 5
    assert ack["req_type"] == nl.RTM_NEWLINK
    assert ack.get_attr("NLMSGERR_ATTR_MSG") == "Unknown device type"
    assert end["header"]["type"] == nl.NLMSG_DONE and end["error"] == 0


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
