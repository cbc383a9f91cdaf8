"""Gratuitous ARP and unsolicited NA really update a neighbour's cache."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest

from netagent.linux import arp, ip_lib
from netagent.privileged.errors import DeviceNotFound, InvalidArgument
from tests.functional.linux.helpers import ip_do, ip_out, wait_for

FAKE_MAC = "02:00:00:00:00:99"


def _pair(make_netns: Callable[[str], str]) -> tuple[str, str, str]:
    sender, listener = make_netns("snd"), make_netns("lst")
    ip_lib.create_veth(
        "ga", "gb", namespace=sender, peer_namespace=listener, up=True, peer_up=True
    )
    ip_lib.add_address("ga", ipaddress.ip_interface("198.51.100.1/24"), namespace=sender)
    ip_lib.add_address("gb", ipaddress.ip_interface("198.51.100.2/24"), namespace=listener)
    ip_lib.add_address("ga", ipaddress.ip_interface("fd00:3::1/64"), namespace=sender, nodad=True)
    ip_lib.add_address(
        "gb", ipaddress.ip_interface("fd00:3::2/64"), namespace=listener, nodad=True
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
