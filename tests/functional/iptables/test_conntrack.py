"""conntrack deletion and zones on the real kernel, inside test namespaces only."""

from __future__ import annotations

import ipaddress
import subprocess

from netagent.linux.conntrack import ConntrackFilter, ZoneManager, delete_entries, tcp_state_name
from netagent.linux.iptables import ACCEPT, Conntrack, IptablesManager, Jump, Rule
from netagent.privileged import ctnetlink
from tests.common.traffic import ask, whoami_server
from tests.functional.iptables.conftest import A4, A6, B4, B6, Pair, nsrun, ping


def list_entries(namespace: str) -> list[str]:
    """``conntrack -L`` (IPv4) in ``namespace``: read with the tool, not the code under test."""
    out = subprocess.run(
        ["ip", "netns", "exec", namespace, "conntrack", "-L", "-f", "ipv4"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


def send_udp(pair: Pair, ports: range) -> None:
    code = (
        "import socket\n"
        "s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"[s.sendto(b'x', ({B4!r}, p)) for p in {list(ports)!r}]\n"
    )
    nsrun(pair.a, "python3", "-c", code)


def track(pair: Pair, backend: str) -> IptablesManager:
    ipt = IptablesManager(pair.b, backend=backend)
    ipt.set_chain(4, "filter", "na-track", [Rule((Conntrack(frozenset({"NEW"})),), ACCEPT)])
    ipt.set_jumps(4, "filter", "INPUT", [Rule((), Jump("na-track"))])
    assert ipt.apply().ok
    return ipt


def test_delete_by_address_and_protocol(pair: Pair, backend: str) -> None:
    track(pair, backend)
    send_udp(pair, range(7000, 7005))
    assert ping(pair.a, B4)
    entries = list_entries(pair.b)
    assert sum("udp" in e and f"src={A4}" in e for e in entries) == 5
    assert any(e.startswith("icmp") for e in entries)
    a4 = ipaddress.ip_address(A4)
    filters = [ConntrackFilter(4, proto=17, src=a4) for _ in range(3)]
    filters.append(ConntrackFilter(4, proto=17, src=a4, dst=ipaddress.ip_address(B4)))
    assert delete_entries(pair.b, filters) == 5
    left = list_entries(pair.b)
    assert not any(e.startswith("udp") for e in left)
    assert any(e.startswith("icmp") for e in left)  # other protocol untouched
    assert delete_entries(pair.b, [ConntrackFilter(4, src=a4)]) >= 1
    assert list_entries(pair.b) == []


def test_zone_rules_and_delete_by_zone(pair: Pair, backend: str) -> None:
    ipt = track(pair, backend)
    dev = nsrun(pair.b, "ip", "-o", "link", "show", "type", "veth").split(":")[1].strip()
    dev = dev.split("@")[0]
    zones = ZoneManager(ipt)
    zone = zones.set_device(dev, "net-1")
    assert zone == 4097 and zones.zone_of("net-2") == 4098
    assert ipt.apply().ok
    send_udp(pair, range(7100, 7103))
    entries = list_entries(pair.b)
    assert sum(f"zone={zone}" in e for e in entries) == 3, entries
    assert delete_entries(pair.b, [ConntrackFilter(4, zone=zone)]) == 3
    assert list_entries(pair.b) == []
    zones.remove_device(dev)
    assert ipt.apply().ok
    raw = subprocess.run(
        ["ip", "netns", "exec", pair.b, f"iptables-{backend}-save", "-t", "raw"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "na-" not in raw


def send_udp6(pair: Pair, ports: range) -> None:
    code = (
        "import socket\n"
        "s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
        f"[s.sendto(b'x', ({B6!r}, p)) for p in {list(ports)!r}]\n"
    )
    nsrun(pair.a, "python3", "-c", code)


def test_netlink_deletes_only_matching_entries_of_real_flows(pair: Pair, backend: str) -> None:
    """One ctnetlink dump, matched in Python: the flows a filter names are deleted (both
    families, exact protocol and address), every other entry stays."""
    ipt = track(pair, backend)
    ipt.set_chain(6, "filter", "na-track", [Rule((Conntrack(frozenset({"NEW"})),), ACCEPT)])
    ipt.set_jumps(6, "filter", "INPUT", [Rule((), Jump("na-track"))])
    assert ipt.apply().ok
    send_udp(pair, range(7200, 7203))
    send_udp6(pair, range(7300, 7302))
    assert ping(pair.a, B4)
    before = ctnetlink.dump(pair.b)
    udp4 = [e for e in before if e.family == 4 and e.proto == 17]
    udp6 = [e for e in before if e.family == 6 and e.proto == 17]
    icmp4 = [e for e in before if e.family == 4 and e.proto == 1]
    assert len(udp4) == 3 and len(udp6) == 2 and icmp4, before
    a4, a6 = ipaddress.ip_address(A4), ipaddress.ip_address(A6)
    assert all(e.src == a4 for e in udp4) and all(e.src == a6 for e in udp6)
    # the ports as conntrack -L shows them (explain matches live flows by them)
    assert sorted(e.dport for e in udp4) == [7200, 7201, 7202]
    assert sorted(e.dport for e in udp6) == [7300, 7301]
    shown = {
        int(line.split("dport=")[1].split()[0])
        for line in list_entries(pair.b)
        if line.startswith("udp")
    }
    assert shown == {7200, 7201, 7202}
    sports = {
        int(line.split("sport=")[1].split()[0])
        for line in list_entries(pair.b)
        if line.startswith("udp")
    }
    assert {e.sport for e in udp4} == sports
    assert all(e.sport is None and e.dport is None for e in icmp4)
    # nothing matches: nothing is deleted, the table is unchanged
    other = ipaddress.ip_address("198.51.100.99")
    assert delete_entries(pair.b, [ConntrackFilter(4, src=other)]) == 0
    assert len(ctnetlink.dump(pair.b)) == len(before)
    # IPv6 UDP from A only: the IPv4 UDP and ICMP entries stay
    assert delete_entries(pair.b, [ConntrackFilter(6, proto=17, src=a6)]) == 2
    after = ctnetlink.dump(pair.b)
    assert not [e for e in after if e.family == 6 and e.proto == 17]
    assert len([e for e in after if e.family == 4 and e.proto == 17]) == 3
    assert [e for e in after if e.family == 4 and e.proto == 1]
    # by destination, IPv4 UDP: the ICMP entry still stays
    assert (
        delete_entries(pair.b, [ConntrackFilter(4, proto=17, dst=ipaddress.ip_address(B4))]) == 3
    )
    left = list_entries(pair.b)
    assert not any(e.startswith("udp") for e in left)
    assert any(e.startswith("icmp") for e in left)
    # the deleted flows are tracked again from their next packet
    send_udp(pair, range(7200, 7201))
    assert sum(e.proto == 17 for e in ctnetlink.dump(pair.b)) == 1


def test_netlink_count_skips_empty_table(pair: Pair) -> None:
    with ctnetlink.CtnetlinkSocket(pair.b) as sock:
        assert sock.count() == 0
        assert sock.dump() == []
    assert delete_entries(pair.b, [ConntrackFilter(4)]) == 0


def test_netlink_dump_reads_tcp_ports_and_state(pair: Pair, backend: str) -> None:
    """A real TCP connection: its ports and state as ``conntrack -L`` shows them."""
    track(pair, backend)
    with whoami_server(pair.b, "b"):
        assert ask(pair.a, B4).startswith("b ")
    [entry] = [e for e in ctnetlink.dump(pair.b) if e.proto == 6]
    [line] = [x for x in list_entries(pair.b) if x.startswith("tcp")]
    fields = line.split()
    assert fields[3] == tcp_state_name(entry.tcp_state or 0), line  # e.g. TIME_WAIT
    assert f"sport={entry.sport}" in fields and f"dport={entry.dport}" in fields
    assert entry.dport == 5000
