"""Typed iptables rules: match and target objects that render to restore-input tokens.

Nothing here accepts free text. Every field is an int, an :mod:`ipaddress` object or a
string checked by :mod:`netagent.linux.iptables.validate` when the object is built, so a
:class:`Rule` can never carry a newline, quote or space into a restore input. Rendering
is deterministic: the same rule always gives the same text (the manager hashes it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import ClassVar

from netagent.linux.iptables import validate as v
from netagent.linux.iptables.targets import (
    ACCEPT,
    DNAT,
    DROP,
    RETURN,
    SNAT,
    CTZone,
    Jump,
    NoTrack,
    Reject,
    SetMark,
    Target,
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Protocol numbers iptables knows by name (the names iptables-save prints).
PROTO_NAMES: dict[int, str] = {
    1: "icmp",
    6: "tcp",
    17: "udp",
    33: "dccp",
    47: "gre",
    50: "esp",
    51: "ah",
    58: "ipv6-icmp",
    112: "vrrp",
    132: "sctp",
    136: "udplite",
}
_PORT_PROTOS = frozenset({6, 17, 33, 132, 136})
__all__ = [
    "ACCEPT",
    "DNAT",
    "DROP",
    "RETURN",
    "SNAT",
    "CTZone",
    "Jump",
    "NoTrack",
    "Reject",
    "SetMark",
    "Target",
]
CT_STATES = ("INVALID", "NEW", "ESTABLISHED", "RELATED", "UNTRACKED", "SNAT", "DNAT")


def _family_of(net: IPNetwork | IPAddress) -> int:
    return net.version


def _check_family(obj: IPNetwork | IPAddress, family: int, what: str) -> None:
    if _family_of(obj) != family:
        raise ValueError(f"{what}: IPv{_family_of(obj)} value {obj} in an IPv{family} rule")


def _neg(negate: bool) -> list[str]:
    return ["!"] if negate else []


class Match:
    """Base of match objects."""

    def render(self, family: int, proto: int | None) -> list[str]:
        """Tokens of this match for ``family``; ``proto`` is the rule's protocol number."""
        raise NotImplementedError


@dataclass(frozen=True)
class Proto(Match):
    """``-p``: an IP protocol number 0..255 (rendered by name where iptables has one)."""

    number: int
    negate: bool = False

    def __post_init__(self) -> None:
        v.integer(self.number, "protocol", 0, 255)

    def render(self, family: int, proto: int | None) -> list[str]:
        if self.number == 1 and family == 6:
            raise ValueError("protocol: icmp (1) in an IPv6 rule; use 58")
        if self.number == 58 and family == 4:
            raise ValueError("protocol: ipv6-icmp (58) in an IPv4 rule")
        return [*_neg(self.negate), "-p", PROTO_NAMES.get(self.number, str(self.number))]


@dataclass(frozen=True)
class _PortRange(Match):
    low: int
    high: int
    option: ClassVar[str] = ""

    def __post_init__(self) -> None:
        v.integer(self.low, "port", 0, 65535)
        v.integer(self.high, "port", 0, 65535)
        if self.low > self.high:
            raise ValueError(f"port range: {self.low} > {self.high}")

    def render(self, family: int, proto: int | None) -> list[str]:
        if proto not in _PORT_PROTOS:
            raise ValueError("port range needs protocol tcp, udp, sctp, dccp or udplite")
        value = str(self.low) if self.low == self.high else f"{self.low}:{self.high}"
        return ["-m", PROTO_NAMES[proto], self.option, value]


@dataclass(frozen=True)
class DPortRange(_PortRange):
    """Destination port range (inclusive); needs a :class:`Proto` with ports."""

    option: ClassVar[str] = "--dport"


@dataclass(frozen=True)
class SPortRange(_PortRange):
    """Source port range (inclusive); needs a :class:`Proto` with ports."""

    option: ClassVar[str] = "--sport"


@dataclass(frozen=True)
class _Net(Match):
    net: IPNetwork
    negate: bool = False
    option: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if not isinstance(self.net, ipaddress.IPv4Network | ipaddress.IPv6Network):
            raise ValueError(f"network must be an ip_network, got {self.net!r}")

    def render(self, family: int, proto: int | None) -> list[str]:
        _check_family(self.net, family, self.option)
        return [*_neg(self.negate), self.option, str(self.net)]


@dataclass(frozen=True)
class SrcNet(_Net):
    """``-s NET``."""

    option: ClassVar[str] = "-s"


@dataclass(frozen=True)
class DstNet(_Net):
    """``-d NET``."""

    option: ClassVar[str] = "-d"


@dataclass(frozen=True)
class _Iface(Match):
    name: str
    negate: bool = False
    option: ClassVar[str] = ""

    def __post_init__(self) -> None:
        v.interface_name(self.name, self.option)

    def render(self, family: int, proto: int | None) -> list[str]:
        return [*_neg(self.negate), self.option, self.name]


@dataclass(frozen=True)
class InIface(_Iface):
    """``-i DEV`` (``DEV+`` matches a prefix)."""

    option: ClassVar[str] = "-i"


@dataclass(frozen=True)
class OutIface(_Iface):
    """``-o DEV`` (``DEV+`` matches a prefix)."""

    option: ClassVar[str] = "-o"


@dataclass(frozen=True)
class Conntrack(Match):
    """``-m conntrack --ctstate A,B`` over :data:`CT_STATES`."""

    states: frozenset[str]
    negate: bool = False

    def __post_init__(self) -> None:
        if not self.states or not set(self.states) <= set(CT_STATES):
            raise ValueError(f"ctstate must be a non-empty subset of {CT_STATES}")

    def render(self, family: int, proto: int | None) -> list[str]:
        states = ",".join(s for s in CT_STATES if s in self.states)
        return ["-m", "conntrack", *_neg(self.negate), "--ctstate", states]


@dataclass(frozen=True)
class SetMatch(Match):
    """``-m set --match-set NAME src|dst``."""

    name: str
    direction: str = "src"
    negate: bool = False

    def __post_init__(self) -> None:
        v.set_name(self.name, "match-set")
        if self.direction not in ("src", "dst"):
            raise ValueError(f"match-set direction must be src or dst, got {self.direction!r}")

    def render(self, family: int, proto: int | None) -> list[str]:
        return ["-m", "set", *_neg(self.negate), "--match-set", self.name, self.direction]


@dataclass(frozen=True)
class Physdev(Match):
    """``-m physdev``: bridge ports a bridged frame came in on / goes out of."""

    in_: str | None = None
    out: str | None = None
    is_bridged: bool = False

    def __post_init__(self) -> None:
        if self.in_ is not None:
            v.interface_name(self.in_, "physdev-in")
        if self.out is not None:
            v.interface_name(self.out, "physdev-out")
        if self.in_ is None and self.out is None and not self.is_bridged:
            raise ValueError("physdev: give in_, out or is_bridged")

    def render(self, family: int, proto: int | None) -> list[str]:
        out = ["-m", "physdev"]
        if self.in_ is not None:
            out += ["--physdev-in", self.in_]
        if self.out is not None:
            out += ["--physdev-out", self.out]
        if self.is_bridged:
            out.append("--physdev-is-bridged")
        return out


@dataclass(frozen=True)
class MacSource(Match):
    """``-m mac --mac-source MAC``."""

    mac: str
    negate: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "mac", v.mac_address(self.mac, "mac-source"))

    def render(self, family: int, proto: int | None) -> list[str]:
        return ["-m", "mac", *_neg(self.negate), "--mac-source", self.mac]


@dataclass(frozen=True)
class Icmp(Match):
    """ICMP / ICMPv6 type and optional code; needs ``Proto(1)`` (v4) or ``Proto(58)`` (v6)."""

    type: int
    code: int | None = None

    def __post_init__(self) -> None:
        v.integer(self.type, "icmp type", 0, 255)
        if self.code is not None:
            v.integer(self.code, "icmp code", 0, 255)

    def render(self, family: int, proto: int | None) -> list[str]:
        if proto != (1 if family == 4 else 58):
            raise ValueError("icmp type needs protocol icmp (IPv4) or ipv6-icmp (IPv6)")
        value = str(self.type) if self.code is None else f"{self.type}/{self.code}"
        if family == 4:
            return ["-m", "icmp", "--icmp-type", value]
        return ["-m", "icmp6", "--icmpv6-type", value]


@dataclass(frozen=True)
class MarkMatch(Match):
    """``-m mark --mark VALUE/MASK``."""

    value: int
    mask: int = 0xFFFFFFFF

    def __post_init__(self) -> None:
        v.integer(self.value, "mark", 0, 0xFFFFFFFF)
        v.integer(self.mask, "mark mask", 0, 0xFFFFFFFF)

    def render(self, family: int, proto: int | None) -> list[str]:
        return ["-m", "mark", "--mark", f"{self.value:#x}/{self.mask:#x}"]


@dataclass(frozen=True)
class U32(Match):
    """``-m u32 --u32``: every term ``(offset, mask, value)`` must hold (AND).

    A term reads the 32-bit big-endian word at byte ``offset`` of the network header,
    ANDs it with ``mask`` and compares with ``value``. Built from integers only. A full
    mask is left out of the text (``48=0x1``: u32's own default), which keeps rules with
    many address words short.
    """

    terms: tuple[tuple[int, int, int], ...]

    def __post_init__(self) -> None:
        terms = tuple(tuple(t) for t in self.terms)
        if not 1 <= len(terms) <= 10:
            raise ValueError("u32: 1..10 terms")
        for term in terms:
            if len(term) != 3:
                raise ValueError(f"u32: term must be (offset, mask, value), got {term!r}")
            offset, mask, value = term
            v.integer(offset, "u32 offset", 0, 65535)
            v.integer(mask, "u32 mask", 0, 0xFFFFFFFF)
            v.integer(value, "u32 value", 0, 0xFFFFFFFF)
            if value & ~mask:
                raise ValueError(f"u32: value {value:#x} has bits outside mask {mask:#x}")
        object.__setattr__(self, "terms", terms)

    def render(self, family: int, proto: int | None) -> list[str]:
        spec = "&&".join(
            f"{o}={x:#x}" if m == 0xFFFFFFFF else f"{o}&{m:#x}={x:#x}" for o, m, x in self.terms
        )
        return ["-m", "u32", "--u32", spec]


@dataclass(frozen=True)
class Rule:
    """One rule: matches (in order), a target and an optional tag (an id, not prose).

    The protocol, if any, comes from the first :class:`Proto` match; port and ICMP
    matches check it at render time.
    """

    matches: tuple[Match, ...] = ()
    target: Target = field(default=ACCEPT)
    tag: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "matches", tuple(self.matches))
        for match in self.matches:
            if not isinstance(match, Match):
                raise ValueError(f"rule match must be a Match, got {match!r}")
        if not isinstance(self.target, Target):
            raise ValueError(f"rule target must be a Target, got {self.target!r}")
        if self.tag is not None:
            v.tag(self.tag)

    def rendered(self, family: int) -> tuple[str, str]:
        """:meth:`render`, memoised on this (immutable) rule: a bucket rule is built once
        per port and rendered for both families and every later rewrite of its bucket."""
        cache: dict[int, tuple[str, str]] = self.__dict__.setdefault("_rendered", {})
        text = cache.get(family)
        if text is None:
            text = cache[family] = self.render(family)
        return text

    def render(self, family: int) -> tuple[str, str]:
        """Render for ``family`` as ``(matches, target)`` text.

        The manager joins them around ``-m comment --comment na:<hash>[:<tag>]``.

        :param family: 4 or 6
        :raises ValueError: a match or target does not fit the family or protocol
        """
        proto = next((m.number for m in self.matches if isinstance(m, Proto)), None)
        tokens: list[str] = []
        for match in self.matches:
            tokens += match.render(family, proto)
        return " ".join(tokens), " ".join(self.target.render(family))
