"""Neighbour discovery from a VM (ip6tables ``na-nd``): pure functions.

ebtables checks the Ethernet and IPv6 source of a VM's neighbour discovery, but it cannot
look into an ICMPv6 message. Router solicitations (133), neighbour solicitations (135)
and advertisements (136) from a tap therefore first go to ``na-nd``, which reads the
message with ``-m u32`` at fixed offsets of the IPv6 header:

* the next header must be ICMPv6 (an extension header would shift every offset) and the
  payload length is pinned, so the message is exactly as long as the shape the rule
  describes: no option can hide after the one that is checked;
* allowed shapes: no option at all; an NS whose one option is a nonce (RFC 7527, what
  Linux puts in DAD probes: no link-layer address); or one link-layer address option
  (NS/RS: source, type 1; NA: target, type 2) of length 1 (8 bytes, an Ethernet MAC)
  holding one of the port's MACs. Everything else from a port with port security drops,
  also messages with several options (RFC 4861 hosts send one link-layer option, Linux
  takes the first one it finds, so an unchecked second option would be the hole again);
* which MAC: a neighbour caches the option's MAC for the message's IPv6 source (NS, RS)
  or for its target (NA). For an NA the (MAC, prefix) pair must cover the target: the
  port MAC for fixed IPs and the link-local address, a pair's MAC for the pair's prefix.
  For an NS/RS the option must be the frame's Ethernet source (``-m mac`` when the port
  has several MACs; with one, the ebtables bucket already pins it), and ebtables ties the
  Ethernet source to the IPv6 source's pair.

``na-nd`` first returns the shapes without a link-layer option that hold for any port,
then goes to the bucket ``na-d-<h>`` of the tap; a port's rules there return what it may
send (port security off: everything), the bucket ends in DROP. An NA's target must be one
of the port's prefixes in every shape.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from netagent.drivers.iptables_firewall.compiler import BUCKET_END, dispatch_rules
from netagent.linux.iptables import RETURN, U32, MacSource, Physdev, Rule

Term = tuple[int, int, int]

ROUTER_SOLICIT = 133
NEIGHBOUR_SOLICIT = 135
NEIGHBOUR_ADVERT = 136
#: ICMPv6 types that go to ``na-nd`` (router adverts and redirects: dropped by ebtables).
TYPES = (ROUTER_SOLICIT, NEIGHBOUR_SOLICIT, NEIGHBOUR_ADVERT)

SOURCE_LLADDR = 1
TARGET_LLADDR = 2
NONCE = 14
#: Fixed part of each message (ICMPv6 header included), i.e. where its options start.
_HEADER_LENGTH = {ROUTER_SOLICIT: 8, NEIGHBOUR_SOLICIT: 24, NEIGHBOUR_ADVERT: 24}
#: Bytes of an option of length 1: type, length, 6 bytes (an Ethernet MAC, a nonce).
_OPTION = 8
_IPV6_HEADER = 40
#: Byte offset of an NS/NA target address (40-byte IPv6 header + 8 bytes of ICMPv6).
_TARGET_OFFSET = 48


def shape_terms(icmp_type: int, options: int) -> tuple[Term, Term]:
    """u32 terms: next header ICMPv6, payload = header + ``options`` bytes, type, code 0.

    One word at offset 4 holds the payload length and the next header (the hop limit is
    masked out); the word at 40 holds the ICMPv6 type and code.
    """
    length = _HEADER_LENGTH[icmp_type] + options
    return (4, 0xFFFFFF00, (length << 16) | 0x3A00), (40, 0xFFFF0000, icmp_type << 24)


def lladdr_terms(icmp_type: int, mac: str) -> tuple[Term, Term]:
    """u32 terms: the first option is a link-layer address option (source for NS/RS,
    target for NA) of length 1 holding ``mac``."""
    octets = bytes(int(part, 16) for part in mac.split(":"))
    if len(octets) != 6:
        raise ValueError(f"not an Ethernet MAC: {mac!r}")
    kind = TARGET_LLADDR if icmp_type == NEIGHBOUR_ADVERT else SOURCE_LLADDR
    offset = _IPV6_HEADER + _HEADER_LENGTH[icmp_type]
    first = (kind << 24) | (1 << 16) | int.from_bytes(octets[:2], "big")
    return (offset, 0xFFFFFFFF, first), (offset + 4, 0xFFFFFFFF, int.from_bytes(octets[2:], "big"))


def target_terms(net: ipaddress.IPv6Network) -> tuple[Term, ...]:
    """u32 terms: the NS/NA target address lies in ``net`` (none for ``::/0``)."""
    terms = []
    address = int(net.network_address)
    netmask = int(net.netmask)
    for word in range(4):
        shift = 96 - 32 * word
        mask = (netmask >> shift) & 0xFFFFFFFF
        if mask:
            terms.append((_TARGET_OFFSET + 4 * word, mask, (address >> shift) & mask))
    return tuple(terms)


def _nd(*matches: Physdev | MacSource, terms: Sequence[Term]) -> Rule:
    # no "-p ipv6-icmp": the u32 terms pin the next header to ICMPv6 already
    return Rule((*matches, U32(tuple(terms))), RETURN)


def shared_rules() -> list[Rule]:
    """Shapes without a link-layer address that pass for every port (before dispatch)."""
    nonce = (_IPV6_HEADER + _HEADER_LENGTH[NEIGHBOUR_SOLICIT], 0xFFFF0000, (NONCE << 24) | 1 << 16)
    return [
        _nd(terms=shape_terms(NEIGHBOUR_SOLICIT, 0)),
        _nd(terms=(*shape_terms(NEIGHBOUR_SOLICIT, _OPTION), nonce)),
        _nd(terms=shape_terms(ROUTER_SOLICIT, 0)),
    ]


def dispatch_chain_rules() -> list[Rule]:
    """``na-nd``: the shared shapes, then goto the tap's ``na-d-<h>``, else drop."""
    return [*shared_rules(), *dispatch_rules("d")]


def port_rules(
    device: str,
    pairs: Sequence[tuple[str, ipaddress.IPv6Network]] | None,
    macs: Sequence[str] = (),
) -> list[Rule]:
    """A port's rules in its ``na-d-`` bucket.

    :param pairs: the port's IPv6 (MAC, prefix) pairs (fixed IPs, address pairs,
        link-local); None: port security off, everything passes
    :param macs: the port's MACs (Ethernet sources the bucket of ebtables lets in)
    """
    physdev = Physdev(in_=device)
    if pairs is None:
        return [Rule((physdev,), RETURN)]
    out: list[Rule] = []
    single = len(macs) == 1
    for mac in macs:
        source = (physdev,) if single else (physdev, MacSource(mac))
        for icmp_type in (NEIGHBOUR_SOLICIT, ROUTER_SOLICIT):
            shape = shape_terms(icmp_type, _OPTION)
            out.append(_nd(*source, terms=(*shape, *lladdr_terms(icmp_type, mac))))
    for net in dict.fromkeys(net for _, net in pairs):
        out.append(_nd(physdev, terms=(*shape_terms(NEIGHBOUR_ADVERT, 0), *target_terms(net))))
    for mac, net in pairs:
        shape = shape_terms(NEIGHBOUR_ADVERT, _OPTION)
        option = lladdr_terms(NEIGHBOUR_ADVERT, mac)
        out.append(_nd(physdev, terms=(*shape, *target_terms(net), *option)))
    return out


def bucket_rules(
    entries: Sequence[
        tuple[str, Sequence[tuple[str, ipaddress.IPv6Network]] | None, Sequence[str]]
    ],
) -> list[Rule]:
    """``na-d-<h>``: ``(device, IPv6 pairs or None, MACs)`` per port, then drop."""
    out = []
    for device, pairs, macs in sorted(entries, key=lambda e: e[0]):
        out += port_rules(device, pairs, macs)
    out.append(BUCKET_END)
    return out
