"""Encoding and decoding of rtnetlink messages with :mod:`struct`.

Hand-written on purpose: pyroute2 0.9's message classes take about 120 µs to encode one
RTM_NEWLINK for a veth pair, this module about 5 µs, and the wiring batch sends thousands
of messages (see doc/kernel-layer.md). Only the attributes netagent uses are named here.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable, Iterator

# netlink header and flags (linux/netlink.h)
NLMSG_HDR = struct.Struct("=IHHII")
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
NLM_F_DUMP = 0x300
NLM_F_ACK_TLVS = 0x200
NLMSGERR_ATTR_MSG = 1

# rtnetlink message types (linux/rtnetlink.h)
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30
RTM_NEWRULE, RTM_DELRULE, RTM_GETRULE = 32, 33, 34

# fixed headers
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct(
    "=BBBBBBBBI"
)  # family, dst_len, src_len, tos, table, proto, scope, type, flags
FIBRULEHDR = RTMSG  # family, dst_len, src_len, tos, table, res1, res2, action, flags
NDMSG = struct.Struct("=BBHiHBB")  # family, pad, pad, ifindex, state, flags, type

IFF_UP = 0x1

# link attributes
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_MASTER = 10
IFLA_OPERSTATE = 16
IFLA_LINKINFO = 18
IFLA_NET_NS_FD = 28
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_INFO_SLAVE_KIND = 4
VETH_INFO_PEER = 1
IFLA_BR_FORWARD_DELAY = 1
IFLA_BR_AGEING_TIME = 4
IFLA_BR_STP_STATE = 5
IFLA_VXLAN_ID = 1
IFLA_VXLAN_GROUP = 2
IFLA_VXLAN_LINK = 3
IFLA_VXLAN_LOCAL = 4
IFLA_VXLAN_TTL = 5
IFLA_VXLAN_LEARNING = 7
IFLA_VXLAN_PORT = 15
IFLA_VXLAN_GROUP6 = 16
IFLA_VXLAN_LOCAL6 = 17

# address attributes
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_BROADCAST = 4
IFA_FLAGS = 8
IFA_F_NODAD = 0x02

# route attributes and values
RTA_DST = 1
RTA_SRC = 2
RTA_IIF = 3
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_PREFSRC = 7
RTA_TABLE = 15
RTN_UNICAST = 1
RTN_LOCAL = 2
RTN_BLACKHOLE = 6
RTN_UNREACHABLE = 7
RTN_PROHIBIT = 8
RTPROT_STATIC = 4
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254
RT_TABLE_COMPAT = 252
RTNH_F_ONLINK = 0x4

# rule attributes
FRA_DST = 1
FRA_SRC = 2
FRA_IIFNAME = 3
FRA_PRIORITY = 6
FRA_FWMARK = 10
FRA_TABLE = 15
FRA_FWMASK = 16
FRA_OIFNAME = 17
FR_ACT_TO_TBL = 1

# neighbour attributes and values
NDA_DST = 1
NDA_LLADDR = 2
NDA_MASTER = 9
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
NTF_MASTER = 0x04
NTF_PROXY = 0x08
AF_BRIDGE = 7

_ATTR = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_U16 = struct.Struct("=H")
_BE16 = struct.Struct("!H")
_NLA_TYPE_MASK = 0x3FFF

Attr = tuple[int, bytes]


def attr(atype: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    length = 4 + len(payload)
    return _ATTR.pack(length, atype) + payload + b"\0" * (-length & 3)


def attr_u8(atype: int, value: int) -> bytes:
    return attr(atype, bytes((value,)))


def attr_u32(atype: int, value: int) -> bytes:
    return attr(atype, _U32.pack(value))


def attr_be16(atype: int, value: int) -> bytes:
    return attr(atype, _BE16.pack(value))


def attr_str(atype: int, value: str) -> bytes:
    return attr(atype, value.encode() + b"\0")


def attr_nested(atype: int, parts: Iterable[bytes]) -> bytes:
    return attr(atype | 0x8000, b"".join(parts))


def ip_bytes(address: str) -> tuple[int, bytes]:
    """``(family, packed)`` for a textual IPv4 or IPv6 address."""
    if ":" in address:
        return socket.AF_INET6, socket.inet_pton(socket.AF_INET6, address)
    return socket.AF_INET, socket.inet_pton(socket.AF_INET, address)


def ip_text(family: int, packed: bytes) -> str:
    return socket.inet_ntop(family, packed)


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def mac_text(packed: bytes) -> str:
    return ":".join(f"{b:02x}" for b in packed)


def header(length: int, msg_type: int, flags: int, seq: int) -> bytes:
    return NLMSG_HDR.pack(length, msg_type, flags, seq, 0)


def iter_messages(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """Yield ``(type, flags, seq, payload)`` for each message in a receive buffer."""
    offset = 0
    size = len(data)
    while offset + 16 <= size:
        length, msg_type, flags, seq, _pid = NLMSG_HDR.unpack_from(data, offset)
        if length < 16:
            break
        yield msg_type, flags, seq, data[offset + 16 : offset + length]
        offset += (length + 3) & ~3


def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """Attributes from ``offset`` to the end; the last of a repeated type wins."""
    attrs: dict[int, bytes] = {}
    size = len(data)
    while offset + 4 <= size:
        length, atype = _ATTR.unpack_from(data, offset)
        if length < 4:
            break
        attrs[atype & _NLA_TYPE_MASK] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return attrs


def u32(data: bytes) -> int:
    value: int = _U32.unpack_from(data)[0]
    return value


def u16(data: bytes) -> int:
    value: int = _U16.unpack_from(data)[0]
    return value


def cstr(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode()
