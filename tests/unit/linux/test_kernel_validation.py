"""Pure logic of the kernel layer: name validation, typed operations, message encoding."""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import json
import struct
from collections.abc import Callable

import pytest

from netagent.linux import ip_lib, sysctl
from netagent.privileged import batch, nlbuild, ops, packets, validate
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


# --- typed operations: validated when made ------------------------------------------------

BAD_OPS: list[tuple[type[ops.Op], dict[str, object], str]] = [
    (ops.CreateVeth, {"name": "a", "peer": "a b"}, "peer"),
    (ops.CreateVeth, {"name": "a", "peer": "b", "peer_namespace": "../x"}, "peer_namespace"),
    (
        ops.CreateVeth,
        {"name": "a", "peer": "b", "peer_namespace": "n", "peer_up": True},
        "peer_up",
    ),
    (ops.CreateVeth, {"name": "a", "peer": "b", "mac": "FA:16:3E:00:00:01"}, "mac"),
    (ops.CreateVeth, {"name": "a", "peer": "b", "peer_mtu": 67}, "peer_mtu"),
    (ops.CreateBridge, {"name": "b", "ageing_time": 0}, "ageing_time"),  # 0 makes a hub
    (ops.CreateBridge, {"name": "b", "forward_delay": 31}, "forward_delay"),
    (ops.CreateBridge, {"name": "b", "up": 1}, "up"),
    (ops.CreateVxlan, {"name": "v", "vni": 0}, "vni"),
    (ops.CreateVxlan, {"name": "v", "vni": 2**24}, "vni"),
    (ops.CreateVxlan, {"name": "v", "vni": 1, "local": "198.18.0.300"}, "local"),
    (ops.CreateVxlan, {"name": "v", "vni": 1, "group": "239.1.1.1/32"}, "group"),
    (ops.CreateVxlan, {"name": "v", "vni": 1, "port": 0}, "port"),
    (ops.CreateVxlan, {"name": "v", "vni": 1, "learning": 1}, "learning"),
    (ops.CreateVxlan, {"name": "v", "vni": 1, "ttl": 256}, "ttl"),
    (ops.CreateVlan, {"name": "v.1", "link": "eth1", "vlan_id": 0}, "vlan_id"),
    (ops.CreateVlan, {"name": "v.1", "link": "eth1", "vlan_id": 4095}, "vlan_id"),
    (ops.CreateVlan, {"name": "v.1", "link": "eth1", "vlan_id": True}, "vlan_id"),
    (ops.CreateVlan, {"name": "v.1", "link": "bad parent", "vlan_id": 10}, "link"),
    (ops.DeleteLink, {"name": "a/b"}, "name"),
    (ops.SetLink, {"name": "x" * 16}, "name"),
    (ops.SetLink, {"name": "a", "mtu": 20}, "mtu"),
    (ops.SetLink, {"name": "a", "mtu": 65536}, "mtu"),
    (ops.SetLink, {"name": "a", "up": "yes"}, "up"),
    (ops.SetLink, {"name": "a", "master": "br0", "nomaster": True}, "nomaster"),
    (ops.SetLink, {"name": "a", "master": "$(x)"}, "master"),
    (ops.SetBridgePort, {"name": "vx"}, "flags"),  # no flag
    (ops.SetBridgePort, {"name": "vx", "neigh_suppress": 1}, "neigh_suppress"),  # not a bool
    (ops.SetBridgePort, {"name": "vx", "learning": "on"}, "learning"),
    (ops.AddAddress, {"device": "a", "cidr": "300.1.1.1/24"}, "cidr"),
    (ops.AddAddress, {"device": "a", "cidr": "192.0.2.1"}, "cidr"),  # no prefix length
    (ops.AddAddress, {"device": "a", "cidr": "fd00::1/64", "nodad": "yes"}, "nodad"),
    (ops.DeleteAddress, {"device": "a;b", "cidr": "192.0.2.1/24"}, "device"),
    (ops.AddRoute, {"destination": "10.0.0.1/8"}, "destination"),  # host bits set
    (ops.AddRoute, {"destination": "10.0.0.0/8", "gateway": "fd00::1"}, "gateway"),
    (ops.AddRoute, {"destination": "10.0.0.0/8", "source": "fd00::1"}, "source"),
    (ops.AddRoute, {"destination": "10.0.0.0/8", "type": "nat"}, "type"),
    (ops.AddRoute, {"destination": "10.0.0.0/8", "scope": "site"}, "scope"),
    (ops.AddRoute, {"destination": "10.0.0.0/8", "table": 0}, "table"),
    (ops.AddRoute, {"destination": "10.0.0.0/8", "replace": 1}, "replace"),
    (ops.DeleteRoute, {"destination": "10.0.0.0/8", "metric": -1}, "metric"),
    (ops.AddRule, {"family": 6, "source": "10.0.0.0/8"}, "source"),
    (ops.AddRule, {"family": 5}, "family"),
    (ops.AddRule, {"family": True}, "family"),
    (ops.AddRule, {"fwmark": 2**32}, "fwmark"),
    (ops.DeleteRule, {"iif": "a b"}, "iif"),
    (ops.AddNeighbour, {"device": "a", "address": "x", "mac": "02:00:00:00:00:01"}, "address"),
    (ops.AddNeighbour, {"device": "a", "address": "192.0.2.1", "mac": "02:00"}, "mac"),
    (ops.DeleteNeighbour, {"device": "", "address": "192.0.2.1"}, "device"),
    (ops.AddFdb, {"device": "v", "mac": "nonsense"}, "mac"),
    (ops.AddFdb, {"device": "v", "mac": "00:00:00:00:00:00", "destination": "x"}, "destination"),
    (ops.AddFdb, {"device": "v", "mac": "00:00:00:00:00:00", "append": None}, "append"),
    (ops.DeleteFdb, {"device": "v", "mac": "fa:16:3e:00:00:01", "master": "yes"}, "master"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"), BAD_OPS, ids=[f"{c.__name__}-{f}" for c, _k, f in BAD_OPS]
)
def test_bad_ops_rejected_when_made(
    cls: type[ops.Op], kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        cls(**kwargs)
    assert info.value.field == field
    # the same values coming over a privsep channel are refused the same way
    with pytest.raises(InvalidArgument):
        ops.from_primitives({"op": ops._snake(cls.__name__), **kwargs})


#: one valid operation of every kind, most fields set
SAMPLES: list[ops.Op] = [
    ops.CreateVeth(
        name="a",
        peer="b",
        mtu=1450,
        mac="fa:16:3e:00:00:01",
        master="br0",
        up=True,
        peer_mtu=1400,
        peer_mac="fa:16:3e:00:00:02",
        peer_up=True,
    ),
    ops.CreateBridge(name="br0", ageing_time=20, forward_delay=2, up=True),
    ops.CreateVxlan(
        name="vx",
        vni=7,
        local="fd00::1",
        group="ff05::7",
        port=8472,
        learning=True,
        underlay="eth1",
        ttl=1,
    ),
    ops.AdoptVxlan(name="vxlan-7", new_name="nvx-7", learning=False),
    ops.CreateVlan(name="eth1.7", link="eth1", vlan_id=7),
    ops.DeleteLink(name="a"),
    ops.SetLink(name="a", mtu=1400, mac="02:00:00:00:00:aa", up=False, master="br0"),
    ops.SetBridgePort(name="a", learning=True),
    ops.AddAddress(device="a", cidr="198.51.100.1/24"),
    ops.DeleteAddress(device="a", cidr="fd00::1/64", nodad=True),
    ops.AddRoute(
        destination="198.51.100.0/24",
        table=100,
        gateway="192.0.2.1",
        device="a",
        metric=5,
        source="192.0.2.2",
        scope="universe",
        onlink=True,
        replace=True,
    ),
    ops.DeleteRoute(destination="::/0", type="blackhole"),
    ops.AddRule(
        family=6,
        table=300,
        priority=10,
        source="fd00::/8",
        destination="fd00:1::/64",
        iif="a",
        oif="b",
        fwmark=1,
        fwmask=0xFF,
    ),
    ops.DeleteRule(priority=10, table=300),
    ops.AddNeighbour(device="a", address="fd00::5", mac="02:00:00:00:00:05"),
    ops.DeleteNeighbour(device="a", address="192.0.2.5"),
    ops.AddFdb(device="vx", mac="00:00:00:00:00:00", destination="198.18.0.2", append=True),
    ops.DeleteFdb(device="a", mac="fa:16:3e:00:00:09", master=True),
]
INDEXES = {"a": 3, "b": 4, "br0": 7, "vx": 11, "eth1": 9, "vxlan-7": 12}


def test_samples_cover_every_operation() -> None:
    assert {type(op) for op in SAMPLES} == set(ops.OPERATIONS.values())
    assert {op.opname for op in SAMPLES} == set(ops.OPERATIONS)


@pytest.mark.parametrize("op", SAMPLES, ids=lambda op: op.opname)
def test_primitives_round_trip(op: ops.Op) -> None:
    data = op.primitives()
    assert data["op"] == op.opname
    assert all(value is None or type(value) in (str, int, bool) for value in data.values())
    assert ops.from_primitives(data) == op
    assert ops.from_primitives(json.loads(json.dumps(data))) == op
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(op, dataclasses.fields(op)[0].name, "other")  # type: ignore[arg-type]


@pytest.mark.parametrize("op", SAMPLES, ids=lambda op: op.opname)
def test_every_operation_encodes(op: ops.Op) -> None:
    built = op.build(nlbuild.Context(INDEXES.__getitem__))
    assert built
    for kind, target, request in built:
        assert kind == op.kind and target
        _encoded(request)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ("set_link", "op"),  # not a dict
        (None, "op"),
        ({"name": "tap1"}, "op"),  # no operation
        ({"op": "nope"}, "op"),
        ({"op": 5, "name": "a"}, "op"),
        ({"op": "SetLink", "name": "a"}, "op"),  # the class name is not the operation name
        ({"op": "_new_link", "name": "a"}, "op"),  # nor is a base class an operation
        ({"op": "set_link", "name": "tap1", "mtuu": 1400}, "mtuu"),
        ({"op": "set_link", "name": "tap1", "kind": "address"}, "kind"),  # a class variable
        ({"op": "create_veth", "name": "a", "peer_name": "b"}, "peer_name"),  # old spelling
        ({"op": "create_veth", "name": "a"}, "op"),  # peer missing
        ({"op": "set_link", "name": "tap1", "mtu": "1400"}, "mtu"),
        ({"op": "set_link", "name": "tap1", "mtu": 1400.0}, "mtu"),
        ({"op": "set_link", "name": "tap1", "up": 1}, "up"),
        ({"op": "set_link", "name": ["tap1"]}, "name"),
        ({"op": "add_rule", "family": "4"}, "family"),
        ({"op": "add_address", "device": "a", "cidr": 3232235777}, "cidr"),
        ({"op": "add_route", "destination": "10.0.0.0/8", "type": ["unicast"]}, "op"),
    ],
)
def test_from_primitives_refuses(data: object, field: str) -> None:
    before = copy.deepcopy(data)
    with pytest.raises(InvalidArgument) as info:
        ops.from_primitives(data)
    assert info.value.field == field
    assert data == before  # the caller's dict is left alone


def test_construction_refuses_unknown_and_positional_fields() -> None:
    with pytest.raises(TypeError):
        ops.SetLink(name="tap1", mtuu=1400)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ops.SetLink("tap1")  # type: ignore[call-arg]


def test_execute_refuses_a_dict_before_sending_anything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = ops.SetLink(name="tap1", mtu=1400)
    raw = {"op": "set_link", "name": "tap1", "mtu": 1400}
    # a namespace that validates but does not exist: a socket opened before the check
    # would raise NamespaceNotFound instead
    missing = "natest-unit-no-such-namespace"
    calls: list[Callable[[], None]] = [
        lambda: batch.execute(missing, [good, raw]),  # type: ignore[list-item]
        lambda: batch.execute_one(missing, raw),  # type: ignore[arg-type]
        lambda: ip_lib.apply(raw, namespace=missing),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(InvalidArgument) as info:
            call()
        assert info.value.field == "op"
    with pytest.raises(InvalidArgument):
        ip_lib.Batch(missing).add(raw)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument) as bad_ns:
        batch.execute("../x", [good])
    assert bad_ns.value.field == "namespace"

    # and in the agent's own namespace, where a socket would open: none is
    opened: list[str | None] = []
    monkeypatch.setattr(batch, "get_socket", opened.append)
    with pytest.raises(InvalidArgument):
        batch.execute(None, [good, raw])  # type: ignore[list-item]
    with pytest.raises(InvalidArgument):
        batch.execute(None, [good, ops.OPERATIONS["set_link"]])  # type: ignore[list-item]
    assert opened == []


# --- encoding --------------------------------------------------------------------------------


def _encoded(request: Request, data: bytes | None = None) -> nl.Message:
    """Encode a built request (pyroute2 messages are encoded once: pass ``data`` if it
    was) and decode it back with pyroute2's class of its type."""
    if data is None:
        data = nl.encode(request.msg, request.msg_type, request.flags, 42)
    (raw,) = nl.split(data)
    msg = nl.decode_one(raw)
    assert msg["header"]["sequence_number"] == 42
    assert msg["header"]["type"] == request.msg_type
    assert msg["header"]["length"] == len(data)
    return msg


def _ctx(**indexes: int) -> nlbuild.Context:
    return nlbuild.Context(indexes.__getitem__)


def test_veth_encoding_nests_peer() -> None:
    op = ops.CreateVeth(name="a", peer="b", master="br0", mtu=1450, up=True, peer_up=True)
    (kind, target, create), (_k, peer_target, peer_up) = op.build(_ctx(br0=7))
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
    op = ops.CreateVxlan(
        name="vx", vni=1000, local="192.0.2.1", port=4790, underlay="eth1", ttl=64
    )
    ((_kind, _target, request),) = op.build(_ctx(eth1=9))
    data = nl.encode(request.msg, request.msg_type, request.flags, 42)
    # IFLA_VXLAN_PORT (15) goes in network byte order
    assert struct.pack("=HH", 6, 15) + struct.pack("!H", 4790) in data
    vxlan = _encoded(request, data).get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
    assert vxlan.get_attr("IFLA_VXLAN_ID") == 1000
    assert vxlan.get_attr("IFLA_VXLAN_PORT") == 4790
    assert vxlan.get_attr("IFLA_VXLAN_LOCAL") == "192.0.2.1"
    assert vxlan.get_attr("IFLA_VXLAN_LEARNING") == 0
    assert vxlan.get_attr("IFLA_VXLAN_LINK") == 9
    assert vxlan.get_attr("IFLA_VXLAN_TTL") == 64
    six = ops.CreateVxlan(name="vx6", vni=5, local="fd00::1", group="ff05::5", learning=True)
    ((_kind, _target, request),) = six.build(_ctx())
    vxlan = _encoded(request).get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
    assert vxlan.get_attr("IFLA_VXLAN_LOCAL6") == "fd00::1"
    assert vxlan.get_attr("IFLA_VXLAN_GROUP6") == "ff05::5"
    assert vxlan.get_attr("IFLA_VXLAN_LEARNING") == 1
    assert vxlan.get_attr("IFLA_VXLAN_LINK") is None


def test_adopt_vxlan_renames_by_index_and_sets_learning() -> None:
    op = ops.AdoptVxlan(name="vxlan-1001", new_name="nvx-1001")
    ((kind, target, request),) = op.build(_ctx(**{"vxlan-1001": 12}))
    assert (kind, target, request.msg_type, request.flags) == (
        "link",
        "vxlan-1001",
        nl.RTM_NEWLINK,
        0,  # never NLM_F_CREATE: only the existing device is changed
    )
    assert op.target == "nvx-1001" and op.invalidates
    msg = _encoded(request)
    assert msg["index"] == 12 and (msg["flags"], msg["change"]) == (0, 0)
    assert msg.get_attr("IFLA_IFNAME") == "nvx-1001"
    info = msg.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "vxlan"
    assert info.get_attr("IFLA_INFO_DATA").get_attr("IFLA_VXLAN_LEARNING") == 0
    # only the learning flag: VNI, addresses and port are the device's own
    assert info.get_attr("IFLA_INFO_DATA").get_attr("IFLA_VXLAN_ID") is None
    for bad in ({"new_name": "a" * 16}, {"name": "a b"}, {"learning": 0}):
        with pytest.raises(InvalidArgument):
            dataclasses.replace(op, **bad)


def test_vlan_encoding_and_validation() -> None:
    op = ops.CreateVlan(name="eth1.100", link="eth1", vlan_id=100, mtu=1500)
    ((kind, target, request),) = op.build(_ctx(eth1=9))
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
            dataclasses.replace(op, **bad)


def test_set_link_encoding() -> None:
    ctx = _ctx(br0=7)
    op = ops.SetLink(name="tap1", mtu=1400, mac="02:00:00:00:00:aa", master="br0", up=True)
    ((kind, target, request),) = op.build(ctx)
    assert (kind, target, request.msg_type, request.flags) == ("link", "tap1", nl.RTM_SETLINK, 0)
    msg = _encoded(request)
    assert (msg["family"], msg["index"]) == (0, 0)  # by name: the kernel looks it up
    assert msg.get_attr("IFLA_IFNAME") == "tap1"
    assert msg.get_attr("IFLA_MTU") == 1400
    assert msg.get_attr("IFLA_ADDRESS") == "02:00:00:00:00:aa"
    assert msg.get_attr("IFLA_MASTER") == 7
    assert (msg["flags"], msg["change"]) == (nl.IFF_UP, nl.IFF_UP)
    # up=None leaves the flag alone; up=False clears it; nomaster is IFLA_MASTER 0
    msg = _encoded(ops.SetLink(name="tap1", mtu=1300).build(ctx)[0][2])
    assert (msg["flags"], msg["change"]) == (0, 0)
    assert msg.get_attr("IFLA_MASTER") is None and msg.get_attr("IFLA_ADDRESS") is None
    msg = _encoded(ops.SetLink(name="tap1", up=False, nomaster=True).build(ctx)[0][2])
    assert (msg["flags"], msg["change"]) == (0, nl.IFF_UP)
    assert msg.get_attr("IFLA_MASTER") == 0 and msg.get_attr("IFLA_MTU") is None


def test_address_encoding() -> None:
    ctx = _ctx(a=3)
    ((kind, target, request),) = ops.AddAddress(device="a", cidr="203.0.113.5/24").build(ctx)
    assert (kind, request.msg_type) == ("address", nl.RTM_NEWADDR)
    assert request.flags == nl.NLM_F_CREATE | nl.NLM_F_EXCL
    assert target == "203.0.113.5/24 dev a"
    msg = _encoded(request)
    assert (msg["family"], msg["prefixlen"], msg["index"]) == (2, 24, 3)
    assert msg.get_attr("IFA_LOCAL") == "203.0.113.5"
    assert msg.get_attr("IFA_BROADCAST") == "203.0.113.255"
    msg = _encoded(ops.AddAddress(device="a", cidr="198.51.100.1/31").build(ctx)[0][2])
    assert msg.get_attr("IFA_BROADCAST") is None  # /31 and /32 have no broadcast
    six = ops.AddAddress(device="a", cidr="fd00:1::5/64", nodad=True)
    msg = _encoded(six.build(ctx)[0][2])
    assert (msg["family"], msg["prefixlen"]) == (10, 64)
    assert msg.get_attr("IFA_FLAGS") == nl.IFA_F_NODAD
    ((_k, _t, request),) = ops.DeleteAddress(device="a", cidr="fd00:1::5/64").build(ctx)
    assert (request.msg_type, request.flags) == (nl.RTM_DELADDR, 0)


def test_fdb_and_route_encoding() -> None:
    ctx = _ctx(vx=11, a=3)
    fdb = ops.AddFdb(device="vx", mac="00:00:00:00:00:00", destination="fd00::7", append=True)
    ((_k, _t, request),) = fdb.build(ctx)
    assert request.flags == nl.NLM_F_CREATE | nl.NLM_F_APPEND
    msg = _encoded(request)
    assert (msg["family"], msg["ifindex"], msg["flags"]) == (7, 11, nl.NTF_SELF)
    assert msg.get_attr("NDA_DST") == "fd00::7"
    assert msg.get_attr("NDA_LLADDR") == "00:00:00:00:00:00"
    # a bridge entry is "static" (NUD_NOARP) in the master's table, never PERMANENT
    port = ops.AddFdb(device="a", mac="fa:16:3e:00:00:09", master=True)
    ((_k, _t, request),) = port.build(ctx)
    assert request.flags == nl.NLM_F_CREATE | nl.NLM_F_REPLACE
    msg = _encoded(request)
    assert (msg["flags"], msg["state"]) == (nl.NTF_MASTER, nl.NUD_NOARP)
    route = ops.AddRoute(destination="10.0.0.0/8", device="a", table=1000, gateway="192.0.2.1")
    ((_k, _t, request),) = route.build(ctx)
    assert request.flags == nl.NLM_F_CREATE | nl.NLM_F_EXCL
    msg = _encoded(request)
    assert (msg["dst_len"], msg["table"], msg["type"]) == (8, nl.RT_TABLE_COMPAT, nl.RTN_UNICAST)
    assert (msg["proto"], msg["scope"]) == (nl.RTPROT_STATIC, nl.RT_SCOPE_UNIVERSE)
    assert msg.get_attr("RTA_TABLE") == 1000
    assert msg.get_attr("RTA_DST") == "10.0.0.0"
    assert msg.get_attr("RTA_GATEWAY") == "192.0.2.1"
    assert msg.get_attr("RTA_OIF") == 3
    # through a device without gateway: scope link; a deletion matches any origin and scope
    direct = ops.AddRoute(destination="198.18.0.0/15", device="a")
    assert _encoded(direct.build(ctx)[0][2])["scope"] == nl.RT_SCOPE_LINK
    ((_k, _t, request),) = ops.DeleteRoute(destination="198.18.0.0/15", device="a").build(ctx)
    msg = _encoded(request)
    assert (request.msg_type, msg["proto"], msg["scope"]) == (nl.RTM_DELROUTE, 0, 255)
    with pytest.raises(InvalidArgument):
        dataclasses.replace(route, source="fd00::1")


def test_rule_and_neighbour_encoding() -> None:
    rule = ops.AddRule(priority=100, table=1000, source="198.51.100.0/24", iif="lo")
    ((kind, _t, request),) = rule.build(_ctx())
    assert (kind, request.msg_type) == ("rule", nl.RTM_NEWRULE)
    msg = _encoded(request)
    assert (msg["family"], msg["src_len"], msg["table"]) == (2, 24, 0)  # table > 255
    assert msg.get_attr("FRA_TABLE") == 1000 and msg.get_attr("FRA_PRIORITY") == 100
    assert msg.get_attr("FRA_SRC") == "198.51.100.0" and msg.get_attr("FRA_IIFNAME") == "lo"
    neigh = ops.AddNeighbour(device="a", address="fd00::7", mac="02:00:00:00:00:07")
    ((kind, _t, request),) = neigh.build(_ctx(a=3))
    assert (kind, request.flags) == ("neighbour", nl.NLM_F_CREATE | nl.NLM_F_REPLACE)
    msg = _encoded(request)
    assert (msg["family"], msg["ifindex"], msg["state"]) == (10, 3, nl.NUD_PERMANENT)
    assert msg.get_attr("NDA_DST") == "fd00::7"
    assert msg.get_attr("NDA_LLADDR") == "02:00:00:00:00:07"


def test_bridge_port_encoding() -> None:
    op = ops.SetBridgePort(name="vx", neigh_suppress=True, learning=False)
    ((kind, target, request),) = op.build(_ctx(vx=11))
    assert (kind, target, request.msg_type, request.flags) == ("link", "vx", nl.RTM_SETLINK, 0)
    data = nl.encode(request.msg, request.msg_type, request.flags, 42)
    # IFLA_PROTINFO (12) must carry NLA_F_NESTED, or the bridge reads one STP-state byte
    assert struct.pack("=H", 12 | nl.NLA_F_NESTED) in data
    msg = _encoded(request, data)
    assert (msg["family"], msg["index"]) == (7, 11)  # AF_BRIDGE, by ifindex
    info = msg.get_attr("IFLA_PROTINFO")
    assert info.get_attr("IFLA_BRPORT_NEIGH_SUPPRESS") == 1
    assert info.get_attr("IFLA_BRPORT_LEARNING") == 0
    only = _encoded(ops.SetBridgePort(name="vx", learning=True).build(_ctx(vx=11))[0][2])
    assert only.get_attr("IFLA_PROTINFO").get_attr("IFLA_BRPORT_NEIGH_SUPPRESS") is None
    with pytest.raises(InvalidArgument):
        ip_lib.SetBridgePort(name="vx")
    with pytest.raises(InvalidArgument):
        ip_lib.SetBridgePort(name="vx", neigh_suppress="on")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        ip_lib.SetBridgePort(name="bad name", learning=True)


def test_linux_api_validates_before_sending() -> None:
    # no namespace exists and nothing is root here: these must fail on the arguments
    assert ip_lib.CreateVlan is ops.CreateVlan and ip_lib.SetLink is ops.SetLink
    for vlan_id in (0, 4095, True):
        with pytest.raises(InvalidArgument):
            ip_lib.CreateVlan(name="v.1", link="eth1", vlan_id=vlan_id)
    with pytest.raises(InvalidArgument):
        ip_lib.CreateVlan(name="v.1", link="bad parent", vlan_id=10)
    with pytest.raises(InvalidArgument):
        ip_lib.SetLink(name="v0", master="br0", nomaster=True)
    with pytest.raises(InvalidArgument):
        ip_lib.apply(ip_lib.SetLink(name="v0", mtu=1400), namespace="../nope")
    with pytest.raises(InvalidArgument):
        ip_lib.Batch("../nope")
    with pytest.raises(InvalidArgument):
        sysctl.set_disable_ipv6("nope", "eth1.100")
    with pytest.raises(InvalidArgument):
        ip_lib.AddFdb(device="vx", mac="not-a-mac", destination="192.0.2.1")


def test_capped_ack_decoding() -> None:
    # NLMSG_ERROR as the kernel sends it with NETLINK_CAP_ACK and extended acks:
    # error, the request's header, then NLMSGERR_ATTR_MSG
    text = b"Unknown device type\0"
    tlv = struct.pack("=HH", 4 + len(text), 1) + text + b"\0" * (-len(text) % 4)
    body = struct.pack("=i", -95) + struct.pack("=IHHII", 100, nl.RTM_NEWLINK, 0x605, 5, 0)
    header = struct.pack("=IHHII", 16 + len(body) + len(tlv), nl.NLMSG_ERROR, 0x300, 5, 0)
    done = struct.pack("=IHHII", 20, nl.NLMSG_DONE, 2, 6, 0) + struct.pack("=i", 0)
    ack, end = nl.split(header + body + tlv + done)
    assert ack.header["sequence_number"] == 5 and ack.header["type"] == nl.NLMSG_ERROR
    assert nl.ack_error(ack) == (95, "Unknown device type")
    assert end.header["type"] == nl.NLMSG_DONE and nl.done_error(end) == 0
    # without NLM_F_ACK_TLVS the message is not looked for; a success has none
    plain = nl.RawMessage(struct.pack("=IHHII", 36, nl.NLMSG_ERROR, 0, 7, 0) + body[:20])
    assert nl.ack_error(plain) == (95, "")
    ok = struct.pack("=IHHII", 36, nl.NLMSG_ERROR, 0x100, 8, 0) + struct.pack("=i", 0)
    assert nl.ack_error(nl.RawMessage(ok + body[4:20])) == (0, "")
    failed_dump = struct.pack("=IHHII", 20, nl.NLMSG_DONE, 2, 9, 0) + struct.pack("=i", -4)
    assert nl.done_error(nl.RawMessage(failed_dump)) == 4


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


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (ops.AddFdb, {"device": "vx"}),
        (ops.DeleteFdb, {"device": "vx"}),
        (ops.AddNeighbour, {"device": "a", "address": "192.0.2.1"}),
    ],
)
def test_required_mac_is_not_optional(cls: type[ops.Op], kwargs: dict[str, object]) -> None:
    refused = False
    try:
        cls(**{**kwargs, "mac": None})
    except InvalidArgument:
        refused = True
    assert refused
