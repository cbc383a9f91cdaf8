"""An established TCP connection across a takeover, run inside VM namespaces.

``serve PORT...``: echo server on each port (every connection in its own thread).
``client DST PORT STOPFILE``: one connection; a 32-byte message every 20 ms, each echo
awaited (2 s at most); when STOPFILE exists it prints one JSON line ``{"sent",
"echoed", "error", "max_gap_ms"}`` and exits. Bounded: it stops by itself after 120 s.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time


def _echo(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)


def _listen(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", port))
        srv.listen(16)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()


def serve(ports: list[int]) -> None:
    for port in ports:
        threading.Thread(target=_listen, args=(port,), daemon=True).start()
    time.sleep(300)


def client(dst: str, port: int, stopfile: str) -> None:
    sent = echoed = 0
    error = None
    max_gap = 0.0
    end = time.monotonic() + 120
    with socket.create_connection((dst, port), timeout=5) as sock:
        sock.settimeout(2)
        last = time.monotonic()
        while not os.path.exists(stopfile) and time.monotonic() < end:
            message = f"{sent:031d}\n".encode()
            try:
                sock.sendall(message)
                sent += 1
                got = b""
                while len(got) < len(message):
                    chunk = sock.recv(len(message) - len(got))
                    if not chunk:
                        raise ConnectionError("closed by peer")
                    got += chunk
                if got != message:
                    raise ConnectionError(f"echo mismatch {got!r}")
                echoed += 1
            except OSError as exc:
                error = f"{type(exc).__name__}: {exc}"
                break
            now = time.monotonic()
            max_gap = max(max_gap, now - last)
            last = now
            time.sleep(0.02)
    result = {"sent": sent, "echoed": echoed, "error": error, "max_gap_ms": max_gap * 1000}
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve([int(p) for p in sys.argv[2:]])
    else:
        client(sys.argv[2], int(sys.argv[3]), sys.argv[4])
