"""Gratuitous ARP and unsolicited NA really update a neighbour's cache."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest

from netagent.linux import arp, ip_lib
from netagent.privileged.errors import DeviceNotFound, InvalidArgument
from tests.functional.linux.helpers import apply_all, ip_do, ip_out, wait_for

FAKE_MAC = "02:00:00:00:00:99"


def _pair(make_netns: Callable[[str], str]) -> tuple[str, str, str]:
    sender, listener = make_netns("snd"), make_netns("lst")
    apply_all(
        sender,
        ip_lib.CreateVeth(name="ga", peer="gb", peer_namespace=listener, up=True),
        ip_lib.AddAddress(device="ga", cidr="198.51.100.1/24"),
        ip_lib.AddAddress(device="ga", cidr="fd00:3::1/64", nodad=True),
    )
    apply_all(
        listener,
        ip_lib.SetLink(name="gb", up=True),
        ip_lib.AddAddress(device="gb", cidr="198.51.100.2/24"),
        ip_lib.AddAddress(device="gb", cidr="fd00:3::2/64", nodad=True),
    )
    mac = ip_lib.get_device("ga", namespace=sender).mac
    assert mac
    return sender, listener, mac


@pytest.mark.parametrize("reply", [False, True])
def test_gratuitous_arp_updates_neighbour(make_netns: Callable[[str], str], reply: bool) -> None:
    sender, listener, mac = _pair(make_netns)
    # a stale entry with a wrong MAC, as left behind by an address that moved
    ip_do(
        listener,
        "neigh",
        "replace",
        "198.51.100.1",
        "lladdr",
        FAKE_MAC,
        "dev",
        "gb",
        "nud",
        "stale",
    )
    assert FAKE_MAC in ip_out(listener, "neigh", "show", "198.51.100.1")
    arp.send_gratuitous_arp(
        "ga",
        ipaddress.IPv4Address("198.51.100.1"),
        namespace=sender,
        count=2,
        interval=0.05,
        reply=reply,
    )
    assert wait_for(lambda: mac in ip_out(listener, "neigh", "show", "198.51.100.1"))


def test_unsolicited_na_updates_neighbour(make_netns: Callable[[str], str]) -> None:
    sender, listener, mac = _pair(make_netns)
    ip_do(
        listener, "neigh", "replace", "fd00:3::1", "lladdr", FAKE_MAC, "dev", "gb", "nud", "stale"
    )
    arp.send_unsolicited_na(
        "ga", ipaddress.IPv6Address("fd00:3::1"), namespace=sender, count=2, interval=0.05
    )
    assert wait_for(lambda: mac in ip_out(listener, "neigh", "show", "fd00:3::1"))


def test_announce_errors(netns: str) -> None:
    with pytest.raises(DeviceNotFound):
        arp.send_gratuitous_arp("nodev", ipaddress.IPv4Address("192.0.2.1"), namespace=netns)
    with pytest.raises(InvalidArgument):
        arp.send_gratuitous_arp("lo", ipaddress.IPv4Address("192.0.2.1"), namespace=netns, count=0)
    with pytest.raises(InvalidArgument):
        arp.send_unsolicited_na("lo", ipaddress.IPv4Address("192.0.2.1"), namespace=netns)  # type: ignore[arg-type]
