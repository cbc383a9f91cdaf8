"""Fixtures for the iptables/ipset/conntrack functional tests: two namespaces and a veth.

``pair`` gives namespaces ``a`` (198.51.100.1, fd00::1) and ``b`` (198.51.100.2, fd00::2)
joined by a veth pair; ``a`` also has 198.51.100.3 and .4 to send from. Test code may fork
``ip``/``ping``/``python``; everything runs inside the test's own namespaces.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.functional.conftest import nsrun, unique_name

A4, B4, A4_EXTRA = "198.51.100.1", "198.51.100.2", ("198.51.100.3", "198.51.100.4")
A6, B6 = "fd00::1", "fd00::2"


def ping(ns: str, addr: str, source: str | None = None) -> bool:
    argv = ["ping", "-c", "1", "-W", "1"]
    if source:
        argv += ["-I", source]
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, *argv, addr], capture_output=True, timeout=5, check=False
    )
    return proc.returncode == 0


def tcp_connect(ns: str, addr: str, port: int) -> bool:
    code = f"import socket,sys\nsocket.create_connection(({addr!r}, {port}), timeout=1).close()\n"
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, "python3", "-c", code],
        capture_output=True,
        timeout=5,
        check=False,
    )
    if proc.returncode != 0:
        print("tcp_connect", addr, port, proc.stderr.decode()[-300:])
    return proc.returncode == 0


@dataclass
class Pair:
    a: str
    b: str


@pytest.fixture(params=["nft", "legacy"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pair(make_netns: Callable[[str], str]) -> Pair:
    a, b = make_netns("a"), make_netns("b")
    va, vb = unique_name("va"), unique_name("vb")
    subprocess.run(
        ["ip", "link", "add", va, "netns", a, "type", "veth", "peer", vb, "netns", b],
        check=True,
    )
    for ns, dev, v4s, v6 in ((a, va, (A4, *A4_EXTRA), A6), (b, vb, (B4,), B6)):
        for addr in v4s:
            nsrun(ns, "ip", "addr", "add", f"{addr}/24", "dev", dev)
        nsrun(ns, "ip", "addr", "add", f"{v6}/64", "dev", dev, "nodad")
        nsrun(ns, "ip", "link", "set", dev, "up")
    for addr in (B4, B6):  # the link needs a moment (IPv6 link-local, neighbours)
        for _ in range(20):
            if ping(a, addr):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"no connectivity to {addr}")
    return Pair(a, b)


@pytest.fixture
def tcp_server(pair: Pair) -> Iterator[Callable[[int], None]]:
    """Factory: start a TCP listener on B4:port in namespace b (stopped by PID)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(port: int) -> None:
        code = (
            "import socket,time\n"
            "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(({B4!r}, {port})); s.listen(16); s.settimeout(60)\n"
            "t=time.time()\n"
            "while time.time()-t<60:\n"
            "    c,_=s.accept(); c.close()\n"
        )
        procs.append(subprocess.Popen(["ip", "netns", "exec", pair.b, "python3", "-c", code]))
        for _ in range(50):
            if f":{port}" in nsrun(pair.b, "ss", "-ltn"):
                return
            time.sleep(0.05)
        raise AssertionError("server did not start")

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(timeout=5)
