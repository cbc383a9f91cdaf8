"""Hand-built Ethernet frames for attack tests, sent and captured with raw sockets inside
network namespaces (no scapy on the machine).

The builders are pure functions; :func:`send` and :class:`Capture` run the system
``python3`` inside a namespace (``ip netns exec``), so the test process never changes
namespace itself.
"""

from __future__ import annotations

import ipaddress
import struct
import subprocess
import time
from typing import Self

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
#: IEEE local experimental ethertype: no stack consumes it, only a raw socket sees it.
ETH_EXPERIMENTAL = 0x88B5
VXLAN_PORT = 4789


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def link_local(mac: str) -> str:
    """The EUI-64 IPv6 link-local address of ``mac`` (a VM's own: anti-spoofing lets it
    through)."""
    octets = mac_bytes(mac)
    eui = bytes([octets[0] ^ 2, *octets[1:3], 0xFF, 0xFE, *octets[3:]])
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui))


def ethernet(dst: str, src: str, ethertype: int, payload: bytes) -> bytes:
    return mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", ethertype) + payload


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp4(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """An IPv4 header + UDP datagram (UDP checksum 0: optional over IPv4)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        0x1234,
        0,
        64,
        17,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + udp


def udp6(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """An IPv6 header + UDP datagram with its (mandatory) checksum."""
    source, dest = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    length = 8 + len(payload)
    pseudo = source + dest + struct.pack("!I3xB", length, 17)
    partial = struct.pack("!HHHH", sport, dport, length, 0) + payload
    udp = partial[:6] + struct.pack("!H", _checksum(pseudo + partial) or 0xFFFF) + partial[8:]
    return struct.pack("!IHBB", 0x60000000, length, 17, 64) + source + dest + udp


def icmp6(src: str, dst: str, message: bytes, hop_by_hop: bool = False) -> bytes:
    """An IPv6 header (hop limit 255) + ICMPv6 ``message`` (its checksum field is filled in).

    :param hop_by_hop: put an 8-byte hop-by-hop header (PadN only) before the ICMPv6
        message, as an evasion of checks at fixed offsets would
    """
    source, dest = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    pseudo = source + dest + struct.pack("!I3xB", len(message), 58)
    zeroed = message[:2] + b"\0\0" + message[4:]
    icmp = zeroed[:2] + struct.pack("!H", _checksum(pseudo + zeroed)) + zeroed[4:]
    ext = struct.pack("!BBBB4x", 58, 0, 1, 4) if hop_by_hop else b""
    first = 0 if hop_by_hop else 58
    header = struct.pack("!IHBB", 0x60000000, len(ext) + len(icmp), first, 255)
    return header + source + dest + ext + icmp


def nd_option(kind: int, mac: str) -> bytes:
    """A link-layer address option (1: source, 2: target) for an Ethernet MAC."""
    return struct.pack("!BB", kind, 1) + mac_bytes(mac)


#: RFC 7527 nonce option (type 14), as Linux puts in DAD neighbour solicitations.
ND_NONCE = struct.pack("!BB", 14, 1) + bytes.fromhex("0123456789ab")


def neighbour_advert(target: str, options: bytes = b"", flags: int = 0x20) -> bytes:
    """An NA message (flags: 0x20 override, 0x40 solicited, 0x80 router) + options."""
    return (
        struct.pack("!BBHI", 136, 0, 0, flags << 24)
        + ipaddress.IPv6Address(target).packed
        + options
    )


def neighbour_solicit(target: str, options: bytes = b"") -> bytes:
    """An NS message for ``target`` + options."""
    return struct.pack("!BBHI", 135, 0, 0, 0) + ipaddress.IPv6Address(target).packed + options


def router_solicit(options: bytes = b"") -> bytes:
    """An RS message + options."""
    return struct.pack("!BBHI", 133, 0, 0, 0) + options


def ipv6_multicast_mac(address: str) -> str:
    """The Ethernet destination of an IPv6 multicast address (33:33 + low 32 bits)."""
    low = ipaddress.IPv6Address(address).packed[-4:]
    return ":".join(f"{b:02x}" for b in b"\x33\x33" + low)


def vxlan(vni: int, inner: bytes) -> bytes:
    """A VXLAN header (flags: VNI valid) and the inner frame."""
    return struct.pack("!II", 0x08000000, vni << 8) + inner


def send(netns: str, device: str, frames: list[bytes], repeat: int = 3) -> None:
    """Send each frame ``repeat`` times from ``device`` in ``netns`` (raw socket)."""
    code = (
        "import socket,sys,time\n"
        "s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n"
        f"s.bind(({device!r},0))\n"
        f"for _ in range({repeat}):\n"
        "    for f in sys.argv[1:]: s.send(bytes.fromhex(f)); time.sleep(0.05)\n"
    )
    subprocess.run(
        ["ip", "netns", "exec", netns, "python3", "-c", code, *(f.hex() for f in frames)],
        check=True,
        capture_output=True,
        timeout=30,
    )


class _Probe:
    """``code`` run with ``magic`` (hex) as its argument in ``netns``: it prints ``ready``
    once listening, then ``hit`` for each frame or datagram holding the marker."""

    def __init__(self, netns: str, code: str, magic: bytes, what: str) -> None:
        self._proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, "python3", "-c", code, magic.hex()],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        if self._proc.stdout.readline().strip() != "ready":
            self._proc.kill()
            raise AssertionError(f"{what} in {netns} did not start")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> str:
        if self._proc.poll() is None:
            self._proc.kill()
        out, _ = self._proc.communicate(timeout=10)
        return out

    def count(self, settle: float = 1.0) -> int:
        """Stops the probe after ``settle`` seconds; how many hits it saw."""
        time.sleep(settle)
        return self._stop().split().count("hit")


class Capture(_Probe):
    """Frames arriving on ``device`` in ``netns`` that contain ``magic``, while open.

    Use as a context manager; :meth:`count` ends the capture and returns how many
    frames held the marker.
    """

    def __init__(self, netns: str, device: str, magic: bytes) -> None:
        code = (
            "import socket,sys\n"
            "s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW,socket.htons(3))\n"
            f"s.bind(({device!r},0))\n"
            "print('ready',flush=True)\n"
            "while True:\n"
            "    d,a=s.recvfrom(65535)\n"
            "    if a[2]!=socket.PACKET_OUTGOING and bytes.fromhex(sys.argv[1]) in d:\n"
            "        print('hit',flush=True)\n"
        )
        super().__init__(netns, code, magic, f"capture on {device}")


class UdpListener(_Probe):
    """A UDP socket in ``netns`` on ``address``:``port``; :meth:`count` says how many
    datagrams holding ``magic`` it received (and stops it)."""

    def __init__(self, netns: str, address: str, port: int, magic: bytes) -> None:
        family = "AF_INET6" if ":" in address else "AF_INET"
        code = (
            "import socket,sys\n"
            f"s=socket.socket(socket.{family},socket.SOCK_DGRAM)\n"
            f"s.bind(({address!r},{port}))\n"
            "print('ready',flush=True)\n"
            "while True:\n"
            "    d=s.recv(65535)\n"
            "    if bytes.fromhex(sys.argv[1]) in d: print('hit',flush=True)\n"
        )
        super().__init__(netns, code, magic, f"UDP listener on {address}:{port}")
