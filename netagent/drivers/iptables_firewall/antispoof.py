"""Anti-spoofing at the bridge (ebtables ``nat`` ``PREROUTING``): pure functions.

Frames from a VM are checked before the bridge learns their source MAC:

* ``na-PREROUTING``: 16 buckets by the tap's first hex digit (``na-b-<h>``), then
  ``-i tap+ -j DROP`` (a tap whose name has no hex digit there);
* a bucket: per port ``-i tapX -j na-s-X`` (port security on) or ``-j ACCEPT`` (off),
  then ``DROP`` (a tap with no filter yet passes nothing);
* ``na-s-X``: ARP, IPv4 and IPv6 frames whose Ethernet source and sender/source address
  are one of the port's (MAC, prefix) pairs -- fixed IPs with the port's MAC, allowed
  address pairs with theirs, the EUI-64 link-local address of the port's MAC -- go to
  ``na-eb-ok``; frames from one of the port's MACs go to ``na-eb-tail``; the rest drops
  (other ethertypes too: VLAN-tagged frames would bypass br_netfilter);
* ``na-eb-ok``: drops DHCP/DHCPv6 server replies, router advertisements and redirects,
  accepts the rest;
* ``na-eb-tail``: accepts what a VM without an address sends (ARP probes from 0.0.0.0,
  DHCP discovery from 0.0.0.0, DAD neighbour solicitations and MLDv2 reports from ::),
  drops the rest.
"""

from __future__ import annotations

import ipaddress

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


def address_pairs(port: Port) -> list[tuple[str, IPNetwork]]:
    """(MAC, prefix) pairs the port may send from, in a stable order."""
    pairs: list[tuple[str, IPNetwork]] = []
    for address in port.addresses:
        pairs.append((port.mac_address, ipaddress.ip_network(address)))
    for pair in port.allowed_address_pairs:
        net = ipaddress.ip_network(pair.ip_address, strict=False)
        pairs.append((pair.mac_address or port.mac_address, net))
    pairs.append((port.mac_address, link_local(port.mac_address)))
    return list(dict.fromkeys(pairs))


def macs(port: Port) -> list[str]:
    """The port's MAC and the MACs of its allowed address pairs."""
    found = [port.mac_address]
    found += [p.mac_address for p in port.allowed_address_pairs if p.mac_address]
    return list(dict.fromkeys(found))


def own_v6_networks(port: Port) -> list[ipaddress.IPv6Network]:
    """IPv6 prefixes a port may announce in neighbour advertisements."""
    return [net for _, net in address_pairs(port) if isinstance(net, ipaddress.IPv6Network)]


def port_rules(port: Port) -> list[EbRule]:
    """The port's ``na-s-X`` chain."""
    out: list[EbRule] = []
    for mac, net in address_pairs(port):
        if isinstance(net, ipaddress.IPv4Network):
            out.append(EbRule(OK_CHAIN, "ARP", src_mac=mac, arp_mac_src=mac, arp_ip_src=net))
            out.append(EbRule(OK_CHAIN, "IPv4", src_mac=mac, ip_src=net))
        else:
            out.append(EbRule(OK_CHAIN, "IPv6", src_mac=mac, ip_src=net))
    out += [EbRule(TAIL_CHAIN, src_mac=mac) for mac in macs(port)]
    out.append(EbRule("DROP"))
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
        EbRule("ACCEPT", "ARP", arp_ip_src=V4_ANY),
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


def bucket_rules(entries: list[tuple[str, str | None]]) -> list[EbRule]:
    """A bucket: ``(device, spoof chain)`` per port (None: port security off), then drop."""
    out = [EbRule(chain or "ACCEPT", in_iface=device) for device, chain in sorted(entries)]
    out.append(EbRule("DROP"))
    return out
