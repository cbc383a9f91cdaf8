"""Announcing moved addresses: gratuitous ARP (IPv4) and unsolicited NA (IPv6).

Called after a floating IP or gateway address moves, so that neighbours update their
caches without waiting for expiry. Packets are sent from raw packet sockets opened inside
the namespace; nothing is forked.
"""

from __future__ import annotations

import ipaddress
import logging

from netagent.privileged import packets, validate
from netagent.privileged.errors import InvalidArgument

LOG = logging.getLogger(__name__)


def send_gratuitous_arp(
    device: str,
    address: ipaddress.IPv4Address,
    *,
    namespace: str | None = None,
    count: int = 3,
    interval: float = 0.2,
    reply: bool = False,
) -> None:
    """Broadcast gratuitous ARP for ``address`` from ``device``.

    :param count: packets to send (1..100).
    :param interval: seconds between packets (0..10).
    :param reply: ARP reply form (``arping -A``) instead of request (``arping -U``).
    :raises DeviceNotFound: no such device.
    """
    if not isinstance(address, ipaddress.IPv4Address):
        raise InvalidArgument("address", address, "IPv4Address expected")
    packets.send_gratuitous_arp(
        validate.optional_namespace(namespace),
        validate.device_name(device),
        str(address),
        count=count,
        interval=interval,
        reply=reply,
    )


def send_unsolicited_na(
    device: str,
    address: ipaddress.IPv6Address,
    *,
    namespace: str | None = None,
    count: int = 3,
    interval: float = 0.2,
    router: bool = False,
) -> None:
    """Send unsolicited neighbour advertisements (override flag) for ``address`` to ff02::1.

    :param router: also set the router flag.
    :raises DeviceNotFound: no such device.
    """
    if not isinstance(address, ipaddress.IPv6Address):
        raise InvalidArgument("address", address, "IPv6Address expected")
    packets.send_unsolicited_na(
        validate.optional_namespace(namespace),
        validate.device_name(device),
        str(address),
        count=count,
        interval=interval,
        router=router,
    )
