"""Which conntrack entries to delete when something that allowed a connection goes away.

Pure functions returning :class:`netagent.linux.conntrack.ConntrackFilter` lists. Stateful
security groups accept RELATED/ESTABLISHED packets without looking at the rules again, so
a connection a removed rule allowed would go on for as long as it is active. Deleting its
conntrack entry makes its next packet NEW again (TCP is picked up mid-stream, as
``nf_conntrack_tcp_loose`` is on by default), and that packet meets the current rules.

The conntrack tool filters on family, protocol and addresses (not ports), so deletions are
by the port's own addresses and the rule's protocol: some still-allowed connections lose
their entry too and are simply re-admitted by their packet's next pass through the rules.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from netagent.linux.conntrack import ConntrackFilter
from netagent.model.port import Port
from netagent.model.secgroup import Direction, SecurityGroupRule

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def host_addresses(port: Port, version: int | None = None) -> list[IPAddress]:
    """The port's fixed IPs and single-address allowed pairs (of one family if given)."""
    out: list[IPAddress] = list(port.addresses)
    for pair in port.allowed_address_pairs:
        net = ipaddress.ip_network(pair.ip_address, strict=False)
        if net.prefixlen == net.max_prefixlen:
            out.append(net.network_address)
    return [a for a in dict.fromkeys(out) if version is None or a.version == version]


#: Above this many per-address filters for one (family, protocol), one filter for the
#: whole protocol is used instead (the conntrack tool costs ~10 ms per filter line).
COLLAPSE_ABOVE = 4


def for_removed_rules(
    rules: Iterable[SecurityGroupRule], ports: Iterable[Port]
) -> list[ConntrackFilter]:
    """Entries the removed ``rules`` may have admitted, for the group's local ``ports``.

    Per (family, protocol): the ports' addresses as destination (ingress rules) or source
    (egress rules); when that is more than :data:`COLLAPSE_ABOVE` filters, every entry of
    that protocol (connections still allowed are re-admitted by their next packet).
    """
    port_list = list(ports)
    wanted: dict[tuple[int, int | None], list[ConntrackFilter]] = {}
    for rule in rules:
        version = rule.ethertype.version
        bucket = wanted.setdefault((version, rule.protocol), [])
        for port in port_list:
            for address in host_addresses(port, version):
                if rule.direction is Direction.INGRESS:
                    bucket.append(ConntrackFilter(version, proto=rule.protocol, dst=address))
                else:
                    bucket.append(ConntrackFilter(version, proto=rule.protocol, src=address))
    out: list[ConntrackFilter] = []
    for (version, proto), filters in sorted(wanted.items(), key=lambda kv: str(kv[0])):
        unique = list(dict.fromkeys(filters))
        if len(unique) > COLLAPSE_ABOVE:
            out.append(ConntrackFilter(version, proto=proto))
        else:
            out += unique
    return out


def for_removed_members(
    removed: Iterable[IPNetwork], ports: Iterable[Port]
) -> list[ConntrackFilter]:
    """Entries of members that left a remote group (when a local port references it).

    By the member's address alone (two filters per member): cheaper than one per local
    port, and entries with ports that do not reference the group are re-admitted.
    """
    if not list(ports):
        return []
    out: list[ConntrackFilter] = []
    for net in removed:
        if net.prefixlen != net.max_prefixlen:
            continue
        member = net.network_address
        out.append(ConntrackFilter(member.version, src=member))
        out.append(ConntrackFilter(member.version, dst=member))
    return out


def for_port(port: Port) -> list[ConntrackFilter]:
    """Every entry to or from the port's addresses (port removed or its groups shrank)."""
    out: list[ConntrackFilter] = []
    for address in host_addresses(port):
        out.append(ConntrackFilter(address.version, src=address))
        out.append(ConntrackFilter(address.version, dst=address))
    return out
