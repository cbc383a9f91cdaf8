"""Security groups, their rules, and address groups."""

from __future__ import annotations

import dataclasses
import enum
import re

from netagent.model import validate as v
from netagent.model.validate import IPNetwork, Reader

MAX_RULES = 4096
MAX_ADDRESSES = 4096


class Direction(enum.StrEnum):
    """Traffic direction as seen from the port."""

    INGRESS = "ingress"
    EGRESS = "egress"


class EtherType(enum.StrEnum):
    """Address family of a rule."""

    IPV4 = "IPv4"
    IPV6 = "IPv6"

    @property
    def version(self) -> int:
        """4 or 6."""
        return 4 if self is EtherType.IPV4 else 6


#: Protocol names Neutron accepts (neutron-lib ``IP_PROTOCOL_MAP``) plus its aliases.
PROTOCOL_NUMBERS: dict[str, int] = {
    "ah": 51,
    "dccp": 33,
    "egp": 8,
    "esp": 50,
    "gre": 47,
    "hopopt": 0,
    "icmp": 1,
    "icmpv6": 58,
    "igmp": 2,
    "ipip": 4,
    "ipv6-encap": 41,
    "ipv6-frag": 44,
    "ipv6-icmp": 58,
    "ipv6-nonxt": 59,
    "ipv6-opts": 60,
    "ipv6-route": 43,
    "ospf": 89,
    "pgm": 113,
    "rsvp": 46,
    "sctp": 132,
    "tcp": 6,
    "udp": 17,
    "udplite": 136,
    "vrrp": 112,
}
#: Number -> name for display; where two names share a number the first listed wins.
_PROTOCOL_NAMES: dict[int, str] = {n: name for name, n in reversed(PROTOCOL_NUMBERS.items())}
#: Protocol 0 on the wire: Neutron reads it as "any protocol" (see :func:`protocol_number`).
PROTO_ANY = 0
PROTO_ICMP = 1
PROTO_ICMPV6 = 58
#: Protocols whose rules may carry port ranges: tcp, udp, sctp, udplite, dccp.
PORT_RANGE_PROTOCOLS = frozenset({6, 17, 132, 136, 33})
ICMP_PROTOCOLS = frozenset({PROTO_ICMP, PROTO_ICMPV6})

_DIRECTIONS = {member.value: member for member in Direction}
_ETHERTYPES = {member.value: member for member in EtherType}
_NUMBER_RE = re.compile(r"[0-9]{1,3}")
_PREFIX_KEYS = {Direction.INGRESS: "source_ip_prefix", Direction.EGRESS: "dest_ip_prefix"}


def protocol_number(value: object) -> int | None:
    """Normalise a protocol name or number (int or numeric string) to its IANA number.

    Protocol 0 (``0``, ``"000"``, ``hopopt``) means *any protocol*, not IPv6 hop-by-hop
    only: Neutron's own iptables driver renders it without ``-p``, and rules written for
    Neutron rely on that. It is normalised to ``None`` here so that every later layer
    (rendering, status, logs) shows one meaning.

    :returns: ``None`` for any protocol (``any`` or 0).
    :raises FieldError: unknown name, or a number outside 0..255.
    """
    if isinstance(value, str):
        if value.lower() == "any":
            return None
        if value.lower() in PROTOCOL_NUMBERS:
            value = PROTOCOL_NUMBERS[value.lower()]
        elif not _NUMBER_RE.fullmatch(value):
            raise v.FieldError(f"not a protocol name or number: {v.show(value)}")
        else:
            value = int(value)
    number = v.integer(value, 0, 255)
    return None if number == PROTO_ANY else number


@dataclasses.dataclass(frozen=True, slots=True)
class SecurityGroupRule:
    """One rule of a security group.

    :ivar id: ``None`` in the RPC shape (rules there carry no id) and when a state file
        leaves it out.
    :ivar security_group_id: ``None`` for the provider rules the server adds per port.
    :ivar protocol: IANA number, ``None`` for any; ``icmp`` on an IPv6 rule means 58.
    :ivar port_range_min: destination ports, only for tcp/udp/sctp/udplite/dccp; both
        ends set, ``1 <= min <= max <= 65535``.
    :ivar icmp_type: ICMP(v6) type 0..255 (API field ``port_range_min``).
    :ivar icmp_code: ICMP(v6) code 0..255 (API field ``port_range_max``); needs a type.
    :ivar remote_ip_prefix: the peer prefix, host bits masked, family of ``ethertype``.
    :ivar local_ip_prefix: the port-side prefix some provider rules carry (RPC shape only).
    :ivar source_port_range_min: source ports (provider rules, RPC shape only).
    """

    id: str | None
    security_group_id: str | None
    direction: Direction
    ethertype: EtherType = EtherType.IPV4
    protocol: int | None = None
    port_range_min: int | None = None
    port_range_max: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    remote_ip_prefix: IPNetwork | None = None
    remote_group_id: str | None = None
    remote_address_group_id: str | None = None
    local_ip_prefix: IPNetwork | None = None
    source_port_range_min: int | None = None
    source_port_range_max: int | None = None

    def summary(self) -> str:
        """One line for operators, e.g. ``ingress IPv4 tcp 22-22 from 198.51.100.0/24``.

        A rule without protocol (including protocol 0, see :func:`protocol_number`) reads
        ``any protocol``.
        """
        words = [str(self.direction), str(self.ethertype)]
        if self.protocol is None:
            words.append("any protocol")
        else:
            words.append(_PROTOCOL_NAMES.get(self.protocol, f"protocol {self.protocol}"))
        if self.port_range_min is not None:
            words.append(f"port {self.port_range_min}-{self.port_range_max}")
        if self.icmp_type is not None:
            code = "" if self.icmp_code is None else f" code {self.icmp_code}"
            words.append(f"type {self.icmp_type}{code}")
        side = "from" if self.direction is Direction.INGRESS else "to"
        if self.remote_group_id is not None:
            words.append(f"{side} group {self.remote_group_id}")
        elif self.remote_address_group_id is not None:
            words.append(f"{side} address group {self.remote_address_group_id}")
        elif self.remote_ip_prefix is not None:
            words.append(f"{side} {self.remote_ip_prefix}")
        else:
            words.append(f"{side} anywhere")
        return " ".join(words)

    @classmethod
    def from_api(cls, data: object, security_group_id: str | None = None) -> SecurityGroupRule:
        """Parse a Neutron API security group rule.

        :param security_group_id: the owning group when known; the rule's own
            ``security_group_id`` must then match (or be absent).
        :raises ModelError: on any invalid field.
        """
        r = Reader(data, "security_group_rule")
        r.object_id = r.opt("id", v.uuid, None)
        return cls.from_reader(r, security_group_id, rpc=False)

    @classmethod
    def from_rpc(cls, data: object, security_group_id: str | None = None) -> SecurityGroupRule:
        """Parse a rule of ``security_group_info_for_devices`` (``source_ip_prefix`` /
        ``dest_ip_prefix``, ``source_port_range_*``, no id).

        :raises ModelError: on any invalid field.
        """
        return cls.from_reader(Reader(data, "security_group_rule"), security_group_id, rpc=True)

    @classmethod
    def from_reader(
        cls, r: Reader, security_group_id: str | None, *, rpc: bool
    ) -> SecurityGroupRule:
        """Parse a rule from a reader (also used for rules nested in a group)."""
        rule_id = r.opt("id", v.uuid, None)
        group_id = r.opt("security_group_id", v.uuid, security_group_id)
        if security_group_id is not None and group_id != security_group_id:
            r.fail("security_group_id", f"does not match the group {security_group_id}")
        direction = r.req("direction", v.choice(_DIRECTIONS))
        ethertype = r.opt("ethertype", v.choice(_ETHERTYPES), EtherType.IPV4)
        protocol = r.opt("protocol", protocol_number, None)
        if protocol == PROTO_ICMP and ethertype is EtherType.IPV6:
            protocol = PROTO_ICMPV6
        elif protocol == PROTO_ICMPV6 and ethertype is EtherType.IPV4:
            r.fail("protocol", "ICMPv6 is not valid with ethertype IPv4")
        remote_key = _PREFIX_KEYS[direction] if rpc else "remote_ip_prefix"
        remote = _prefix(r, remote_key, ethertype)
        local = _prefix(r, _PREFIX_KEYS[_other(direction)], ethertype) if rpc else None
        remote_group = r.opt("remote_group_id", v.uuid, None)
        address_group = r.opt("remote_address_group_id", v.uuid, None)
        remotes = [(remote_key, remote), ("remote_group_id", remote_group)]
        remotes.append(("remote_address_group_id", address_group))
        given = [key for key, value in remotes if value is not None]
        if len(given) > 1:
            r.fail(given[1], f"only one of {', '.join(given)} may be set")
        dports = _ports(r, protocol, "port_range_min", "port_range_max")
        sports = _ports(r, protocol, "source_port_range_min", "source_port_range_max", rpc)
        icmp: tuple[int | None, int | None] = (None, None)
        if protocol in ICMP_PROTOCOLS:
            icmp, dports = dports, (None, None)
            if icmp == (None, None) and rpc:
                icmp, sports = sports, (None, None)
        return cls(
            id=rule_id,
            security_group_id=group_id,
            direction=direction,
            ethertype=ethertype,
            protocol=protocol,
            port_range_min=dports[0],
            port_range_max=dports[1],
            icmp_type=icmp[0],
            icmp_code=icmp[1],
            remote_ip_prefix=remote,
            remote_group_id=remote_group,
            remote_address_group_id=address_group,
            local_ip_prefix=local,
            source_port_range_min=sports[0],
            source_port_range_max=sports[1],
        )


def _other(direction: Direction) -> Direction:
    return Direction.EGRESS if direction is Direction.INGRESS else Direction.INGRESS


def _prefix(r: Reader, key: str, ethertype: EtherType) -> IPNetwork | None:
    prefix = r.opt(key, v.host_or_cidr, None)
    if prefix is not None and prefix.version != ethertype.version:
        r.fail(key, f"IPv{prefix.version} prefix on an {ethertype.value} rule")
    return prefix


def _ports(
    r: Reader, protocol: int | None, min_key: str, max_key: str, present: bool = True
) -> tuple[int | None, int | None]:
    """Validate a (min, max) pair: ports for port protocols, type/code for ICMP."""
    if not present:
        for key in (min_key, max_key):
            if r.has(key):
                r.fail(key, "not allowed here")
        return (None, None)
    low = r.opt(min_key, v.int_range(0, 65535), None)
    high = r.opt(max_key, v.int_range(0, 65535), None)
    if low is None and high is None:
        return (None, None)
    if protocol is None:
        r.fail(min_key if low is not None else max_key, "a port range needs a protocol")
    if protocol in ICMP_PROTOCOLS:
        if low is None:
            r.fail(min_key, "an ICMP code needs an ICMP type")
        if low > 255:
            r.fail(min_key, f"ICMP type not in 0..255: {low}")
        if high is not None and high > 255:
            r.fail(max_key, f"ICMP code not in 0..255: {high}")
        return (low, high)
    if protocol not in PORT_RANGE_PROTOCOLS:
        r.fail(min_key if low is not None else max_key, f"protocol {protocol} has no ports")
    if low is None:
        r.fail(min_key, "required when the range has a maximum")
    if high is None:
        if min_key == "port_range_min":
            r.fail(max_key, "required when the range has a minimum")
        high = low
    for key, port in ((min_key, low), (max_key, high)):
        if port == 0:
            r.fail(key, "port 0 is not valid")
    if low > high:
        r.fail(min_key, f"greater than {max_key} ({low} > {high})")
    return (low, high)


@dataclasses.dataclass(frozen=True, slots=True)
class SecurityGroup:
    """A security group and its rules.

    :ivar stateful: false means rules are applied without connection tracking.
    """

    id: str
    name: str = ""
    stateful: bool = True
    rules: tuple[SecurityGroupRule, ...] = ()

    @classmethod
    def from_api(cls, data: object) -> SecurityGroup:
        """Parse a Neutron API security group, rules inline in ``security_group_rules``.

        :raises ModelError: on any invalid field, including any of its rules.
        """
        r = Reader.root(data, "security_group")
        group_id = r.req("id", v.uuid)
        rules = tuple(
            SecurityGroupRule.from_reader(r.sub(path, item), group_id, rpc=False)
            for path, item in r.items("security_group_rules", max_len=MAX_RULES)
        )
        return cls(
            id=group_id,
            name=r.opt("name", v.name, ""),
            stateful=r.opt("stateful", v.boolean, True),
            rules=rules,
        )

    @classmethod
    def from_rpc(cls, group_id: object, rules: object) -> SecurityGroup:
        """Parse one ``security_groups`` entry of ``security_group_info_for_devices``.

        The group's ``stateful`` flag is copied into each rule there; it is taken from the
        rules (true for a group without rules).

        :raises ModelError: on any invalid field, or rules disagreeing on ``stateful``.
        """
        r = Reader({"id": group_id, "rules": rules}, "security_group")
        gid = r.req("id", v.uuid)
        r.object_id = gid
        parsed: list[SecurityGroupRule] = []
        flags: set[bool] = set()
        for path, item in r.items("rules", max_len=MAX_RULES):
            sub = r.sub(path, item)
            parsed.append(SecurityGroupRule.from_reader(sub, gid, rpc=True))
            flags.add(sub.opt("stateful", v.boolean, True))
        if len(flags) > 1:
            r.fail("rules", "rules disagree on stateful")
        return cls(id=gid, stateful=flags.pop() if flags else True, rules=tuple(parsed))


@dataclasses.dataclass(frozen=True, slots=True)
class AddressGroup:
    """A named set of prefixes that rules can reference as their remote."""

    id: str
    addresses: tuple[IPNetwork, ...] = ()
    name: str = ""

    @classmethod
    def from_api(cls, data: object) -> AddressGroup:
        """Parse a Neutron API address group (``addresses``: list of CIDRs or addresses).

        :raises ModelError: on any invalid field.
        """
        r = Reader.root(data, "address_group")
        addresses = r.each("addresses", v.host_or_cidr, max_len=MAX_ADDRESSES)
        return cls(
            id=r.req("id", v.uuid),
            addresses=tuple(dict.fromkeys(addresses)),
            name=r.opt("name", v.name, ""),
        )
