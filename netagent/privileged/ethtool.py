"""Transmit checksum offload of a device, through the SIOCETHTOOL ioctl.

The one ethtool setting netagent changes. A veth whose frames go into Open vSwitch's
userspace datapath (``datapath_type = netdev``) must compute its checksums itself: OVS
reads the frames from a packet socket and forwards them as they are, so a frame sent
with a partial checksum (the veth default) reaches the receiver with a wrong one, and
DHCP clients that check it (ISC dhclient) drop the server's offers (testing.md). The
legacy ``ETHTOOL_[GS]TXCSUM`` commands are used: the kernel maps them onto the device's
checksum features, as ``ethtool -K dev tx off`` does.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import socket
import struct

from netagent.privileged import nsenter
from netagent.privileged import validate as v
from netagent.privileged.errors import translate

LOG = logging.getLogger(__name__)

SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM = 0x00000016
ETHTOOL_STXCSUM = 0x00000017


class _EthtoolValue(ctypes.Structure):
    _fields_ = (("cmd", ctypes.c_uint32), ("data", ctypes.c_uint32))


def _ioctl(device: str, cmd: int, data: int) -> int:
    value = _EthtoolValue(cmd, data)
    # struct ifreq: the name, then ifr_data (a pointer to the ethtool struct), padded
    ifreq = struct.pack("16sP", device.encode(), ctypes.addressof(value)).ljust(40, b"\0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
    return int(value.data)


def _call(namespace: str | None, device: str, cmd: int, data: int, operation: str) -> int:
    try:
        return nsenter.call_in_namespace(namespace, _ioctl, device, cmd, data)
    except OSError as exc:
        raise translate(exc.errno or 0, "link", operation, device, namespace) from None


def set_tx_checksumming(namespace: str | None, device: str, enabled: bool) -> None:
    """Turn transmit checksum offload of ``device`` on or off (``ethtool -K dev tx``).

    :raises InvalidArgument: a bad device or namespace name.
    :raises DeviceNotFound: no such device there.
    :raises NamespaceNotFound: no such namespace.
    """
    v.device_name(device)
    v.optional_namespace(namespace)
    _call(namespace, device, ETHTOOL_STXCSUM, int(enabled), "set_tx_checksumming")
    LOG.info(
        "tx checksumming %s on %s (namespace %s)", "on" if enabled else "off", device, namespace
    )


def get_tx_checksumming(namespace: str | None, device: str) -> bool:
    """Whether transmit checksum offload of ``device`` is on.

    :raises DeviceNotFound: no such device there.
    """
    v.device_name(device)
    v.optional_namespace(namespace)
    return bool(_call(namespace, device, ETHTOOL_GTXCSUM, 0, "get_tx_checksumming"))
