"""Anti-spoofing at the bridge (ebtables ``nat`` ``PREROUTING``): pure functions.

Frames from a VM are checked before the bridge learns their source MAC:

* ``na-PREROUTING``: 16 buckets by the tap's first hex digit (``na-b-<h>``), then
  ``-i tap+ -j DROP`` (a tap whose name has no hex digit there);
* a bucket: per port ``-i tapX -s MAC -j na-s-X`` for each of the port's MACs (port
  security on) or ``-i tapX -j ACCEPT`` (off), then ``DROP`` (a tap with no filter yet,
  or a frame from a foreign MAC, passes nothing);
* ``na-s-X``: ARP, IPv4 and IPv6 frames whose sender/source address (and, for a port
  with several MACs, Ethernet source) are one of the port's (MAC, prefix) pairs --
  fixed IPs with the port's MAC, allowed address pairs with theirs, the EUI-64
  link-local address of the port's MAC -- go to ``na-eb-ok``, and so do ARP probes
  from 0.0.0.0 (RFC 5227) whose ARP sender MAC is one of the port's; everything else
  goes to ``na-eb-tail`` (other ethertypes too, which it drops: VLAN-tagged frames would
  bypass br_netfilter);
* ``na-eb-ok``: drops DHCP/DHCPv6 server replies, router advertisements and redirects,
  accepts the rest;
* ``na-eb-tail``: accepts what a VM without an address sends (DHCP discovery from
  0.0.0.0, DAD neighbour solicitations and MLDv2 reports from ::),
  drops the rest.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from netagent.common import names
from netagent.drivers.iptables_firewall.compiler import HEX_DIGITS
from netagent.linux.ebtables import EbRule
from netagent.model.port import Port

OK_CHAIN = "na-eb-ok"
TAIL_CHAIN = "na-eb-tail"
V4_ANY = ipaddress.IPv4Network("0.0.0.0/32")
V4_BROADCAST = ipaddress.IPv4Network("255.255.255.255/32")
V6_ANY = ipaddress.IPv6Network("::/128")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def eb_bucket_chain(digit: str) -> str:
    """``na-b-<h>``."""
    return f"na-b-{digit}"


def link_local(mac: str) -> ipaddress.IPv6Network:
    """The EUI-64 link-local address (as a /128) of a MAC address."""
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    eui = [*octets[:3], 0xFF, 0xFE, *octets[3:]]
    value = (0xFE80 << 112) | int.from_bytes(bytes(eui), "big")
    return ipaddress.IPv6Network((value, 128))


def _host(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> IPNetwork:
    """``ip_network(address)`` without the round trip through text."""
    if isinstance(address, ipaddress.IPv4Address):
        return ipaddress.IPv4Network((int(address), 32))
    return ipaddress.IPv6Network((int(address), 128))


def address_pairs(port: Port) -> list[tuple[str, IPNetwork]]:
    """(MAC, prefix) pairs the port may send from, in a stable order."""
    pairs: list[tuple[str, IPNetwork]] = []
    for address in port.addresses:
        pairs.append((port.mac_address, _host(address)))
    for pair in port.allowed_address_pairs:
        net = pair.ip_address
        if not isinstance(net, ipaddress.IPv4Network | ipaddress.IPv6Network):
            net = ipaddress.ip_network(net, strict=False)
        pairs.append((pair.mac_address or port.mac_address, net))
    pairs.append((port.mac_address, link_local(port.mac_address)))
    return list(dict.fromkeys(pairs))


def macs(port: Port) -> list[str]:
    """The port's MAC and the MACs of its allowed address pairs."""
    found = [port.mac_address]
    found += [p.mac_address for p in port.allowed_address_pairs if p.mac_address]
    return list(dict.fromkeys(found))


def own_v6_pairs(
    port: Port, pairs: list[tuple[str, IPNetwork]] | None = None
) -> list[tuple[str, ipaddress.IPv6Network]]:
    """The port's IPv6 (MAC, prefix) pairs: what it may announce in neighbour discovery.

    :param pairs: ``address_pairs(port)`` when already computed
    """
    pairs = address_pairs(port) if pairs is None else pairs
    return [(mac, net) for mac, net in pairs if isinstance(net, ipaddress.IPv6Network)]


def port_rules(port: Port, pairs: list[tuple[str, IPNetwork]] | None = None) -> list[EbRule]:
    """The port's ``na-s-X`` chain (``pairs``: ``address_pairs(port)`` if computed).

    Only frames whose Ethernet source is one of the port's MACs get here (the bucket
    rules check it, :func:`bucket_entries`), so a port with a single MAC needs no ``-s``
    in its chain; with several, each (MAC, prefix) pair keeps its MAC. The chain ends in
    ``na-eb-tail``, which ends in DROP: nothing falls through.
    """
    out: list[EbRule] = []
    single = len(macs(port)) == 1
    for mac, net in address_pairs(port) if pairs is None else pairs:
        src = None if single else mac
        if isinstance(net, ipaddress.IPv4Network):
            out.append(EbRule(OK_CHAIN, "ARP", src_mac=src, arp_mac_src=mac, arp_ip_src=net))
            out.append(EbRule(OK_CHAIN, "IPv4", src_mac=src, ip_src=net))
        else:
            out.append(EbRule(OK_CHAIN, "IPv6", src_mac=src, ip_src=net))
    # ARP probes are per port, not in the shared tail: the ARP sender MAC of a probe
    # must be the port's, or a probe would poison neighbours' caches with another MAC
    for mac in macs(port):
        src = None if single else mac
        out.append(EbRule(OK_CHAIN, "ARP", src_mac=src, arp_mac_src=mac, arp_ip_src=V4_ANY))
    out.append(EbRule(TAIL_CHAIN))
    return out


def port_chain(port: Port) -> str:
    """``na-s-`` + 11 characters of the port id."""
    return names.port_spoof_chain(port.id)


def ok_rules() -> list[EbRule]:
    """``na-eb-ok``: no DHCP servers, router advertisements or redirects from VMs."""
    return [
        EbRule("DROP", "IPv4", ip_proto=17, sport=67, dport=68),
        EbRule("DROP", "IPv4", ip_proto=1, icmp_type=5),
        EbRule("DROP", "IPv6", ip_proto=17, sport=547, dport=546),
        EbRule("DROP", "IPv6", ip_proto=58, icmp_type=134),
        EbRule("DROP", "IPv6", ip_proto=58, icmp_type=137),
        EbRule("ACCEPT"),
    ]


def tail_rules() -> list[EbRule]:
    """``na-eb-tail``: what a VM may send before it has an address."""
    return [
        EbRule(
            "ACCEPT", "IPv4", ip_src=V4_ANY, ip_dst=V4_BROADCAST, ip_proto=17, sport=68, dport=67
        ),
        EbRule("ACCEPT", "IPv6", ip_src=V6_ANY, ip_proto=58, icmp_type=135),
        EbRule("ACCEPT", "IPv6", ip_src=V6_ANY, ip_proto=58, icmp_type=143),
        EbRule("DROP"),
    ]


def hook_rules() -> list[EbRule]:
    """``na-PREROUTING``: to the tap's bucket; taps without a hex digit drop."""
    out = [EbRule(eb_bucket_chain(d), in_iface=f"tap{d}+") for d in HEX_DIGITS]
    out.append(EbRule("DROP", in_iface="tap+"))
    return out


#: Last rule of every bucket: a tap without a filter passes nothing.
BUCKET_END = EbRule("DROP")


def bucket_entries(device: str, chain: str | None, port_macs: Sequence[str]) -> list[EbRule]:
    """A port's rules in its bucket: frames from one of its MACs go to its spoof chain;
    with port security off (``chain`` None) everything from the tap is accepted."""
    if chain is None:
        return [EbRule("ACCEPT", in_iface=device)]
    return [EbRule(chain, in_iface=device, src_mac=mac) for mac in port_macs]


def bucket_rules(entries: Sequence[tuple[str, str | None, Sequence[str]]]) -> list[EbRule]:
    """A bucket: ``(device, spoof chain, MACs)`` per port (chain None: port security
    off), then drop (also frames of a known tap from a foreign MAC)."""
    out: list[EbRule] = []
    for device, chain, port_macs in sorted(entries, key=lambda e: (e[0], e[1] or "")):
        out += bucket_entries(device, chain, port_macs)
    out.append(BUCKET_END)
    return out
