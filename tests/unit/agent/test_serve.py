"""Slow and hostile local clients of the status socket and the metrics endpoint.

Real sockets (loopback TCP and a unix socket in tmp_path), real threads: these are the
local denial-of-service attacks of issue 17 item 8, asserting they no longer work.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netagent.agent import metrics, serve, status

DOC: dict[str, Any] = {"host": "cmp1", "converged": True, "counters": {"passes": 3}}


@pytest.fixture
def metrics_server() -> Iterator[metrics.MetricsServer]:
    server = metrics.MetricsServer("127.0.0.1", 0, lambda: DOC)
    server.start()
    yield server
    server.stop()


def _hold(n: int, connect: Any, payload: bytes) -> list[socket.socket]:
    held = []
    for _ in range(n):
        sock = connect()
        if payload:
            sock.sendall(payload)
        held.append(sock)
    return held


def test_half_sent_requests_neither_grow_threads_nor_block_a_get(
    metrics_server: metrics.MetricsServer,
) -> None:
    base = threading.active_count()
    addr = ("127.0.0.1", metrics_server.port)
    held = _hold(200, lambda: socket.create_connection(addr, timeout=5), b"GET /metr")
    try:
        time.sleep(0.5)
        threads = threading.active_count()
        assert threads <= base + serve.MAX_HANDLERS, f"{base} -> {threads} threads"
        url = f"http://127.0.0.1:{metrics_server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
            assert "netagent_passes_total" in response.read().decode()
        assert threading.active_count() <= base + serve.MAX_HANDLERS
    finally:
        for sock in held:
            sock.close()


def test_connections_beyond_the_handler_bound_are_closed_at_once() -> None:
    release = threading.Event()

    def slow(conn: socket.socket, _head: bytes) -> None:
        release.wait(10)
        conn.sendall(b"done")

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = serve.BoundedServer(listener, slow, "test", max_handlers=4)
    server.start()
    base = threading.active_count()
    held = _hold(4, lambda: socket.create_connection(("127.0.0.1", port), timeout=5), b"")
    try:
        time.sleep(0.3)
        assert threading.active_count() == base + 4
        with socket.create_connection(("127.0.0.1", port), timeout=5) as extra:
            started = time.monotonic()
            assert extra.recv(16) == b""
            assert time.monotonic() - started < 2
        assert threading.active_count() == base + 4
        release.set()
        assert [s.recv(16) for s in held] == [b"done"] * 4
    finally:
        release.set()
        for sock in held:
            sock.close()
        server.stop()


def test_stalled_clients_are_cut_at_the_deadline() -> None:
    big = b"x" * (16 * 1024 * 1024)

    def answer(conn: socket.socket, head: bytes) -> None:
        serve.send_all(conn, big, time.monotonic() + 0.5)

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = serve.BoundedServer(listener, answer, "test", read_head=True, timeout=0.5)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as half:
            half.sendall(b"GET / HTTP/1.0\r\n")  # head never finished
            started = time.monotonic()
            assert half.recv(16) == b""
            assert time.monotonic() - started < 3
        with socket.create_connection(("127.0.0.1", port), timeout=5) as lazy:
            lazy.sendall(b"GET / HTTP/1.0\r\n\r\n")
            time.sleep(1.5)  # never reads: the answer is abandoned after 0.5 s
            received = 0
            with contextlib.suppress(ConnectionResetError):
                while chunk := lazy.recv(1 << 20):
                    received += len(chunk)
            assert 0 < received < len(big)
    finally:
        server.stop()


def test_a_status_client_that_never_reads_does_not_block_others(tmp_path: Path) -> None:
    # Big enough that the answer to a client that does not read fills its socket buffer.
    doc = {
        "host": "cmp1",
        "ports": [{"id": f"port-{i:05d}", "x": "y" * 200} for i in range(20000)],
    }
    path = status.socket_path(str(tmp_path))
    server = status.StatusServer(path, lambda: doc)
    server.start()
    stalled: list[socket.socket] = []
    try:
        for _ in range(3):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            stalled.append(sock)
        time.sleep(0.3)
        started = time.monotonic()
        got = status.query(path, timeout=3)
        assert len(got["ports"]) == 20000
        assert time.monotonic() - started < 3
    finally:
        for sock in stalled:
            sock.close()
        server.stop()
