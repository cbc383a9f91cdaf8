"""A TCP relay: listen on 127.0.0.1:PORT (optionally inside a network namespace) and
forward every connection to a target in the root namespace (RabbitMQ, MariaDB).

A process in a simulated host namespace cannot reach the root namespace's loopback;
testing.md forbids adding addresses or routes to the root namespace, so each host
namespace gets a relay. Only the listening socket is created inside the namespace (by a
short-lived thread that setns(2)-es there: the namespace of a socket is fixed when it is
created); everything else runs in the test's own threads.

The relay can also simulate a broker outage: :meth:`Relay.pause` drops every relayed
connection and refuses new ones until :meth:`Relay.resume`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import socket
import subprocess
import threading
from pathlib import Path

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


def listen_socket(host: str, port: int, netns: str | None = None) -> socket.socket:
    """A listening TCP socket, created inside ``netns`` (a name under /run/netns) if given."""
    result: list[socket.socket | BaseException] = []

    def make() -> None:
        try:
            if netns is not None:
                _setns(str(Path("/run/netns") / netns))
                # loopback is down in a fresh namespace
                subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=False)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(64)
            result.append(sock)
        except BaseException as exc:
            result.append(exc)

    # a thread of its own: setns() changes only the calling thread, which then dies
    thread = threading.Thread(target=make, name="relay-setns")
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


class Relay:
    """Forward ``listen_host:listen_port`` (in ``netns``) to ``target``.

    :param listen_port: 0 picks a free port (see :attr:`port`).
    """

    def __init__(
        self,
        target: tuple[str, int] = ("127.0.0.1", 5672),
        listen_port: int = 0,
        netns: str | None = None,
        listen_host: str = "127.0.0.1",
    ) -> None:
        self.target = target
        self.netns = netns
        self._listener = listen_socket(listen_host, listen_port, netns)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._paused = False
        self._stopped = False
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept_loop, name="relay", daemon=True)

    def start(self) -> Relay:
        self._thread.start()
        return self

    def pause(self) -> None:
        """Drop every relayed connection and refuse new ones (a broker outage)."""
        with self._lock:
            self._paused = True
            conns, self._conns = self._conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    def stop(self) -> None:
        self._stopped = True
        self.pause()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._stopped:
            try:
                ready, _, _ = select.select([self._listener], [], [], 0.2)
                if not ready:
                    continue
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                paused = self._paused
            if paused:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
                self.accepted += 1
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                ready, _, _ = select.select(list(peers), [], [], 1.0)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in (a, b):
                with self._lock:
                    self._conns.discard(sock)
                with contextlib.suppress(OSError):
                    sock.close()
