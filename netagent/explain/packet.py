"""The packet an explanation is about."""

from __future__ import annotations

import dataclasses
import ipaddress

from netagent.model.secgroup import PORT_RANGE_PROTOCOLS, PROTO_ICMP, PROTO_ICMPV6

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

PROTOCOL_NAMES = {"tcp": 6, "udp": 17, "icmp": PROTO_ICMP}


def parse_protocol(value: str, family: int) -> int:
    """``tcp``/``udp``/``icmp`` (ICMPv6 on IPv6) or a number 0..255.

    Protocol 0 is refused: a packet always has a concrete protocol (a *rule* with
    protocol 0 means any, see doc/firewall.md).

    :raises ValueError: anything else
    """
    name = value.lower()
    if name in PROTOCOL_NAMES:
        number = PROTOCOL_NAMES[name]
        return PROTO_ICMPV6 if number == PROTO_ICMP and family == 6 else number
    if name in ("icmpv6", "ipv6-icmp"):
        return PROTO_ICMPV6
    if not name.isdigit() or not 1 <= int(name) <= 255:
        raise ValueError(f"protocol must be tcp, udp, icmp or 1..255, got {value!r}")
    number = int(name)
    if number == PROTO_ICMP and family == 6:
        return PROTO_ICMPV6
    return number


@dataclasses.dataclass(frozen=True)
class Packet:
    """The first packet of a flow (conntrack state NEW) from one address to another.

    :ivar sport: ``None``: an ephemeral source port (matches no source-port rule but a
        full-range one)
    :ivar icmp_type: ICMP(v6) type, default echo request
    """

    src: IPAddress
    dst: IPAddress
    proto: int
    dport: int | None = None
    sport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    src_mac: str | None = None

    def __post_init__(self) -> None:
        if self.src.version != self.dst.version:
            raise ValueError(f"source {self.src} and destination {self.dst} differ in family")
        if self.proto in PORT_RANGE_PROTOCOLS:
            if self.dport is None or not 1 <= self.dport <= 65535:
                raise ValueError("tcp/udp/sctp/udplite/dccp need --port 1..65535")
        elif self.dport is not None:
            raise ValueError(f"protocol {self.proto} has no ports")
        if self.is_icmp:
            if self.icmp_type is None:
                echo = 8 if self.family == 4 else 128
                object.__setattr__(self, "icmp_type", echo)
            if self.icmp_code is None:
                object.__setattr__(self, "icmp_code", 0)
        elif self.icmp_type is not None:
            raise ValueError("--icmp-type needs protocol icmp")

    @property
    def family(self) -> int:
        """4 or 6."""
        return self.src.version

    @property
    def is_icmp(self) -> bool:
        """ICMP on IPv4, ICMPv6 on IPv6."""
        return self.proto == (PROTO_ICMP if self.family == 4 else PROTO_ICMPV6)

    def summary(self) -> str:
        """``tcp 192.0.2.10 -> 192.0.2.11:22``."""
        names = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}
        proto = names.get(self.proto, f"protocol {self.proto}")
        dst = f"[{self.dst}]" if self.family == 6 and self.dport else str(self.dst)
        if self.dport is not None:
            return f"{proto} {self.src} -> {dst}:{self.dport}"
        if self.is_icmp:
            return f"{proto} type {self.icmp_type} code {self.icmp_code} {self.src} -> {dst}"
        return f"{proto} {self.src} -> {dst}"
