"""Neighbour, proxy and FDB entries, and namespace sysctls."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest

from netagent.linux import ip_lib, neighbour, sysctl
from netagent.privileged.errors import DeviceNotFound, EntryNotFound, InvalidArgument
from tests.functional.linux.helpers import ip_out, wait_for

addr = ipaddress.ip_address


def test_static_and_proxy_neighbours(netns: str) -> None:
    ip_lib.create_veth("n0", "n0p", namespace=netns, up=True, peer_up=True)
    neighbour.add_neighbour("n0", addr("198.51.100.7"), "02:00:00:00:00:07", namespace=netns)
    neighbour.add_neighbour("n0", addr("fd00::7"), "02:00:00:00:00:08", namespace=netns)
    text = ip_out(netns, "neigh", "show", "dev", "n0")
    assert "198.51.100.7 lladdr 02:00:00:00:00:07 PERMANENT" in text
    assert "fd00::7 lladdr 02:00:00:00:00:08 PERMANENT" in text
    entries = {
        (str(n.address), n.mac, n.device) for n in neighbour.list_neighbours(namespace=netns)
    }
    assert ("198.51.100.7", "02:00:00:00:00:07", "n0") in entries
    neighbour.add_proxy_neighbour("n0", addr("198.51.100.8"), namespace=netns)
    assert "198.51.100.8 dev n0" in ip_out(netns, "neigh", "show", "proxy")
    proxies = neighbour.list_neighbours(namespace=netns, proxy=True)
    assert [(str(n.address), n.device) for n in proxies] == [("198.51.100.8", "n0")]
    neighbour.delete_neighbour("n0", addr("198.51.100.8"), namespace=netns, proxy=True)
    neighbour.delete_neighbour("n0", addr("198.51.100.7"), namespace=netns)
    with pytest.raises(EntryNotFound):
        neighbour.delete_neighbour("n0", addr("198.51.100.7"), namespace=netns)
    with pytest.raises(DeviceNotFound):
        neighbour.add_neighbour("nx", addr("198.51.100.9"), "02:00:00:00:00:09", namespace=netns)


def test_vxlan_flood_list_and_static_fdb(netns: str) -> None:
    ip_lib.create_vxlan("vx-7", 7, namespace=netns, local=addr("198.18.0.1"))
    for remote in ("198.18.0.2", "198.18.0.3"):
        neighbour.add_flood_entry("vx-7", addr(remote), namespace=netns)
    neighbour.add_fdb_entry("vx-7", "fa:16:3e:00:00:07", addr("198.18.0.2"), namespace=netns)
    fdb = subprocess_fdb(netns)
    assert "00:00:00:00:00:00 dev vx-7 dst 198.18.0.2 self permanent" in fdb
    assert "00:00:00:00:00:00 dev vx-7 dst 198.18.0.3 self permanent" in fdb
    assert "fa:16:3e:00:00:07 dev vx-7 dst 198.18.0.2 self permanent" in fdb
    entries = {
        (e.mac, str(e.destination)) for e in neighbour.list_fdb(namespace=netns, device="vx-7")
    }
    assert ("00:00:00:00:00:00", "198.18.0.3") in entries
    neighbour.delete_flood_entry("vx-7", addr("198.18.0.3"), namespace=netns)
    assert "dst 198.18.0.3" not in subprocess_fdb(netns)
    neighbour.delete_fdb_entry("vx-7", "fa:16:3e:00:00:07", addr("198.18.0.2"), namespace=netns)
    with pytest.raises(EntryNotFound):
        neighbour.delete_fdb_entry(
            "vx-7", "fa:16:3e:00:00:07", addr("198.18.0.2"), namespace=netns
        )


def test_fdb_entries_in_one_batch(netns: str) -> None:
    ip_lib.create_vxlan("vx-8", 8, namespace=netns, local=addr("198.18.0.1"))
    zero = neighbour.FLOOD_MAC
    entries = [
        (zero, addr("198.18.0.2")),
        (zero, addr("198.18.0.3")),
        ("fa:16:3e:00:00:08", addr("198.18.0.2")),
        ("fa:16:3e:00:00:08", addr("198.18.0.3")),  # a unicast MAC's remote is replaced
    ]
    neighbour.add_fdb_entries("vx-8", entries, namespace=netns)
    found = {(e.mac, str(e.destination)) for e in neighbour.list_fdb(namespace=netns)}
    assert {(zero, "198.18.0.2"), (zero, "198.18.0.3")} <= found
    assert ("fa:16:3e:00:00:08", "198.18.0.3") in found
    assert ("fa:16:3e:00:00:08", "198.18.0.2") not in found
    neighbour.add_fdb_entries("vx-8", entries[:1], namespace=netns)  # already there: no-op
    assert subprocess_fdb(netns).count("00:00:00:00:00:00 dev vx-8 dst 198.18.0.2 ") == 1
    # (the kernel ignores the delete of an unknown remote of a known flooding MAC)
    gone = [(zero, addr("198.18.0.2")), ("fa:16:3e:00:00:99", addr("198.18.0.9"))]
    with pytest.raises(EntryNotFound):
        neighbour.delete_fdb_entries("vx-8", gone, namespace=netns)
    # the existing entry was deleted even though the other one failed
    assert "dst 198.18.0.2 " not in subprocess_fdb(netns).replace("\n", " ")
    neighbour.delete_fdb_entries("vx-8", gone, namespace=netns, missing_ok=True)
    with pytest.raises(DeviceNotFound):
        neighbour.add_fdb_entries("nosuchdev", entries[:1], namespace=netns)


def test_bridge_port_static_fdb(netns: str) -> None:
    ip_lib.create_bridge("brf", namespace=netns, up=True)
    ip_lib.create_veth("f0", "f0p", namespace=netns, master="brf", up=True)
    neighbour.add_fdb_entry("f0", "fa:16:3e:00:00:09", namespace=netns, master=True)
    assert "fa:16:3e:00:00:09 dev f0 master brf static" in subprocess_fdb(netns)
    entry = [e for e in neighbour.list_fdb(namespace=netns) if e.mac == "fa:16:3e:00:00:09"]
    assert entry[0].device == "f0" and entry[0].master == "brf"


def subprocess_fdb(namespace: str) -> str:
    return subprocess.run(
        ["bridge", "-n", namespace, "fdb", "show"], capture_output=True, text=True, check=True
    ).stdout


def test_sysctls_in_namespace(netns: str) -> None:
    root_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    ip_lib.create_veth("s0", "s0p", namespace=netns)
    sysctl.set_ip_forwarding(netns, True)
    sysctl.set_ip_forwarding(netns, True, family=6)
    sysctl.set_proxy_arp(netns, "s0", True)
    sysctl.set_accept_ra(netns, "s0", 0)
    sysctl.set_arp_ignore(netns, "s0", 1)
    sysctl.set_arp_announce(netns, "s0", 2)
    assert sysctl.get(netns, "net.ipv4.ip_forward") == 1
    assert sysctl.get(netns, "net.ipv6.conf.all.forwarding") == 1
    assert sysctl.get(netns, "net.ipv4.conf.s0.proxy_arp") == 1
    assert sysctl.get(netns, "net.ipv6.conf.s0.accept_ra") == 0
    assert sysctl.get(netns, "net.ipv4.conf.s0.arp_ignore") == 1
    assert sysctl.get(netns, "net.ipv4.conf.s0.arp_announce") == 2
    try:
        sysctl.set_bridge_nf_call(netns, iptables=True, ip6tables=True)
    except FileNotFoundError:
        pytest.skip("br_netfilter not loaded")
    assert sysctl.get(netns, "net.bridge.bridge-nf-call-iptables") == 1
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == root_forward
    with pytest.raises(InvalidArgument):
        sysctl.get(netns, "kernel.core_pattern")
    with pytest.raises(InvalidArgument):
        sysctl.set_proxy_arp(netns, "../../x", True)


def test_disable_ipv6(netns: str) -> None:
    ip_lib.create_veth("s1", "s1p", namespace=netns)
    sysctl.set_disable_ipv6(netns, "s1")
    ip_lib.set_up("s1", namespace=netns)
    ip_lib.set_up("s1p", namespace=netns)
    assert sysctl.get(netns, "net.ipv6.conf.s1.disable_ipv6") == 1
    assert not ip_lib.list_addresses(namespace=netns, device="s1", family=6)
    assert wait_for(lambda: bool(ip_lib.list_addresses(namespace=netns, device="s1p", family=6)))
    sysctl.set_disable_ipv6(netns, "s1", False)
    assert sysctl.get(netns, "net.ipv6.conf.s1.disable_ipv6") == 0
    with pytest.raises(InvalidArgument):
        sysctl.set_disable_ipv6(netns, "s1.100")
