"""Golden text of the neighbour discovery checks (``na-nd``, ``na-d-<h>``) and their u32
terms, checked against the bytes of real messages."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from netagent.drivers.iptables_firewall import antispoof, nd
from netagent.drivers.iptables_firewall import compiler as comp
from netagent.model import AllowedAddressPair, FixedIP, Port
from netagent.privileged import iptables as priv_ipt
from tests.common import frames
from tests.unit.drivers.test_iptables_firewall import render, strip

TAP = "tap3f1c2a8e5d0"
MAC = "fa:16:3e:00:00:01"
PAIR_MAC = "fa:16:3e:aa:bb:cc"
IP6 = "fd00:5::b"
PAIR6 = "fd00:5::c0/124"
OTHER_MAC = "fa:16:3e:00:00:02"


def _port(pairs: tuple[AllowedAddressPair, ...] = ()) -> Port:
    return Port(
        id="3f1c2a8e-5d0b-4c57-9a57-0d5f8b5d2e11",
        network_id="9b8e0000-0000-4000-8000-000000000001",
        mac_address=MAC,
        fixed_ips=(
            FixedIP(None, ipaddress.ip_address("198.51.100.11")),
            FixedIP(None, ipaddress.ip_address(IP6)),
        ),
        allowed_address_pairs=pairs,
    )


def _chain(port: Port) -> list[str]:
    rules = nd.bucket_rules([(TAP, antispoof.own_v6_pairs(port), antispoof.macs(port))])
    return strip(render(rules, 6, "na-d-3"))


U32_NS = "-m u32 --u32 4&0xffffff00=0x203a00&&40&0xffff0000=0x87000000"
U32_RS = "-m u32 --u32 4&0xffffff00=0x103a00&&40&0xffff0000=0x85000000"
U32_NA0 = "-m u32 --u32 4&0xffffff00=0x183a00&&40&0xffff0000=0x88000000"
U32_NA = "-m u32 --u32 4&0xffffff00=0x203a00&&40&0xffff0000=0x88000000"
TARGET_IP6 = "48=0xfd000005&&52=0x0&&56=0x0&&60=0xb"
TARGET_LL = "48=0xfe800000&&52=0x0&&56=0xf8163eff&&60=0xfe000001"


def test_one_mac_port_golden() -> None:
    """One MAC: no ``-m mac`` (ebtables pins the Ethernet source); NA per own prefix,
    without an option or with the target option holding the port MAC."""
    opt_ns = "64=0x101fa16&&68=0x3e000001"
    opt_rs = "48=0x101fa16&&52=0x3e000001"
    opt_na = "64=0x201fa16&&68=0x3e000001"
    dev = f"-A na-d-3 -m physdev --physdev-in {TAP}"
    assert _chain(_port()) == [
        f"{dev} {U32_NS}&&{opt_ns} -j RETURN",
        f"{dev} {U32_RS}&&{opt_rs} -j RETURN",
        f"{dev} {U32_NA0}&&{TARGET_IP6} -j RETURN",
        f"{dev} {U32_NA0}&&{TARGET_LL} -j RETURN",
        f"{dev} {U32_NA}&&{TARGET_IP6}&&{opt_na} -j RETURN",
        f"{dev} {U32_NA}&&{TARGET_LL}&&{opt_na} -j RETURN",
        "-A na-d-3 -j DROP",
    ]


def test_pair_mac_bound_to_its_prefix() -> None:
    """Several MACs: NS/RS options must be the Ethernet source (``-m mac``); an NA's
    option must be the MAC of the pair whose prefix holds the target."""
    pair = AllowedAddressPair(ipaddress.ip_network(PAIR6), PAIR_MAC)
    lines = _chain(_port((pair,)))
    assert len(lines) == 2 * 2 + 3 + 3 + 1
    assert lines[2] == (
        f"-A na-d-3 -m physdev --physdev-in {TAP} -m mac --mac-source FA:16:3E:AA:BB:CC "
        f"{U32_NS}&&64=0x101fa16&&68=0x3eaabbcc -j RETURN"
    )
    pair_na = [line for line in lines if "&&60&0xfffffff0=0xc0" in line]
    assert [line.split("&&")[-2:] for line in pair_na if "&&64=" in line] == [
        ["64=0x201fa16", "68=0x3eaabbcc -j RETURN"]
    ]


def test_unsecured_port_returns() -> None:
    rules = nd.bucket_rules([(TAP, None, [MAC])])
    assert strip(render(rules, 6, "na-d-3")) == [
        f"-A na-d-3 -m physdev --physdev-in {TAP} -j RETURN",
        "-A na-d-3 -j DROP",
    ]


def test_dispatch_chain_golden() -> None:
    lines = strip(render(nd.dispatch_chain_rules(), 6, "na-nd"))
    assert lines[:3] == [
        "-A na-nd -m u32 --u32 4&0xffffff00=0x183a00&&40&0xffff0000=0x87000000 -j RETURN",
        "-A na-nd -m u32 --u32 4&0xffffff00=0x203a00&&40&0xffff0000=0x87000000"
        "&&64&0xffff0000=0xe010000 -j RETURN",
        "-A na-nd -m u32 --u32 4&0xffffff00=0x83a00&&40&0xffff0000=0x85000000 -j RETURN",
    ]
    assert lines[3] == "-A na-nd -m physdev --physdev-in tap0+ -g na-d-0"
    assert lines[-1] == "-A na-nd -j DROP" and len(lines) == 3 + 17


def test_hook_sends_rs_ns_na_to_nd() -> None:
    hook = strip(render(comp.hook_rules(6), 6))
    nd_lines = [line for line in hook if line.endswith("-j na-nd")]
    assert nd_lines[:3] == [
        "-A na-x -i brq+ -m physdev --physdev-in tap+ --physdev-is-bridged -p ipv6-icmp "
        f"-m icmp6 --icmpv6-type {t} -j na-nd"
        for t in (133, 135, 136)
    ]
    assert len(nd_lines) == 6  # brq+ and qbr+
    assert not [line for line in strip(render(comp.hook_rules(4), 4)) if "na-nd" in line]


def test_rules_pass_the_restore_grammar() -> None:
    pair = AllowedAddressPair(ipaddress.ip_network(PAIR6), PAIR_MAC)
    for rules, chain in (
        (nd.dispatch_chain_rules(), "na-nd"),
        (
            nd.bucket_rules([(TAP, antispoof.own_v6_pairs(_port((pair,))), [MAC, PAIR_MAC])]),
            "na-d-3",
        ),
    ):
        text = f"*filter\n:{chain} - [0:0]\n" + "\n".join(render(rules, 6, chain)) + "\nCOMMIT\n"
        priv_ipt.check_restore_input("filter", text)


# -- the terms against real message bytes ------------------------------------------------


def _holds(terms: tuple[tuple[int, int, int], ...], packet: bytes) -> bool:
    """What xt_u32 computes: every word at its offset, masked, equals the value."""
    for offset, mask, value in terms:
        if offset + 4 > len(packet):
            return False
        if struct.unpack("!I", packet[offset : offset + 4])[0] & mask != value:
            return False
    return True


def _terms(rule: object) -> tuple[tuple[int, int, int], ...]:
    return next(m.terms for m in rule.matches if hasattr(m, "terms"))  # type: ignore[attr-defined]


def _passes(packet: bytes, port: Port) -> bool:
    rules = [*nd.shared_rules()]
    rules += nd.port_rules(TAP, antispoof.own_v6_pairs(port), antispoof.macs(port))
    return any(_holds(_terms(rule), packet) for rule in rules)


LL = str(antispoof.link_local(MAC).network_address)


@pytest.mark.parametrize(
    ("message", "source", "expected"),
    [
        (frames.neighbour_solicit("fd00:5::1", frames.nd_option(1, MAC)), IP6, True),
        (frames.neighbour_solicit("fd00:5::1", frames.nd_option(1, OTHER_MAC)), IP6, False),
        (frames.neighbour_solicit("fd00:5::1"), IP6, True),
        (frames.neighbour_solicit(IP6, frames.ND_NONCE), "::", True),
        (frames.neighbour_solicit(IP6, frames.ND_NONCE + frames.nd_option(1, MAC)), "::", False),
        (frames.neighbour_solicit("fd00:5::1", frames.nd_option(2, MAC)), IP6, False),
        (frames.router_solicit(frames.nd_option(1, MAC)), LL, True),
        (frames.router_solicit(frames.nd_option(1, OTHER_MAC)), LL, False),
        (frames.router_solicit(), LL, True),
        (frames.neighbour_advert(IP6, frames.nd_option(2, MAC)), IP6, True),
        (frames.neighbour_advert(LL, frames.nd_option(2, MAC)), LL, True),
        (frames.neighbour_advert(IP6, frames.nd_option(2, OTHER_MAC)), IP6, False),
        (frames.neighbour_advert(IP6, frames.nd_option(1, MAC)), IP6, False),
        (frames.neighbour_advert(IP6, frames.nd_option(2, MAC) * 2), IP6, False),
        (frames.neighbour_advert(IP6), IP6, True),
        (frames.neighbour_advert("fd00:5::1"), IP6, False),
        (frames.neighbour_advert("fd00:5::1", frames.nd_option(2, MAC)), IP6, False),
    ],
)
def test_terms_on_message_bytes(message: bytes, source: str, expected: bool) -> None:
    packet = frames.icmp6(source, "ff02::1", message)
    assert _passes(packet, _port()) is expected
    assert not _passes(frames.icmp6(source, "ff02::1", message, hop_by_hop=True), _port())
