"""netagent's flow lines as OpenFlow 1.4 flow-mod messages (encoded here, no ovs-ofctl).

A line is the ``add-flows`` syntax of ovs-ofctl, restricted to what netagent writes
(:mod:`netagent.drivers.openvswitch.layout`):

* ``cookie=0x..,table=N,priority=N[,MATCH...],actions=ACTION[,ACTION...]`` with the match
  fields ``in_port``, ``dl_vlan``, ``vlan_tci`` (VLAN id and CFI bits), ``dl_dst`` (with an
  optional mask), ``tun_id`` and ``tun_src``, and the actions ``drop``, ``NORMAL``,
  ``output:N``, ``resubmit(,T)``, ``mod_vlan_vid:N``, ``strip_vlan``, ``set_tunnel:N``,
  ``set_field:IPv4->tun_dst`` and ``learn(...)`` (``table``, ``idle_timeout``,
  ``hard_timeout``, ``priority``, and match / ``load`` / ``output`` specs over whole or
  partial NXM fields);
* ``delete cookie=0x../MASK`` (``-1``: exactly that cookie), from every table.

Anything else is refused with :class:`InvalidArgument` before a byte is sent. Each action
is encoded as ovs-ofctl encodes it for OpenFlow 1.4 (``mod_vlan_vid`` pushes a VLAN header
first unless the match requires one; ``strip_vlan`` is ``pop_vlan``; ``set_tunnel`` sets
``tun_id``; ``resubmit`` and ``learn`` are Nicira extensions), so ovs-vswitchd holds the
same flows as it did from ovs-ofctl (functional test: ``dump-flows`` of both compared).
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections.abc import Callable

from netagent.privileged.errors import InvalidArgument

OFP14 = 0x05
HEADER = struct.Struct("!BBHI")  # version, type, length, xid
T_FLOW_MOD = 14

_FC_ADD, _FC_DELETE = 0, 3
_ANY = 0xFFFFFFFF  # OFPP_ANY / OFPG_ANY
_NO_BUFFER = 0xFFFFFFFF
_ALL_TABLES = 0xFF
_NORMAL = 0xFFFFFFFA
_DEFAULT_PRIORITY = 0x8000
_MAX_PORT = 0xFFFFFF00  # OFPP_MAX: above are the reserved ports
#: cookie, cookie_mask, table, command, idle, hard, priority, buffer, out_port, out_group,
#: flags, importance
_FLOW_MOD = struct.Struct("!QQBBHHHIIIHH")
_APPLY_ACTIONS = 4
_AT_OUTPUT, _AT_PUSH_VLAN, _AT_POP_VLAN, _AT_SET_FIELD, _AT_EXPERIMENTER = 0, 17, 18, 25, 0xFFFF
_NX_VENDOR = 0x00002320
_NXAST_RESUBMIT_TABLE, _NXAST_LEARN = 14, 16
_NX_IN_PORT = 0xFFF8  # OFPP_IN_PORT in the 16-bit port numbers of Nicira actions
_LEARN_SRC_IMMEDIATE, _LEARN_DST_LOAD, _LEARN_DST_OUTPUT = 1 << 13, 1 << 11, 2 << 11
_VID_PRESENT = 0x1000
_VID_CFI_MASK = 0x1FFF

_HEX = r"0x[0-9a-fA-F]{1,16}"
_COOKIE_RE = re.compile(rf"({_HEX})/({_HEX}|-1)")
_MAC_RE = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}")
_FIELD_RE = re.compile(r"(NXM_[A-Z0-9_]+)\[(?:(\d+)\.\.(\d+))?\]")


def _oxm(oxm_class: int, field: int, length: int, masked: bool = False) -> int:
    return (oxm_class << 16) | (field << 9) | (int(masked) << 8) | length


#: OXM fields of the match and of set_field: name -> (class, field, bytes)
_OXM = {
    "in_port": (0x8000, 0, 4),
    "eth_dst": (0x8000, 3, 6),
    "vlan_vid": (0x8000, 6, 2),
    "tun_id": (0x8000, 38, 8),
    "tun_src": (0x0001, 31, 4),
    "tun_dst": (0x0001, 32, 4),
}
#: NXM fields of learn(): name -> (header, bits)
_NXM = {
    "NXM_OF_IN_PORT": (_oxm(0, 0, 2), 16),
    "NXM_OF_ETH_DST": (_oxm(0, 1, 6), 48),
    "NXM_OF_ETH_SRC": (_oxm(0, 2, 6), 48),
    "NXM_OF_VLAN_TCI": (_oxm(0, 4, 2), 16),
    "NXM_NX_TUN_ID": (_oxm(1, 16, 8), 64),
    "NXM_NX_TUN_IPV4_SRC": (_oxm(1, 31, 4), 32),
    "NXM_NX_TUN_IPV4_DST": (_oxm(1, 32, 4), 32),
}


def _bad(value: object, expected: str) -> InvalidArgument:
    return InvalidArgument("flow", value, expected)


def _int(text: str, low: int, high: int) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise _bad(text, "an integer") from None
    if not low <= value <= high:
        raise _bad(text, f"{low}..{high}")
    return value


def _ipv4(text: str) -> bytes:
    try:
        return ipaddress.IPv4Address(text).packed
    except ValueError:
        raise _bad(text, "an IPv4 address") from None


def _mac(text: str) -> bytes:
    if not _MAC_RE.fullmatch(text):
        raise _bad(text, "a MAC address")
    return bytes.fromhex(text.replace(":", ""))


def _pad8(data: bytes) -> bytes:
    return data + bytes(-len(data) % 8)


def _split(text: str) -> list[str]:
    """``text`` split at the commas outside parentheses."""
    if "(" not in text and ")" not in text:
        return text.split(",")
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise _bad(text, "balanced parentheses")
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise _bad(text, "balanced parentheses")
    parts.append(text[start:])
    return parts


class _Match:
    """The OXM match of one flow, and whether it requires a VLAN header."""

    def __init__(self) -> None:
        self.fields: dict[str, bytes] = {}
        self.has_vlan = False

    def put(self, name: str, value: bytes, mask: bytes | None = None) -> None:
        if name in self.fields:
            raise _bad(name, "each match field once")
        oxm_class, field, size = _OXM[name]
        header = _oxm(oxm_class, field, size * (2 if mask else 1), mask is not None)
        self.fields[name] = struct.pack("!I", header) + value + (mask or b"")

    def add(self, key: str, value: str) -> None:
        if key == "in_port":
            self.put("in_port", struct.pack("!I", _int(value, 1, _MAX_PORT - 1)))
        elif key == "dl_vlan":
            self.put("vlan_vid", struct.pack("!H", _VID_PRESENT | _int(value, 0, 4095)))
            self.has_vlan = True
        elif key == "vlan_tci":
            tci, _, mask_text = value.partition("/")
            tci_value = _int(tci, 0, 0xFFFF)
            mask = _int(mask_text, 0, 0xFFFF) if mask_text else 0xFFFF
            if mask & ~_VID_CFI_MASK or tci_value & ~mask:
                raise _bad(value, "VLAN id and CFI bits only")
            vid = tci_value & _VID_CFI_MASK
            if mask == _VID_CFI_MASK:
                self.put("vlan_vid", struct.pack("!H", vid))
            else:
                self.put("vlan_vid", struct.pack("!H", vid), struct.pack("!H", mask))
            self.has_vlan = bool(vid & _VID_PRESENT)
        elif key == "dl_dst":
            mac, _, mask_text = value.partition("/")
            self.put("eth_dst", _mac(mac), _mac(mask_text) if mask_text else None)
        elif key == "tun_id":
            self.put("tun_id", struct.pack("!Q", _int(value, 0, (1 << 64) - 1)))
        elif key == "tun_src":
            self.put("tun_src", _ipv4(value))
        else:
            raise _bad(key, "a match field netagent writes")

    def encode(self) -> bytes:
        body = b"".join(self.fields.values())
        return _pad8(struct.pack("!HH", 1, 4 + len(body)) + body)  # OFPMT_OXM


def _padded_action(kind: int, body: bytes) -> bytes:
    """An action of type ``kind``: its length counts the padding to 8 bytes."""
    length = 4 + len(body)
    return _pad8(struct.pack("!HH", kind, length + -length % 8) + body)


def _nx(subtype: int, body: bytes) -> bytes:
    return _padded_action(_AT_EXPERIMENTER, struct.pack("!IH", _NX_VENDOR, subtype) + body)


def _set_field(name: str, value: bytes) -> bytes:
    oxm_class, field, size = _OXM[name]
    return _padded_action(_AT_SET_FIELD, struct.pack("!I", _oxm(oxm_class, field, size)) + value)


def _output(port: int) -> bytes:
    return struct.pack("!HHIH6x", _AT_OUTPUT, 16, port, 0)


def _field(text: str) -> tuple[int, int, int]:
    """``NXM_..[]`` or ``NXM_..[a..b]`` as (NXM header, offset, bits)."""
    found = _FIELD_RE.fullmatch(text)
    if not found or found.group(1) not in _NXM:
        raise _bad(text, "an NXM field netagent uses, e.g. NXM_OF_ETH_SRC[]")
    header, width = _NXM[found.group(1)]
    if found.group(2) is None:
        return header, 0, width
    start, end = int(found.group(2)), int(found.group(3))
    if not start <= end < width:
        raise _bad(text, f"bits within 0..{width - 1}")
    return header, start, end - start + 1


def _learn(args: str) -> bytes:
    timeouts = {"idle_timeout": 0, "hard_timeout": 0, "priority": _DEFAULT_PRIORITY}
    table = 1
    specs = b""
    for arg in _split(args):
        key, eq, value = arg.partition("=")
        if eq and key in timeouts:
            timeouts[key] = _int(value, 0, 0xFFFF)
        elif eq and key == "table":
            table = _int(value, 0, 254)
        elif arg.startswith("load:"):
            src, arrow, dst = arg[5:].partition("->")
            if not arrow:
                raise _bad(arg, "load:SRC->DST")
            dst_header, dst_ofs, bits = _field(dst)
            if src.startswith("NXM_"):
                src_header, src_ofs, src_bits = _field(src)
                if src_bits != bits:
                    raise _bad(arg, "source and destination of one width")
                specs += struct.pack(
                    "!HIHIH", _LEARN_DST_LOAD | bits, src_header, src_ofs, dst_header, dst_ofs
                )
            else:
                value_bytes = 2 * -(-bits // 16)
                immediate = _int(src, 0, (1 << bits) - 1).to_bytes(value_bytes, "big")
                specs += struct.pack("!H", _LEARN_SRC_IMMEDIATE | _LEARN_DST_LOAD | bits)
                specs += immediate + struct.pack("!IH", dst_header, dst_ofs)
        elif arg.startswith("output:"):
            src_header, src_ofs, bits = _field(arg[7:])
            specs += struct.pack("!HIH", _LEARN_DST_OUTPUT | bits, src_header, src_ofs)
        else:
            dst, eq, src = arg.partition("=")
            dst_header, dst_ofs, bits = _field(dst)
            src_header, src_ofs, src_bits = _field(src) if eq else (dst_header, dst_ofs, bits)
            if src_bits != bits:
                raise _bad(arg, "match of fields of one width")
            specs += struct.pack("!HIHIH", bits, src_header, src_ofs, dst_header, dst_ofs)
    body = struct.pack(
        "!HHHQHBxHH",
        timeouts["idle_timeout"],
        timeouts["hard_timeout"],
        timeouts["priority"],
        0,  # cookie of the learned flows
        0,  # flags
        table,
        0,  # fin_idle_timeout
        0,  # fin_hard_timeout
    )
    return _nx(_NXAST_LEARN, body + specs)


def _action(text: str, match: _Match) -> bytes:
    """One action, given what the match says about the packet's VLAN header."""
    name, colon, arg = text.partition(":")
    if text == "NORMAL":
        return _output(_NORMAL)
    if text == "strip_vlan":
        return struct.pack("!HH4x", _AT_POP_VLAN, 8)
    if colon and name == "output":
        return _output(_int(arg, 1, _MAX_PORT - 1))
    if colon and name == "mod_vlan_vid":
        vid = struct.pack("!H", _VID_PRESENT | _int(arg, 0, 4095))
        push = b"" if match.has_vlan else struct.pack("!HHH2x", _AT_PUSH_VLAN, 8, 0x8100)
        return push + _set_field("vlan_vid", vid)
    if colon and name == "set_tunnel":
        return _set_field("tun_id", struct.pack("!Q", _int(arg, 0, (1 << 64) - 1)))
    if colon and name == "set_field" and arg.endswith("->tun_dst"):
        return _set_field("tun_dst", _ipv4(arg.removesuffix("->tun_dst")))
    if text.startswith("resubmit(,") and text.endswith(")"):
        table = _int(text[len("resubmit(,") : -1], 0, 254)
        return _nx(_NXAST_RESUBMIT_TABLE, struct.pack("!HB3x", _NX_IN_PORT, table))
    if text.startswith("learn(") and text.endswith(")"):
        return _learn(text[len("learn(") : -1])
    raise _bad(text, "an action netagent writes")


def _message(xid: int, body: bytes) -> bytes:
    length = HEADER.size + len(body)
    if length > 0xFFFF:
        raise _bad(length, "a flow-mod of at most 64 KiB")
    return HEADER.pack(OFP14, T_FLOW_MOD, length, xid) + body


def _delete(spec: str, xid: int) -> bytes:
    found = _COOKIE_RE.fullmatch(spec.removeprefix("cookie="))
    if not spec.startswith("cookie=") or not found:
        raise _bad(spec, "delete cookie=0xC/0xM")
    cookie = int(found.group(1), 16)
    mask = (1 << 64) - 1 if found.group(2) == "-1" else int(found.group(2), 16)
    fields = _FLOW_MOD.pack(
        cookie,
        mask,
        _ALL_TABLES,
        _FC_DELETE,
        0,
        0,
        _DEFAULT_PRIORITY,
        _NO_BUFFER,
        _ANY,
        _ANY,
        0,
        0,
    )
    return _message(xid, fields + _Match().encode())


_HEAD: dict[str, Callable[[str], int]] = {
    "cookie": lambda v: _int(v, 0, (1 << 64) - 1),
    "table": lambda v: _int(v, 0, 0xFF),
    "priority": lambda v: _int(v, 0, 0xFFFF),
}


def flow_mod(line: str, xid: int) -> bytes:
    """The OpenFlow 1.4 flow-mod of one line (an add, or a ``delete cookie=``).

    :raises InvalidArgument: the line is not one netagent writes (module docstring).
    """
    if not isinstance(line, str):
        raise _bad(line, "a flow line")
    if line.startswith("delete "):
        return _delete(line[len("delete ") :], xid)
    head, sep, actions = line.partition("actions=")
    if not sep or (head and not head.endswith(",")):
        raise _bad(line, "...,actions=...")
    values = {"cookie": 0, "table": 0, "priority": _DEFAULT_PRIORITY}
    match = _Match()
    for item in _split(head[:-1]) if head else []:
        key, eq, value = item.partition("=")
        if not eq:
            raise _bad(item, "key=value")
        if key in _HEAD:
            values[key] = _HEAD[key](value)
        else:
            match.add(key, value)
    encoded = b""
    if actions != "drop":
        encoded = b"".join(_action(action, match) for action in _split(actions))
        encoded = struct.pack("!HH4x", _APPLY_ACTIONS, 8 + len(encoded)) + encoded
    fields = (
        values["cookie"],
        0,
        values["table"],
        _FC_ADD,
        0,
        0,
        values["priority"],
        _NO_BUFFER,
        _ANY,
        _ANY,
        0,
        0,
    )
    return _message(xid, _FLOW_MOD.pack(*fields) + match.encode() + encoded)
