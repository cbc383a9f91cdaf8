"""rtnetlink codec: pyroute2's message classes, plus the little pyroute2 lacks.

Requests are pyroute2 messages (``ifinfmsg``, ``ifaddrmsg``, ``rtmsg``, ``fibmsg``,
``ndmsg``) filled in by :mod:`netagent.privileged.ops`, or bodies already encoded with
``struct`` for the hot paths (:func:`netagent.privileged.nlbuild.raw_ifinfo`); :func:`encode`
stamps the header on either. Receive buffers are split with ``struct`` (:func:`split`);
acks and dump ends are read with ``struct`` (:func:`ack_error`, :func:`done_error`), data
messages are decoded by pyroute2 (:func:`decode_one`, attributes on ``get_attr``) unless the
request asked for :class:`RawMessage`. Sockets, pipelining and sequence matching are ours
(:mod:`netagent.privileged.nlsocket`), not pyroute2's.

What pyroute2 0.9 lacks, and is therefore defined here:

* ``NETLINK_CAP_ACK``, the socket option that makes the kernel echo only the header of a
  failed request in its ``NLMSG_ERROR`` (the pipelined batches would otherwise get every
  request back), and the layout of such an ``NLMSG_ERROR``: error code, the request's
  16-byte header, then the extended-ack attributes (:func:`ack_error`). pyroute2's
  ``nlmsgerr`` reads the attributes straight after the error code (the ``NLMSG_DONE``
  layout), and its marshal decodes the echoed request as a whole message, which a capped
  ack does not contain;
* :func:`mac_attr`, a hardware address read only when it is 6 bytes long (pyroute2's
  ``l2addr`` would read past a tunnel's 4- or 16-byte address);
* :class:`RawMessage`, a message left undecoded for a caller that decodes the few
  attributes it needs itself (:mod:`netagent.privileged.linkdecode` does, for links:
  pyroute2 builds an object per attribute, about 0.7 ms per device here);
* ``RT_TABLE_COMPAT``.

Everything else (message types, flags, attribute names and layouts) is pyroute2's.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from pyroute2.netlink import (
    NETLINK_EXT_ACK,
    NLA_F_NESTED,
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_APPEND,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_EXCL,
    NLM_F_MULTI,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    SOL_NETLINK,
    nlmsg,
)
from pyroute2.netlink.rtnl import (
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELNEIGH,
    RTM_DELROUTE,
    RTM_DELRULE,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETNEIGH,
    RTM_GETROUTE,
    RTM_GETRULE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
    RTM_NEWRULE,
    RTM_SETLINK,
    RTMGRP_LINK,
    rtprotos,
    rtscopes,
    rtypes,
)
from pyroute2.netlink.rtnl.fibmsg import FR_ACT_TO_TBL, fibmsg
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD, ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP, ifinfmsg
from pyroute2.netlink.rtnl.marshal import MarshalRtnl
from pyroute2.netlink.rtnl.ndmsg import (
    NTF_MASTER,
    NTF_PROXY,
    NTF_SELF,
    NUD_NOARP,
    NUD_PERMANENT,
    ndmsg,
)
from pyroute2.netlink.rtnl.rtmsg import RTNH_F_ONLINK, rtmsg

__all__ = [
    "FR_ACT_TO_TBL",
    "IFA_F_NODAD",
    "IFF_UP",
    "NETLINK_CAP_ACK",
    "NETLINK_EXT_ACK",
    "NLA_F_NESTED",
    "NLMSG_DONE",
    "NLMSG_ERROR",
    "NLM_F_ACK",
    "NLM_F_ACK_TLVS",
    "NLM_F_APPEND",
    "NLM_F_CREATE",
    "NLM_F_DUMP",
    "NLM_F_DUMP_INTR",
    "NLM_F_EXCL",
    "NLM_F_MULTI",
    "NLM_F_REPLACE",
    "NLM_F_REQUEST",
    "NTF_MASTER",
    "NTF_PROXY",
    "NTF_SELF",
    "NUD_NOARP",
    "NUD_PERMANENT",
    "RTMGRP_LINK",
    "RTM_DELADDR",
    "RTM_DELLINK",
    "RTM_DELNEIGH",
    "RTM_DELROUTE",
    "RTM_DELRULE",
    "RTM_GETADDR",
    "RTM_GETLINK",
    "RTM_GETNEIGH",
    "RTM_GETROUTE",
    "RTM_GETRULE",
    "RTM_NEWADDR",
    "RTM_NEWLINK",
    "RTM_NEWNEIGH",
    "RTM_NEWROUTE",
    "RTM_NEWRULE",
    "RTM_SETLINK",
    "RTNH_F_ONLINK",
    "RTN_BLACKHOLE",
    "RTN_LOCAL",
    "RTN_PROHIBIT",
    "RTN_UNICAST",
    "RTN_UNREACHABLE",
    "RTPROT_STATIC",
    "RT_SCOPE_HOST",
    "RT_SCOPE_LINK",
    "RT_SCOPE_UNIVERSE",
    "RT_TABLE_COMPAT",
    "SOL_NETLINK",
    "Message",
    "RawMessage",
    "ack_error",
    "decode_one",
    "done_error",
    "encode",
    "fibmsg",
    "ifaddrmsg",
    "ifinfmsg",
    "mac_attr",
    "ndmsg",
    "rtmsg",
    "split",
]

#: A pyroute2 message (pyroute2 has no type annotations).
Message = Any

#: linux/netlink.h; not in pyroute2 0.9
NETLINK_CAP_ACK = 10
#: linux/rtnetlink.h: rtm_table value meaning "see RTA_TABLE"; not in pyroute2 0.9
RT_TABLE_COMPAT = 252

RTN_UNICAST: int = rtypes["RTN_UNICAST"]
RTN_LOCAL: int = rtypes["RTN_LOCAL"]
RTN_BLACKHOLE: int = rtypes["RTN_BLACKHOLE"]
RTN_UNREACHABLE: int = rtypes["RTN_UNREACHABLE"]
RTN_PROHIBIT: int = rtypes["RTN_PROHIBIT"]
RTPROT_STATIC: int = rtprotos["RTPROT_STATIC"]
RT_SCOPE_UNIVERSE: int = rtscopes["RT_SCOPE_UNIVERSE"]
RT_SCOPE_LINK: int = rtscopes["RT_SCOPE_LINK"]
RT_SCOPE_HOST: int = rtscopes["RT_SCOPE_HOST"]


_HEADER = struct.Struct("=IHHII")


class RawMessage:
    """A netlink message kept as bytes: ``header`` is decoded, the rest is not.

    ``msg["header"]`` works as on a pyroute2 message (``length``, ``type``, ``flags``,
    ``sequence_number``, ``pid``); ``data`` holds the whole message, header included.
    """

    __slots__ = ("data", "header")

    def __init__(self, data: bytes, offset: int = 0, length: int | None = None) -> None:
        size, msg_type, flags, seq, pid = _HEADER.unpack_from(data, offset)
        self.header = {
            "length": size,
            "type": msg_type,
            "flags": flags,
            "sequence_number": seq,
            "pid": pid,
        }
        self.data = bytes(data[offset : offset + (size if length is None else length)])

    def __getitem__(self, key: str) -> Any:
        if key != "header":
            raise KeyError(key)
        return self.header

    def __contains__(self, key: str) -> bool:
        return key == "header"


def split(data: bytes) -> Iterator[RawMessage]:
    """The messages of a receive buffer, undecoded (for notification sockets)."""
    offset = 0
    while offset <= len(data) - _HEADER.size:
        size = _HEADER.unpack_from(data, offset)[0]
        if size < _HEADER.size or offset + size > len(data):
            return
        yield RawMessage(data, offset, size)
        offset += (size + 3) & ~3


_ERROR_CODE = struct.Struct("=i")
#: NLMSG_ERROR with NETLINK_CAP_ACK: header, error code, the request's header, then TLVs
_ACK_TLVS_OFFSET = _HEADER.size + 4 + _HEADER.size
_NLMSGERR_ATTR_MSG = 1


def ack_error(msg: RawMessage) -> tuple[int, str]:
    """``(errno, extended-ack message)`` of an ``NLMSG_ERROR``: errno 0 is a success."""
    data = msg.data
    code = -_ERROR_CODE.unpack_from(data, _HEADER.size)[0]
    text = ""
    if code and msg.header["flags"] & NLM_F_ACK_TLVS:
        offset = _ACK_TLVS_OFFSET
        while offset + 4 <= len(data):
            length, nla_type = struct.unpack_from("=HH", data, offset)
            if length < 4:
                break
            if nla_type & 0x3FFF == _NLMSGERR_ATTR_MSG:
                raw = data[offset + 4 : offset + length]
                text = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
                break
            offset += (length + 3) & ~3
    return max(code, 0), text


def done_error(msg: RawMessage) -> int:
    """The errno a dump ended with (``NLMSG_DONE``; 0 for success)."""
    if len(msg.data) < _HEADER.size + 4:
        return 0
    code: int = _ERROR_CODE.unpack_from(msg.data, _HEADER.size)[0]
    return max(-code, 0)


def decode_one(msg: RawMessage, cls: type | None = None) -> Message:
    """A data message decoded by pyroute2 (``cls``, default: the class of its type), or
    left as it is when ``cls`` is :class:`RawMessage`."""
    if cls is RawMessage:
        return msg
    if cls is None:
        cls = MarshalRtnl.msg_map.get(msg.header["type"], nlmsg)
    decoded = cls(msg.data)
    decoded.decode()
    return decoded


def encode(msg: Message, msg_type: int, flags: int, seq: int) -> bytes:
    """Stamp the netlink header on a message and encode it (once per message).

    :param msg: a pyroute2 message, or the encoded body (``bytes``) of one.
    """
    if isinstance(msg, bytes):
        return _HEADER.pack(_HEADER.size + len(msg), msg_type, flags, seq, 0) + msg
    header = msg["header"]
    header["type"] = msg_type
    header["flags"] = flags
    header["sequence_number"] = seq
    header["pid"] = 0
    msg.encode()
    return bytes(msg.data)


_L2ADDR_NLA_LEN = 4 + 6


def mac_attr(msg: Message, name: str) -> str | None:
    """Attribute ``name`` as ``aa:bb:cc:dd:ee:ff`` if it is a 6-byte address, else None."""
    for cell in msg["attrs"]:
        if cell.name == name:
            if cell.cell[1].length != _L2ADDR_NLA_LEN:
                return None
            value = cell.value
            return value if isinstance(value, str) else None
    return None
