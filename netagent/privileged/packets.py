"""Gratuitous ARP and unsolicited IPv6 neighbour advertisements from raw packet sockets.

The AF_PACKET socket is opened from a thread inside the namespace (sockets keep their
namespace) and bound to the device; frames are built here, so nothing is forked and the
address need not have finished DAD. Used after address moves (floating IPs, gateways).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import struct
import time

from netagent.privileged import links, nsenter
from netagent.privileged import validate as v
from netagent.privileged.errors import InvalidArgument, translate

LOG = logging.getLogger(__name__)

_ETH_P_ARP = 0x0806
_ETH_P_IPV6 = 0x86DD
_BROADCAST = b"\xff" * 6
_ALL_NODES = ipaddress.IPv6Address("ff02::1")
_ALL_NODES_MAC = bytes.fromhex("333300000001")
_NA_ROUTER = 0x80000000
_NA_OVERRIDE = 0x20000000


def arp_frame(mac: bytes, address: ipaddress.IPv4Address, reply: bool) -> bytes:
    """A broadcast gratuitous ARP frame (request as ``arping -U``, reply as ``arping -A``)."""
    ether = _BROADCAST + mac + struct.pack("!H", _ETH_P_ARP)
    # Linux treats a reply as gratuitous only if target MAC == sender MAC (arp_is_garp);
    # otherwise the neighbour's locktime (1 s) can make it ignore the update.
    target_mac = mac if reply else b"\0" * 6
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2 if reply else 1)
    arp += mac + address.packed + target_mac + address.packed
    return ether + arp


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(int(word) for word in struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def na_frame(mac: bytes, address: ipaddress.IPv6Address, router: bool) -> bytes:
    """An unsolicited neighbour advertisement to ff02::1 with the override flag set."""
    flags = _NA_OVERRIDE | (_NA_ROUTER if router else 0)
    option = struct.pack("!BB", 2, 1) + mac  # target link-layer address
    body = struct.pack("!I", flags) + address.packed + option
    pseudo = address.packed + _ALL_NODES.packed + struct.pack("!I3xB", 4 + len(body), 58)
    checksum = _checksum(pseudo + struct.pack("!BBH", 136, 0, 0) + body)
    icmp = struct.pack("!BBH", 136, 0, checksum) + body
    ipv6 = struct.pack("!IHBB", 6 << 28, len(icmp), 58, 255) + address.packed + _ALL_NODES.packed
    return _ALL_NODES_MAC + mac + struct.pack("!H", _ETH_P_IPV6) + ipv6 + icmp


def _send(
    namespace: str | None, device: str, frame: bytes, proto: int, *, count: int, interval: float
) -> None:
    sock: socket.socket = nsenter.call_in_namespace(
        namespace, socket.socket, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto)
    )
    with sock:
        try:
            sock.bind((device, proto))
            for number in range(count):
                if number:
                    time.sleep(interval)
                sock.send(frame)
        except OSError as exc:
            raise translate(exc.errno or errno.EIO, "link", "send", device, namespace) from None


def _mac_bytes(mac: str | None) -> bytes:
    """``aa:bb:cc:dd:ee:ff`` as 6 bytes; a device without a MAC cannot send ARP/ND."""
    if not mac:
        raise InvalidArgument("device", mac, "device has no Ethernet address")
    return bytes.fromhex(mac.replace(":", ""))


def _check(device: str, count: int, interval: float) -> None:
    v.device_name(device)
    v.int_range(count, 1, 100, "count")
    if not isinstance(interval, int | float) or not 0 <= interval <= 10:
        raise InvalidArgument("interval", interval, "0..10 seconds")


def send_gratuitous_arp(
    namespace: str | None,
    device: str,
    address: str,
    *,
    count: int = 3,
    interval: float = 0.2,
    reply: bool = False,
) -> None:
    """Broadcast ``count`` gratuitous ARPs for ``address`` with ``device``'s MAC.

    :param reply: send ARP replies (``arping -A``) instead of requests (``arping -U``).
    :raises DeviceNotFound: no such device.
    """
    _check(device, count, interval)
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        raise InvalidArgument("address", address, "IPv4 address expected") from None
    mac = _mac_bytes(links.get_link(v.optional_namespace(namespace), device)["mac"])
    _send(namespace, device, arp_frame(mac, ip, reply), _ETH_P_ARP, count=count, interval=interval)
    LOG.info("Sent %d gratuitous ARP for %s on %s (namespace %s)", count, ip, device, namespace)


def send_unsolicited_na(
    namespace: str | None,
    device: str,
    address: str,
    *,
    count: int = 3,
    interval: float = 0.2,
    router: bool = False,
) -> None:
    """Send ``count`` unsolicited neighbour advertisements for ``address`` to ff02::1.

    :param router: set the router flag (for a gateway address).
    :raises DeviceNotFound: no such device.
    """
    _check(device, count, interval)
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        raise InvalidArgument("address", address, "IPv6 address expected") from None
    mac = _mac_bytes(links.get_link(v.optional_namespace(namespace), device)["mac"])
    _send(
        namespace, device, na_frame(mac, ip, router), _ETH_P_IPV6, count=count, interval=interval
    )
    LOG.info("Sent %d unsolicited NA for %s on %s (namespace %s)", count, ip, device, namespace)
