"""Send probes from inside a VM namespace and say which got an answer.

Run as ``ip netns exec VM python probe.py`` with a JSON list of probes on stdin
(``{"id", "proto": tcp|udp|icmp, "src", "dst", "port"}``; IPv4 or IPv6 addresses,
ICMPv6 echo for ``icmp`` on IPv6); prints ``{id: true|false}``.
An answer is anything that proves the first packet reached the destination: a TCP
connect accepted or refused (RST), a UDP datagram answered or refused (ICMP port
unreachable), an echo reply. With stateful security groups the answer itself passes as
ESTABLISHED/RELATED, so "answered" is "the first packet passed". Every probe has a
bounded timeout; probes run side by side in a bounded pool of threads.
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
import subprocess
import sys
from typing import Any

TIMEOUT = 1.5


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _tcp(src: str, dst: str, port: int) -> bool:
    with socket.socket(_family(src), socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.bind((src, 0))
        try:
            sock.connect((dst, port))
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
        return True


def _udp(src: str, dst: str, port: int) -> bool:
    with socket.socket(_family(src), socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.bind((src, 0))
        sock.connect((dst, port))
        try:
            sock.send(b"probe")
            sock.recv(64)
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
        return True


def _icmp(src: str, dst: str) -> bool:
    argv = ["ping", "-n", "-q", "-c", "1", "-W", "2", "-I", src, dst]
    return subprocess.run(argv, capture_output=True, timeout=10, check=False).returncode == 0


def run(probe: dict[str, Any]) -> bool:
    if probe["proto"] == "tcp":
        return _tcp(probe["src"], probe["dst"], probe["port"])
    if probe["proto"] == "udp":
        return _udp(probe["src"], probe["dst"], probe["port"])
    return _icmp(probe["src"], probe["dst"])


def main() -> None:
    probes = json.load(sys.stdin)
    with concurrent.futures.ThreadPoolExecutor(max_workers=24) as pool:
        results = dict(zip((p["id"] for p in probes), pool.map(run, probes), strict=True))
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
