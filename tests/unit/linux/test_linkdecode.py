"""The struct link decoder against pyroute2's, on the same encoded RTM_NEWLINK bytes.

:mod:`netagent.privileged.linkdecode` reads the kernel's layouts by offset; pyroute2
builds these messages here and decodes them again as the reference, so that a wrong
attribute number, width or byte order shows up as a difference. Truncated and garbage
attribute lengths must stop the walk, never raise: a dump is untrusted input too.
"""

from __future__ import annotations

import random
import socket
import struct
from typing import Any

import pytest

from netagent.privileged import linkdecode
from netagent.privileged import nlcodec as nl

_NLMSG_HDR = 16
_IFINFO_SIZE = 16
_ATTRS_START = _NLMSG_HDR + _IFINFO_SIZE
_NLA = struct.Struct("=HH")
_IFLA_ADDRESS = 1
_IFLA_MTU = 4
_IFLA_LINKINFO = 18


def _message(
    attrs: list[tuple[Any, ...]], *, index: int = 5, flags: int = 0, ifi_type: int = 1
) -> bytes:
    """An RTM_NEWLINK as the kernel would send it, encoded by pyroute2."""
    msg = nl.ifinfmsg()
    msg.update({"family": socket.AF_UNSPEC, "ifi_type": ifi_type, "index": index, "flags": flags})
    msg["change"] = 0
    msg["attrs"] = attrs
    return nl.encode(msg, nl.RTM_NEWLINK, nl.NLM_F_MULTI, 1)


def _append_raw(data: bytes, nla_type: int, payload: bytes) -> bytes:
    """``data`` with one more top-level attribute, built by hand (pyroute2 encodes
    ``IFLA_ADDRESS`` as a MAC only), and the netlink length fixed."""
    length = _NLA.size + len(payload)
    body = data + _NLA.pack(length, nla_type) + payload + b"\0" * (-length % 4)
    return struct.pack("=I", len(body)) + body[4:]


def _linkinfo(
    kind: str, data: list[tuple[Any, ...]] | None = None, **slave: Any
) -> tuple[Any, ...]:
    parts: list[tuple[Any, ...]] = [("IFLA_INFO_KIND", kind)]
    if data is not None:
        parts.append(("IFLA_INFO_DATA", {"attrs": data}))
    if slave:
        parts.append(("IFLA_INFO_SLAVE_KIND", slave["slave_kind"]))
        parts.append(("IFLA_INFO_SLAVE_DATA", {"attrs": slave["slave_data"]}))
    # the kernel's nla_nest_start sets NLA_F_NESTED: the decoder must mask it
    return ("IFLA_LINKINFO", {"attrs": parts}, nl.NLA_F_NESTED)


def _reference(data: bytes) -> dict[str, Any]:
    """What :func:`linkdecode.decode` must return, read from pyroute2's decode."""
    (raw,) = nl.split(data)
    msg = nl.decode_one(raw)
    link: dict[str, Any] = {
        "index": msg["index"],
        "name": msg.get_attr("IFLA_IFNAME") or "",
        "up": bool(msg["flags"] & nl.IFF_UP),
        "mtu": msg.get_attr("IFLA_MTU"),
        "mac": nl.mac_attr(msg, "IFLA_ADDRESS"),
        "master": msg.get_attr("IFLA_MASTER") or None,
        "kind": None,
        "slave_kind": None,
        "data": {},
        "port": {},
    }
    info = msg.get_attr("IFLA_LINKINFO")
    if info is None:
        return link
    kind = link["kind"] = info.get_attr("IFLA_INFO_KIND")
    link["slave_kind"] = info.get_attr("IFLA_INFO_SLAVE_KIND")
    kdata = info.get_attr("IFLA_INFO_DATA")
    if kind == "bridge" and kdata is not None:
        ageing = kdata.get_attr("IFLA_BR_AGEING_TIME")
        delay = kdata.get_attr("IFLA_BR_FORWARD_DELAY")
        link["data"] = {
            "stp_state": kdata.get_attr("IFLA_BR_STP_STATE"),
            "ageing_time": None if ageing is None else ageing // 100,
            "forward_delay": None if delay is None else delay // 100,
        }
    elif kind == "vxlan" and kdata is not None:
        link["data"] = {
            "vni": kdata.get_attr("IFLA_VXLAN_ID"),
            "port": kdata.get_attr("IFLA_VXLAN_PORT"),
            "learning": bool(kdata.get_attr("IFLA_VXLAN_LEARNING")),
            "local": kdata.get_attr("IFLA_VXLAN_LOCAL") or kdata.get_attr("IFLA_VXLAN_LOCAL6"),
            "underlay": kdata.get_attr("IFLA_VXLAN_LINK") or None,
        }
    elif kind == "vlan" and kdata is not None:
        link["data"] = {
            "vlan_id": kdata.get_attr("IFLA_VLAN_ID"),
            "link": msg.get_attr("IFLA_LINK"),
        }
    port = info.get_attr("IFLA_INFO_SLAVE_DATA")
    if link["slave_kind"] == "bridge" and port is not None:
        flags = {
            "neigh_suppress": "IFLA_BRPORT_NEIGH_SUPPRESS",
            "learning": "IFLA_BRPORT_LEARNING",
        }
        link["port"] = {
            key: None if port.get_attr(nla) is None else bool(port.get_attr(nla))
            for key, nla in flags.items()
        }
    return link


BRPORT = {"slave_kind": "bridge"}

SAMPLES: dict[str, bytes] = {
    "veth, up, no linkinfo": _message(
        [
            ("IFLA_IFNAME", "tapa1b2c3d4-e5"),
            ("IFLA_TXQLEN", 1000),
            ("IFLA_OPERSTATE", "UP"),
            ("IFLA_MTU", 1450),
            ("IFLA_ADDRESS", "fa:16:3e:00:00:01"),
            ("IFLA_BROADCAST", "ff:ff:ff:ff:ff:ff"),
        ],
        index=12,
        flags=nl.IFF_UP | 0x1000 | 0x40,  # IFF_UP | IFF_LOWER_UP | IFF_RUNNING
    ),
    "bridge": _message(
        [
            ("IFLA_IFNAME", "brq0123456789a"),
            ("IFLA_MTU", 1500),
            ("IFLA_ADDRESS", "02:00:00:00:00:aa"),
            _linkinfo(
                "bridge",
                [
                    ("IFLA_BR_FORWARD_DELAY", 1500),
                    ("IFLA_BR_HELLO_TIME", 200),
                    ("IFLA_BR_AGEING_TIME", 30000),
                    ("IFLA_BR_STP_STATE", 1),
                ],
            ),
        ],
        index=3,
        flags=nl.IFF_UP,
    ),
    "vxlan port of a bridge": _message(
        [
            ("IFLA_IFNAME", "vxlan-100"),
            ("IFLA_MTU", 1450),
            ("IFLA_MASTER", 3),
            ("IFLA_ADDRESS", "0a:58:c0:a8:01:02"),
            _linkinfo(
                "vxlan",
                [
                    ("IFLA_VXLAN_ID", 100),
                    ("IFLA_VXLAN_LINK", 2),
                    ("IFLA_VXLAN_LOCAL", "198.18.0.1"),
                    ("IFLA_VXLAN_TTL", 64),
                    ("IFLA_VXLAN_LEARNING", 1),
                    ("IFLA_VXLAN_PORT", 4790),
                ],
                slave_kind="bridge",
                slave_data=[
                    ("IFLA_BRPORT_STATE", 3),
                    ("IFLA_BRPORT_LEARNING", 0),
                    ("IFLA_BRPORT_NEIGH_SUPPRESS", 1),
                ],
            ),
        ],
        index=9,
        flags=nl.IFF_UP,
    ),
    "vxlan over IPv6, no underlay": _message(
        [
            ("IFLA_IFNAME", "vx6"),
            _linkinfo(
                "vxlan",
                [
                    ("IFLA_VXLAN_ID", 2**24 - 1),
                    ("IFLA_VXLAN_LOCAL6", "fd00::1"),
                    ("IFLA_VXLAN_LEARNING", 0),
                    ("IFLA_VXLAN_PORT", 4789),
                ],
            ),
        ]
    ),
    "vlan": _message(
        [
            ("IFLA_IFNAME", "eth1.4094"),
            ("IFLA_LINK", 2),
            ("IFLA_MTU", 1400),
            _linkinfo("vlan", [("IFLA_VLAN_ID", 4094)]),
        ],
        index=40,
    ),
    "tap port, down, learning, no suppression": _message(
        [
            ("IFLA_IFNAME", "tap0"),
            ("IFLA_MASTER", 7),
            ("IFLA_MTU", 9000),
            _linkinfo(
                "tun",
                slave_kind="bridge",
                slave_data=[("IFLA_BRPORT_NEIGH_SUPPRESS", 0), ("IFLA_BRPORT_LEARNING", 1)],
            ),
        ],
        index=2**31 - 1,
    ),
    "bridge port without flags": _message(
        [
            ("IFLA_IFNAME", "p0"),
            ("IFLA_MASTER", 7),
            _linkinfo("veth", slave_kind="bridge", slave_data=[("IFLA_BRPORT_STATE", 3)]),
        ]
    ),
    "bond slave (not a bridge port)": _message(
        [
            ("IFLA_IFNAME", "eth2"),
            ("IFLA_MASTER", 8),
            _linkinfo("veth", slave_kind="bond", slave_data=[]),
        ]
    ),
    # an IPIP/GRE tunnel's hardware address is its 4-byte local IPv4 address
    "tunnel, 4-byte address": _append_raw(
        _message([("IFLA_IFNAME", "gre1"), ("IFLA_MTU", 1476), _linkinfo("gre")], ifi_type=778),
        _IFLA_ADDRESS,
        socket.inet_aton("192.0.2.1"),
    ),
    "ip6 tunnel, 16-byte address": _append_raw(
        _message([("IFLA_IFNAME", "ip6tnl1")], ifi_type=769),
        _IFLA_ADDRESS,
        socket.inet_pton(socket.AF_INET6, "fd00::9"),
    ),
    "no attributes": _message([]),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_decode_matches_pyroute2(name: str) -> None:
    data = SAMPLES[name]
    decoded = linkdecode.decode(data)
    assert decoded == _reference(data)
    family, index, flags = linkdecode.header(data)
    assert (family, index, bool(flags & nl.IFF_UP)) == (0, decoded["index"], decoded["up"])
    assert linkdecode.ifname(data) == (decoded["name"] or None)


def test_samples_carry_the_values_they_claim() -> None:
    # the differential test above would pass if both decoders missed an attribute
    vx = linkdecode.decode(SAMPLES["vxlan port of a bridge"])
    assert (vx["name"], vx["index"], vx["up"], vx["mtu"], vx["master"]) == (
        "vxlan-100",
        9,
        True,
        1450,
        3,
    )
    assert (vx["kind"], vx["slave_kind"], vx["mac"]) == ("vxlan", "bridge", "0a:58:c0:a8:01:02")
    assert vx["data"] == {
        "vni": 100,
        "port": 4790,
        "learning": True,
        "local": "198.18.0.1",
        "underlay": 2,
    }
    assert vx["port"] == {"neigh_suppress": True, "learning": False}
    br = linkdecode.decode(SAMPLES["bridge"])
    assert br["data"] == {"stp_state": 1, "ageing_time": 300, "forward_delay": 15}
    assert linkdecode.decode(SAMPLES["vlan"])["data"] == {"vlan_id": 4094, "link": 2}
    assert linkdecode.decode(SAMPLES["vxlan over IPv6, no underlay"])["data"]["local"] == "fd00::1"
    tap = linkdecode.decode(SAMPLES["tap port, down, learning, no suppression"])
    assert (tap["up"], tap["port"]) == (False, {"neigh_suppress": False, "learning": True})
    assert linkdecode.decode(SAMPLES["bridge port without flags"])["port"] == {
        "neigh_suppress": None,
        "learning": None,
    }
    assert linkdecode.decode(SAMPLES["bond slave (not a bridge port)"])["port"] == {}
    assert linkdecode.decode(SAMPLES["tunnel, 4-byte address"])["mac"] is None
    assert linkdecode.decode(SAMPLES["ip6 tunnel, 16-byte address"])["mac"] is None


def _top_attrs(data: bytes) -> list[tuple[int, int, int]]:
    """``(offset, length, type)`` of each top-level attribute of a well-formed message."""
    found, offset = [], _ATTRS_START
    while offset < len(data):
        length, nla_type = _NLA.unpack_from(data, offset)
        found.append((offset, length, nla_type & 0x3FFF))
        offset += (length + 3) & ~3
    return found


EMPTY: dict[str, Any] = {
    "name": "",
    "mtu": None,
    "mac": None,
    "master": None,
    "kind": None,
    "slave_kind": None,
    "data": {},
    "port": {},
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_truncated_messages_keep_what_is_complete(name: str) -> None:
    full = linkdecode.decode(SAMPLES[name])
    for cut in range(_ATTRS_START, len(SAMPLES[name])):
        part = linkdecode.decode(SAMPLES[name][:cut])
        assert (part["index"], part["up"]) == (full["index"], full["up"])
        for key, empty in EMPTY.items():
            # an attribute is read whole or not at all, never half
            assert part[key] in (full[key], empty), (cut, key, part[key])


def _set_length(data: bytes, offset: int, length: int) -> bytes:
    return data[:offset] + struct.pack("=H", length) + data[offset + 2 :]


@pytest.mark.parametrize("bad_length", [0, 1, 3, 0xFFFF])
def test_garbage_length_stops_the_walk(bad_length: int) -> None:
    data = SAMPLES["vxlan port of a bridge"]
    attrs = _top_attrs(data)
    mtu_at = next(offset for offset, _length, nla_type in attrs if nla_type == _IFLA_MTU)
    decoded = linkdecode.decode(_set_length(data, mtu_at, bad_length))
    # IFLA_IFNAME came before the broken attribute; nothing after it is read
    assert decoded["name"] == "vxlan-100"
    assert decoded["mtu"] is None and decoded["master"] is None and decoded["kind"] is None
    assert decoded["data"] == {} and decoded["port"] == {}


def test_garbage_nested_length_stops_the_nested_walk() -> None:
    data = SAMPLES["vxlan port of a bridge"]
    info_at = next(o for o, _l, t in _top_attrs(data) if t == _IFLA_LINKINFO)
    # IFLA_LINKINFO's first nested attribute is IFLA_INFO_KIND: claim it runs past the nest
    decoded = linkdecode.decode(_set_length(data, info_at + _NLA.size, 0x7FFF))
    assert decoded["kind"] is None and decoded["data"] == {} and decoded["port"] == {}
    # the attributes around the nest are intact
    assert (decoded["name"], decoded["mtu"], decoded["master"]) == ("vxlan-100", 1450, 3)
    # and the nest itself claiming more than the message holds drops it whole
    decoded = linkdecode.decode(_set_length(data, info_at, len(data)))
    assert decoded["kind"] is None and decoded["mtu"] == 1450


def _raw_nla(nla_type: int, payload: bytes) -> bytes:
    length = _NLA.size + len(payload)
    return _NLA.pack(length, nla_type) + payload + b"\0" * (-length % 4)


def _raw_message(attrs: bytes, flags: int = 0) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, 5, flags, 0) + attrs
    return struct.pack("=IHHII", _NLMSG_HDR + len(body), nl.RTM_NEWLINK, 0, 1, 0) + body


def _raw_linkinfo(kind: str, data: bytes) -> bytes:
    return _raw_nla(_IFLA_LINKINFO, _raw_nla(1, kind.encode() + b"\0") + _raw_nla(2, data))


def test_short_payloads_read_as_missing() -> None:
    # well-formed attribute headers whose payload is shorter than the value's type
    data = _raw_message(
        _raw_nla(3, b"")  # IFLA_IFNAME, empty
        + _raw_nla(_IFLA_MTU, b"\x01\x02")
        + _raw_nla(10, b"\x01")  # IFLA_MASTER
        + _raw_nla(_IFLA_ADDRESS, b"\xfa\x16\x3e")
        + _raw_linkinfo(
            "vxlan",
            _raw_nla(1, b"\x01\x00")  # IFLA_VXLAN_ID
            + _raw_nla(4, b"\xc0\x00\x02")  # IFLA_VXLAN_LOCAL, 3 bytes
            + _raw_nla(7, b"")  # IFLA_VXLAN_LEARNING
            + _raw_nla(15, b"\x12"),  # IFLA_VXLAN_PORT, 1 byte
        )
    )
    decoded = linkdecode.decode(data)
    assert decoded["name"] == ""
    assert (decoded["mtu"], decoded["master"], decoded["mac"]) == (None, None, None)
    assert decoded["data"] == {
        "vni": None,
        "port": None,
        "learning": False,
        "local": None,
        "underlay": None,
    }


def test_empty_vlan_id_at_the_end_does_not_crash() -> None:
    data = _raw_message(_raw_nla(3, b"v\0") + _raw_linkinfo("vlan", _raw_nla(1, b"")))
    assert linkdecode.decode(data)["data"]["vlan_id"] is None


def test_header_only_message() -> None:
    data = _raw_message(b"", flags=nl.IFF_UP)
    assert linkdecode.decode(data) == {"index": 5, "up": True, **EMPTY}
    assert linkdecode.ifname(data) is None


@pytest.mark.parametrize("seed", range(20))
def test_random_corruption_never_raises(seed: int) -> None:
    rng = random.Random(seed)
    for name in sorted(SAMPLES):
        data = bytearray(SAMPLES[name])
        for _ in range(rng.randint(1, 8)):
            if len(data) > _ATTRS_START:
                data[rng.randrange(_ATTRS_START, len(data))] = rng.randrange(256)
        cut = rng.randint(_ATTRS_START, len(data))
        decoded = linkdecode.decode(bytes(data[:cut]))
        assert decoded["index"] == linkdecode.decode(SAMPLES[name])["index"]
