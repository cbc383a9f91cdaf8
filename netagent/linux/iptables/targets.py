"""Typed iptables targets (verdicts, jumps, NAT, marks, conntrack zones).

Like the matches in :mod:`netagent.linux.iptables.rules`, every field is validated when
the object is built; nothing here accepts free text.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import ClassVar

from netagent.linux.iptables import validate as v

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _check_family(obj: IPAddress, family: int, what: str) -> None:
    if obj.version != family:
        raise ValueError(f"{what}: IPv{obj.version} value {obj} in an IPv{family} rule")


class Target:
    """Base of targets."""

    def render(self, family: int) -> list[str]:
        """Tokens of this target for ``family``."""
        raise NotImplementedError

    def chain_reference(self) -> str | None:
        """The user chain this target refers to, if any."""
        return None


@dataclass(frozen=True)
class _Verdict(Target):
    verdict: str

    def render(self, family: int) -> list[str]:
        return ["-j", self.verdict]


ACCEPT: Target = _Verdict("ACCEPT")
DROP: Target = _Verdict("DROP")
RETURN: Target = _Verdict("RETURN")


@dataclass(frozen=True)
class Jump(Target):
    """``-j CHAIN`` (``goto=True``: ``-g CHAIN``)."""

    chain: str
    goto: bool = False

    def __post_init__(self) -> None:
        v.chain_name(self.chain, "jump")
        if self.chain in {"ACCEPT", "DROP", "RETURN", "QUEUE"}:
            raise ValueError(f"jump: {self.chain} is a verdict, use the constant")

    def render(self, family: int) -> list[str]:
        return ["-g" if self.goto else "-j", self.chain]

    def chain_reference(self) -> str | None:
        return self.chain


_REJECT_WITH = {
    "port-unreachable": ("icmp-port-unreachable", "icmp6-port-unreachable"),
    "admin-prohibited": ("icmp-admin-prohibited", "icmp6-adm-prohibited"),
    "tcp-reset": ("tcp-reset", "tcp-reset"),
}


@dataclass(frozen=True)
class Reject(Target):
    """``-j REJECT --reject-with`` port-unreachable, admin-prohibited or tcp-reset."""

    with_: str = "port-unreachable"

    def __post_init__(self) -> None:
        if self.with_ not in _REJECT_WITH:
            raise ValueError(f"reject-with must be one of {sorted(_REJECT_WITH)}")

    def render(self, family: int) -> list[str]:
        return ["-j", "REJECT", "--reject-with", _REJECT_WITH[self.with_][family == 6]]


@dataclass(frozen=True)
class SetMark(Target):
    """``-j MARK --set-xmark VALUE/MASK``."""

    value: int
    mask: int = 0xFFFFFFFF

    def __post_init__(self) -> None:
        v.integer(self.value, "mark", 0, 0xFFFFFFFF)
        v.integer(self.mask, "mark mask", 0, 0xFFFFFFFF)

    def render(self, family: int) -> list[str]:
        return ["-j", "MARK", "--set-xmark", f"{self.value:#x}/{self.mask:#x}"]


@dataclass(frozen=True)
class _Nat(Target):
    to: IPAddress
    port: int | None = None
    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if not isinstance(self.to, ipaddress.IPv4Address | ipaddress.IPv6Address):
            raise ValueError(f"{self.kind}: address must be an ip_address, got {self.to!r}")
        if self.port is not None:
            v.integer(self.port, f"{self.kind} port", 1, 65535)

    def render(self, family: int) -> list[str]:
        _check_family(self.to, family, self.kind)
        addr = str(self.to) if family == 4 or self.port is None else f"[{self.to}]"
        value = addr if self.port is None else f"{addr}:{self.port}"
        option = "--to-destination" if self.kind == "DNAT" else "--to-source"
        return ["-j", self.kind, option, value]


@dataclass(frozen=True)
class DNAT(_Nat):
    """``-j DNAT --to-destination ADDR[:PORT]`` (nat table)."""

    kind: ClassVar[str] = "DNAT"


@dataclass(frozen=True)
class SNAT(_Nat):
    """``-j SNAT --to-source ADDR[:PORT]`` (nat table)."""

    kind: ClassVar[str] = "SNAT"


@dataclass(frozen=True)
class CTZone(Target):
    """``-j CT --zone N`` (raw table)."""

    zone: int

    def __post_init__(self) -> None:
        v.integer(self.zone, "zone", 0, 65535)

    def render(self, family: int) -> list[str]:
        return ["-j", "CT", "--zone", str(self.zone)]


@dataclass(frozen=True)
class NoTrack(Target):
    """``-j CT --notrack`` (raw table)."""

    def render(self, family: int) -> list[str]:
        return ["-j", "CT", "--notrack"]
