"""A small bounded socket server shared by the status socket and the metrics endpoint.

Both are reachable by any local user, so neither may be held up by a client that connects
and then stalls. One acceptor thread owns the listening socket; every connection gets a
deadline, and a handler thread only once there is work for it:

* with ``read_head``, the acceptor itself collects the request head (up to a blank line)
  from all pending connections without blocking, so a half-sent request costs a file
  descriptor, not a thread; the oldest pending connection is dropped when too many wait;
* at most ``max_handlers`` handler threads run at once; a connection beyond that is closed
  at once rather than queued.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable

LOG = logging.getLogger(__name__)

CONNECTION_TIMEOUT = 10.0
MAX_HANDLERS = 16
MAX_PENDING = 256
MAX_HEAD = 16 * 1024

#: What a client going away or stalling looks like: logged at debug, without traceback
#: (``socket.timeout`` is ``TimeoutError``).
CLIENT_ERRORS = (BrokenPipeError, ConnectionResetError, TimeoutError)

#: ``handle(conn, head)``: serve one connection; ``head`` is the request head read so far.
Handler = Callable[[socket.socket, bytes], None]


def send_all(conn: socket.socket, data: bytes, deadline: float) -> None:
    """Send ``data`` before ``deadline`` (monotonic), however slowly the client reads.

    :raises TimeoutError: the deadline passed first.
    """
    view = memoryview(data)
    while view:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("client too slow to read the answer")
        conn.settimeout(remaining)
        sent = conn.send(view[:65536])
        view = view[sent:]


class BoundedServer:
    """Serves connections of ``sock`` (bound and listening) with ``handle``.

    :param sock: the listening socket; the server owns it from :meth:`start` on.
    :param handle: called in a daemon handler thread with the connection (timeout set).
    :param name: thread name prefix, also used in logs.
    :param read_head: collect the request head before handing the connection over.
    """

    def __init__(
        self,
        sock: socket.socket,
        handle: Handler,
        name: str,
        *,
        read_head: bool = False,
        timeout: float = CONNECTION_TIMEOUT,
        max_handlers: int = MAX_HANDLERS,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._sock = sock
        self._handle = handle
        self._name = name
        self._read_head = read_head
        self.timeout = timeout
        self.max_handlers = max_handlers
        self._max_pending = max_pending
        self._slots = threading.BoundedSemaphore(max_handlers)
        self._selector = selectors.DefaultSelector()
        #: pending connection -> (deadline, head so far), oldest first
        self._pending: collections.OrderedDict[socket.socket, tuple[float, bytes]] = (
            collections.OrderedDict()
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refused = 0
        self._warned: dict[str, float] = {}

    def start(self) -> None:
        self._sock.setblocking(False)
        self._selector.register(self._sock, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and drop pending connections. Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for conn in list(self._pending):
            self._drop(conn)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(self._sock)
        self._selector.close()
        self._sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                events = self._selector.select(timeout=0.5)
            except OSError:
                LOG.exception("%s: select failed", self._name)
                self._stop.wait(0.5)
                continue
            for key, _mask in events:
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                if conn is self._sock:
                    self._accept()
                else:
                    self._read(conn)
            self._expire()

    def _accept(self) -> None:
        try:
            conn, _addr = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EMFILE and friends: keep serving the ones we have
            if self._may_warn("accept"):
                LOG.warning("%s: accept failed (not logged again for 60 s): %s", self._name, exc)
            self._stop.wait(0.1)
            return
        if not self._read_head:
            self._dispatch(conn, b"")
            return
        conn.setblocking(False)
        if len(self._pending) >= self._max_pending:
            oldest = next(iter(self._pending))
            LOG.debug("%s: too many unfinished requests, dropping the oldest", self._name)
            self._drop(oldest)
        self._pending[conn] = (time.monotonic() + self.timeout, b"")
        self._selector.register(conn, selectors.EVENT_READ)

    def _read(self, conn: socket.socket) -> None:
        deadline, head = self._pending[conn]
        try:
            chunk = conn.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            LOG.debug("%s: client gone while sending its request: %s", self._name, exc)
            self._drop(conn)
            return
        head += chunk
        if not chunk or len(head) > MAX_HEAD:
            LOG.debug("%s: incomplete or oversized request (%d bytes)", self._name, len(head))
            self._drop(conn)
            return
        if b"\n\r\n" not in head and b"\n\n" not in head:
            self._pending[conn] = (deadline, head)
            return
        self._selector.unregister(conn)
        del self._pending[conn]
        self._dispatch(conn, head)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._pending:
            conn, (deadline, _head) = next(iter(self._pending.items()))
            if deadline > now:
                break
            LOG.debug("%s: request not complete within %.0f s", self._name, self.timeout)
            self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        self._pending.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn)
        conn.close()

    def _dispatch(self, conn: socket.socket, head: bytes) -> None:
        if not self._slots.acquire(blocking=False):
            conn.close()
            self._refused += 1
            if self._may_warn("refused"):
                LOG.warning(
                    "%s: all %d handlers busy, refused %d connection(s) since the last warning",
                    self._name,
                    self.max_handlers,
                    self._refused,
                )
                self._refused = 0
            return
        conn.setblocking(True)
        conn.settimeout(self.timeout)
        try:
            thread = threading.Thread(
                target=self._serve, args=(conn, head), name=f"{self._name}-conn", daemon=True
            )
            thread.start()
        except RuntimeError as exc:  # no thread to be had: refuse this one, keep accepting
            self._slots.release()
            conn.close()
            LOG.warning("%s: cannot start a handler thread: %s", self._name, exc)

    def _may_warn(self, what: str) -> bool:
        """At most one warning a minute per kind: a flood must not flood the log too."""
        now = time.monotonic()
        if now - self._warned.get(what, -60.0) < 60:
            return False
        self._warned[what] = now
        return True

    def _serve(self, conn: socket.socket, head: bytes) -> None:
        try:
            with conn:
                self._handle(conn, head)
        except CLIENT_ERRORS as exc:
            LOG.debug("%s: client went away or stalled: %s", self._name, exc or type(exc))
        except Exception:
            LOG.exception("%s: serving a client failed", self._name)
        finally:
            self._slots.release()
