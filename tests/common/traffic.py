"""Traffic helpers shared by the functional and fullstack router tests: a bounded TCP
"whoami" server inside a namespace (it answers with a tag and the peer address it saw, so
a test reads the translation a packet went through) and its client, ping, and neighbour
reads."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
from collections.abc import Iterator

from netagent.privileged import nsenter


@contextlib.contextmanager
def whoami_server(ns: str, answer: str = "", port: int = 5000, family: int = 4) -> Iterator[None]:
    """A TCP server in ``ns`` that sends back ``answer`` and the peer's address, then
    closes. Bounded: stops with the context."""
    listener: socket.socket = nsenter.call_in_namespace(ns, _listen, port, family)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, peer = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.sendall(f"{answer} {peer[0]}".encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _listen(port: int, family: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if family == 6 else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("::" if family == 6 else "0.0.0.0", port))
    sock.listen(16)
    return sock


def ask(
    ns: str, address: str, port: int = 5000, source: str | None = None, family: int = 4
) -> str:
    """Connect from ``ns`` to ``address:port`` and return what the server said ("" on
    failure)."""

    def connect() -> str:
        kind = socket.AF_INET6 if family == 6 else socket.AF_INET
        with socket.socket(kind, socket.SOCK_STREAM) as sock:
            sock.settimeout(3)
            if source:
                sock.bind((source, 0))
            try:
                sock.connect((address, port))
                return sock.recv(200).decode()
            except OSError:
                return ""

    result: str = nsenter.call_in_namespace(ns, connect)
    return result


def ping_argv(
    ns: str,
    address: str,
    count: int,
    interval: float,
    deadline: int | None = None,
    source: str | None = None,
) -> list[str]:
    """``ping`` from ``ns``: ``count`` echo requests ``interval`` s apart, each given 1 s,
    all at most ``deadline`` s if set (with both ``-c`` and ``-w`` ping exits 0 only if
    every reply came back in time), sent from ``source`` if set."""
    argv = ["ip", "netns", "exec", ns, "ping", "-n", "-q", "-c", str(count)]
    argv += ["-i", str(interval), "-W", "1"]
    if deadline is not None:
        argv += ["-w", str(deadline)]
    if source:
        argv += ["-I", source]
    return [*argv, address]


def ping(ns: str, address: str, count: int = 2, source: str | None = None) -> bool:
    """Whether ``address`` answers ``count`` echo requests from ``ns`` 0.2 s apart (each
    given 1 s, all 4 s), sent from ``source`` if set."""
    argv = ping_argv(ns, address, count, 0.2, deadline=4, source=source)
    return subprocess.run(argv, capture_output=True, timeout=20).returncode == 0


def neigh_mac(ns: str, address: str) -> str | None:
    out = subprocess.run(
        ["ip", "-n", ns, "-j", "neigh", "show", address],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for entry in json.loads(out or "[]"):
        if entry.get("lladdr"):
            return str(entry["lladdr"])
    return None


def udp_socket(ns: str, address: str = "0.0.0.0", port: int = 0) -> socket.socket:
    """A UDP socket bound in ``ns`` (non-blocking reads with a short timeout)."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((address, port))
        sock.settimeout(1.0)
        return sock

    result: socket.socket = nsenter.call_in_namespace(ns, make)
    return result


def received(sock: socket.socket) -> list[bytes]:
    """Every datagram waiting on ``sock`` (waits up to its timeout for the first)."""
    out = []
    try:
        while True:
            out.append(sock.recv(2048))
            sock.settimeout(0.2)
    except TimeoutError:
        pass
    finally:
        sock.settimeout(1.0)
    return out
