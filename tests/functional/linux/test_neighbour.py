"""Neighbour and FDB entries (proxy entries are only read), and namespace sysctls."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest

from netagent.linux import ip_lib, neighbour, sysctl
from netagent.privileged.errors import DeviceNotFound, EntryNotFound, InvalidArgument
from tests.functional.linux.helpers import apply_all, ip_do, ip_out, wait_for

addr = ipaddress.ip_address
apply = ip_lib.apply
AddNeighbour, DeleteNeighbour = ip_lib.AddNeighbour, ip_lib.DeleteNeighbour
AddFdb, DeleteFdb = ip_lib.AddFdb, ip_lib.DeleteFdb
FLOOD = neighbour.FLOOD_MAC
MAC7, MAC8 = "02:00:00:00:00:07", "02:00:00:00:00:08"


def test_static_neighbours(netns: str) -> None:
    apply_all(netns, ip_lib.CreateVeth(name="n0", peer="n0p", up=True, peer_up=True))
    apply(AddNeighbour(device="n0", address="198.51.100.7", mac=MAC7), namespace=netns)
    apply(AddNeighbour(device="n0", address="fd00::7", mac=MAC8), namespace=netns)
    text = ip_out(netns, "neigh", "show", "dev", "n0")
    assert f"198.51.100.7 lladdr {MAC7} PERMANENT" in text
    assert f"fd00::7 lladdr {MAC8} PERMANENT" in text
    entries = {
        (str(n.address), n.mac, n.device) for n in neighbour.list_neighbours(namespace=netns)
    }
    assert ("198.51.100.7", MAC7, "n0") in entries
    # an add replaces the entry's MAC
    apply(AddNeighbour(device="n0", address="198.51.100.7", mac=MAC8), namespace=netns)
    assert f"198.51.100.7 lladdr {MAC8} PERMANENT" in ip_out(netns, "neigh", "show", "dev", "n0")
    apply(DeleteNeighbour(device="n0", address="198.51.100.7"), namespace=netns)
    with pytest.raises(EntryNotFound):
        apply(DeleteNeighbour(device="n0", address="198.51.100.7"), namespace=netns)
    with pytest.raises(DeviceNotFound):
        op = AddNeighbour(device="nx", address="198.51.100.9", mac="02:00:00:00:00:09")
        apply(op, namespace=netns)


def test_neighbours_in_one_batch_and_proxy_entries_left_out(netns: str) -> None:
    apply_all(netns, ip_lib.CreateVeth(name="n1", peer="n1p", up=True, peer_up=True))
    entries = [(addr("198.51.100.10"), MAC7), (addr("fd00::10"), MAC8)]
    apply_all(netns, *(AddNeighbour(device="n1", address=str(ip), mac=mac) for ip, mac in entries))
    found = {(n.address, n.mac) for n in neighbour.list_neighbours(namespace=netns, device="n1")}
    assert set(entries) <= found
    batch = ip_lib.Batch(netns)
    for ip in ("198.51.100.10", "198.51.100.11"):
        batch.add(DeleteNeighbour(device="n1", address=ip), owner=ip)
    failed = batch.send()
    assert [(f.owner, type(f.error)) for f in failed] == [("198.51.100.11", EntryNotFound)]
    # the existing entry was deleted even though the other one failed
    assert "198.51.100.10 " not in ip_out(netns, "neigh", "show", "dev", "n1")
    # proxy entries are not neighbours: left out
    ip_do(netns, "neigh", "add", "proxy", "198.51.100.8", "dev", "n1")
    plain = {str(n.address) for n in neighbour.list_neighbours(namespace=netns)}
    assert "198.51.100.8" not in plain


def test_vxlan_flood_list_and_static_fdb(netns: str) -> None:
    apply(ip_lib.CreateVxlan(name="vx-7", vni=7, local="198.18.0.1"), namespace=netns)
    for remote in ("198.18.0.2", "198.18.0.3"):
        flood = AddFdb(device="vx-7", mac=FLOOD, destination=remote, append=True)
        apply(flood, namespace=netns)
    unicast = AddFdb(device="vx-7", mac="fa:16:3e:00:00:07", destination="198.18.0.2")
    apply(unicast, namespace=netns)
    fdb = subprocess_fdb(netns)
    assert "00:00:00:00:00:00 dev vx-7 dst 198.18.0.2 self permanent" in fdb
    assert "00:00:00:00:00:00 dev vx-7 dst 198.18.0.3 self permanent" in fdb
    assert "fa:16:3e:00:00:07 dev vx-7 dst 198.18.0.2 self permanent" in fdb
    entries = {
        (e.mac, str(e.destination)) for e in neighbour.list_fdb(namespace=netns, device="vx-7")
    }
    assert ("00:00:00:00:00:00", "198.18.0.3") in entries
    apply(DeleteFdb(device="vx-7", mac=FLOOD, destination="198.18.0.3"), namespace=netns)
    assert "dst 198.18.0.3" not in subprocess_fdb(netns)
    assert "00:00:00:00:00:00 dev vx-7 dst 198.18.0.2 " in subprocess_fdb(netns)
    delete = DeleteFdb(device="vx-7", mac="fa:16:3e:00:00:07", destination="198.18.0.2")
    apply(delete, namespace=netns)
    with pytest.raises(EntryNotFound):
        apply(delete, namespace=netns)


def test_fdb_entries_in_one_batch(netns: str) -> None:
    apply(ip_lib.CreateVxlan(name="vx-8", vni=8, local="198.18.0.1"), namespace=netns)
    zero = neighbour.FLOOD_MAC
    entries = [
        AddFdb(device="vx-8", mac=zero, destination="198.18.0.2", append=True),
        AddFdb(device="vx-8", mac=zero, destination="198.18.0.3", append=True),
        AddFdb(device="vx-8", mac="fa:16:3e:00:00:08", destination="198.18.0.2"),
        # a unicast MAC has one remote: the add replaces it
        AddFdb(device="vx-8", mac="fa:16:3e:00:00:08", destination="198.18.0.3"),
    ]
    apply_all(netns, *entries)
    found = {(e.mac, str(e.destination)) for e in neighbour.list_fdb(namespace=netns)}
    assert {(zero, "198.18.0.2"), (zero, "198.18.0.3")} <= found
    assert ("fa:16:3e:00:00:08", "198.18.0.3") in found
    assert ("fa:16:3e:00:00:08", "198.18.0.2") not in found
    apply_all(netns, entries[0])  # appending a remote that is there already: no-op
    assert subprocess_fdb(netns).count("00:00:00:00:00:00 dev vx-8 dst 198.18.0.2 ") == 1
    # (the kernel ignores the delete of an unknown remote of a known flooding MAC)
    batch = ip_lib.Batch(netns)
    batch.add(DeleteFdb(device="vx-8", mac=zero, destination="198.18.0.2"), owner="flood")
    missing = DeleteFdb(device="vx-8", mac="fa:16:3e:00:00:99", destination="198.18.0.9")
    batch.add(missing, owner="missing")
    failed = batch.send()
    assert [(f.owner, type(f.error)) for f in failed] == [("missing", EntryNotFound)]
    # the existing entry was deleted even though the other one failed
    assert "dst 198.18.0.2 " not in subprocess_fdb(netns).replace("\n", " ")
    with pytest.raises(DeviceNotFound):
        apply(AddFdb(device="nosuchdev", mac=zero, destination="198.18.0.2"), namespace=netns)


def test_bridge_port_static_fdb(netns: str) -> None:
    apply_all(
        netns,
        ip_lib.CreateBridge(name="brf", up=True),
        ip_lib.CreateVeth(name="f0", peer="f0p", master="brf", up=True),
    )
    apply(AddFdb(device="f0", mac="fa:16:3e:00:00:09", master=True), namespace=netns)
    assert "fa:16:3e:00:00:09 dev f0 master brf static" in subprocess_fdb(netns)
    entry = [e for e in neighbour.list_fdb(namespace=netns) if e.mac == "fa:16:3e:00:00:09"]
    assert entry[0].device == "f0" and entry[0].master == "brf" and entry[0].static
    apply(AddFdb(device="f0", mac="fa:16:3e:00:00:0a", master=True), namespace=netns)
    assert "fa:16:3e:00:00:0a dev f0 master brf static" in subprocess_fdb(netns)
    apply_all(
        netns,
        DeleteFdb(device="f0", mac="fa:16:3e:00:00:09", master=True),
        DeleteFdb(device="f0", mac="fa:16:3e:00:00:0a", master=True),
    )
    assert "fa:16:3e:00:00:0" not in subprocess_fdb(netns)
    with pytest.raises(EntryNotFound):
        apply(DeleteFdb(device="f0", mac="fa:16:3e:00:00:09", master=True), namespace=netns)


def subprocess_fdb(namespace: str) -> str:
    return subprocess.run(
        ["bridge", "-n", namespace, "fdb", "show"], capture_output=True, text=True, check=True
    ).stdout


def test_sysctls_in_namespace(netns: str) -> None:
    root_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    apply(ip_lib.CreateVeth(name="s0", peer="s0p"), namespace=netns)
    sysctl.set_ip_forwarding(netns, True)
    sysctl.set_ip_forwarding(netns, True, family=6)
    sysctl.set_proxy_arp(netns, "s0", True)
    sysctl.set_accept_ra(netns, "s0", 0)
    assert sysctl.get(netns, "net.ipv4.ip_forward") == 1
    assert sysctl.get(netns, "net.ipv6.conf.all.forwarding") == 1
    assert sysctl.get(netns, "net.ipv4.conf.s0.proxy_arp") == 1
    assert sysctl.get(netns, "net.ipv6.conf.s0.accept_ra") == 0
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
    apply(ip_lib.CreateVeth(name="s1", peer="s1p"), namespace=netns)
    sysctl.set_disable_ipv6(netns, "s1")
    apply_all(netns, ip_lib.SetLink(name="s1", up=True), ip_lib.SetLink(name="s1p", up=True))
    assert sysctl.get(netns, "net.ipv6.conf.s1.disable_ipv6") == 1
    assert not ip_lib.list_addresses(namespace=netns, device="s1", family=6)
    assert wait_for(lambda: bool(ip_lib.list_addresses(namespace=netns, device="s1p", family=6)))
    sysctl.set_disable_ipv6(netns, "s1", False)
    assert sysctl.get(netns, "net.ipv6.conf.s1.disable_ipv6") == 0
    with pytest.raises(InvalidArgument):
        sysctl.set_disable_ipv6(netns, "s1.100")
