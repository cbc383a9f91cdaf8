"""One rtnetlink socket per network namespace, kept open and reused.

:class:`RtnlSocket` sends requests pipelined: every request carries ``NLM_F_ACK`` and its
own sequence number, many are packed into one ``send()`` (the kernel handles each message
of a datagram in turn and acks it, carrying on after a failed one), and the acks are
collected afterwards and matched by sequence number. The receive buffer is enlarged and
drained while sending, so acks are never dropped.

The socket of a namespace is opened from a thread that entered it (see
:mod:`netagent.privileged.nsenter`); the cache remembers the namespace's inode and
reopens the socket when a namespace of the same name was recreated.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from netagent.privileged import nlcodec as nl
from netagent.privileged import nsenter
from netagent.privileged.errors import KernelError, NamespaceNotFound

LOG = logging.getLogger(__name__)

_SO_RCVBUFFORCE = 33
_RCVBUF = 16 * 1024 * 1024
_SEND_CHUNK = 32 * 1024
_DRAIN_EVERY = 256
_TIMEOUT_S = 60.0


@dataclass
class Request:
    """One netlink request: a pyroute2 message to send once, with its type and flags.

    ``NLM_F_REQUEST`` (and ``NLM_F_ACK`` unless it is a dump) and the sequence number are
    added when it is sent.
    """

    msg_type: int
    flags: int
    msg: nl.Message
    #: pyroute2 class to decode the answers with (default: the class of their type)
    reply_class: type | None = None

    def __repr__(self) -> str:
        return f"Request(type={self.msg_type}, flags={self.flags:#x}, {type(self.msg).__name__})"


@dataclass
class Reply:
    """The outcome of one request: ``error`` is 0 or a positive errno.

    ``messages`` are the pyroute2 messages answering it (a dump's entries, a get's reply).
    """

    error: int = 0
    message: str = ""
    messages: list[nl.Message] = field(default_factory=list)
    interrupted: bool = False


class RtnlSocket:
    """A NETLINK_ROUTE socket bound inside one namespace; thread-safe."""

    def __init__(self, namespace: str | None, sock: socket.socket | None = None) -> None:
        """:param sock: a NETLINK_ROUTE socket opened inside ``namespace`` (default: one
        is opened here)."""
        self.namespace = namespace
        self._lock = threading.Lock()
        self._seq = 0
        if sock is None:
            sock = nsenter.call_in_namespace(namespace, _new_socket)
        self._sock = sock
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RCVBUF)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _RCVBUF)
            sock.setsockopt(nl.SOL_NETLINK, nl.NETLINK_CAP_ACK, 1)
            sock.setsockopt(nl.SOL_NETLINK, nl.NETLINK_EXT_ACK, 1)
            sock.bind((0, 0))
        except BaseException:
            sock.close()
            raise
        self._buf = bytearray(1024 * 1024)
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)

    def close(self) -> None:
        """Close the socket; later calls fail."""
        with self._lock:
            self._sock.close()

    def dump(
        self,
        msg_type: int,
        make: Callable[[], nl.Message],
        flags: int = nl.NLM_F_DUMP,
        reply_class: type | None = None,
    ) -> list[nl.Message]:
        """Run one dump request and return its messages (decoded by pyroute2).

        Interrupted dumps (``NLM_F_DUMP_INTR``, the table changed meanwhile) are retried,
        each time with a fresh request from ``make``.

        :raises KernelError: the kernel answered with an error.
        """
        for _ in range(10):
            reply = self.run([Request(msg_type, flags, make(), reply_class)])[0]
            if reply.error:
                raise KernelError(reply.error, "dump", str(msg_type), self.namespace)
            if reply.interrupted:
                continue
            return reply.messages
        raise KernelError(errno.EINTR, "dump", str(msg_type), self.namespace)

    def run(self, requests: Sequence[Request]) -> list[Reply]:
        """Send all requests, pipelined, and return one :class:`Reply` per request.

        A dump (``NLM_F_DUMP``) must be the only request of its call.
        ``Reply.interrupted`` is set for a dump that the kernel marked as interrupted.
        """
        replies = [Reply() for _ in requests]
        with self._lock:
            base = self._seq + 1
            self._seq += len(requests)
            # everything is encoded before the first send: an encoding error sends nothing
            encoded: list[bytes] = []
            pending: dict[int, int] = {}
            reply_classes: dict[int, type] = {}
            for index, req in enumerate(requests):
                seq = (base + index) & 0xFFFFFFFF
                flags = req.flags | nl.NLM_F_REQUEST
                if not _is_dump(req):
                    flags |= nl.NLM_F_ACK
                encoded.append(nl.encode(req.msg, req.msg_type, flags, seq))
                pending[seq] = index
                if req.reply_class is not None:
                    reply_classes[seq] = req.reply_class
            chunk: list[bytes] = []
            chunk_len = 0
            sent = 0
            for data in encoded:
                chunk.append(data)
                chunk_len += len(data)
                sent += 1
                if chunk_len >= _SEND_CHUNK:
                    self._sock.send(b"".join(chunk))
                    chunk, chunk_len = [], 0
                    if sent >= _DRAIN_EVERY:
                        sent = 0
                        self._receive(pending, replies, reply_classes, block=False)
            if chunk:
                self._sock.send(b"".join(chunk))
            while pending:
                self._receive(pending, replies, reply_classes, block=True)
        return replies

    def _receive(
        self,
        pending: dict[int, int],
        replies: list[Reply],
        reply_classes: dict[int, type],
        block: bool,
    ) -> None:
        while pending:
            if block and not self._poll.poll(_TIMEOUT_S * 1000):
                raise KernelError(errno.ETIMEDOUT, "netlink", "ack", self.namespace)
            try:
                size = self._sock.recv_into(self._buf, len(self._buf), socket.MSG_DONTWAIT)
            except BlockingIOError:
                if block:
                    continue
                return
            for raw in nl.split(bytes(self._buf[:size])):
                header = raw.header
                seq = header["sequence_number"]
                index = pending.get(seq)
                if index is None:
                    LOG.debug("Dropping netlink message with unknown sequence %d", seq)
                    continue
                reply = replies[index]
                msg_type = header["type"]
                msg_flags = header["flags"]
                if msg_type == nl.NLMSG_ERROR:
                    reply.error, reply.message = nl.ack_error(raw)
                    del pending[seq]
                elif msg_type == nl.NLMSG_DONE:
                    reply.error = nl.done_error(raw)
                    if msg_flags & nl.NLM_F_DUMP_INTR:
                        reply.interrupted = True
                    del pending[seq]
                else:
                    if msg_flags & nl.NLM_F_DUMP_INTR:
                        reply.interrupted = True
                    reply.messages.append(nl.decode_one(raw, reply_classes.get(seq)))
            if not block:
                continue
            return


def _new_socket() -> socket.socket:
    return socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
    )


def _is_dump(req: Request) -> bool:
    # NLM_F_DUMP shares bits with NLM_F_EXCL; it means "dump" only on RTM_GET* types.
    return req.msg_type & 3 == 2 and req.flags & nl.NLM_F_DUMP == nl.NLM_F_DUMP


_CACHE: dict[str | None, tuple[RtnlSocket, tuple[int, int]]] = {}
_CACHE_LOCK = threading.Lock()


def _netns_identity(namespace: str | None) -> tuple[int, int]:
    path = "/proc/self/ns/net" if namespace is None else nsenter.netns_path(namespace)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NamespaceNotFound(str(namespace)) from None
    return st.st_dev, st.st_ino


def get_socket(namespace: str | None) -> RtnlSocket:
    """The cached socket of ``namespace`` (``None``: the agent's own), opened if needed.

    :raises NamespaceNotFound: the namespace does not exist.
    """
    identity = _netns_identity(namespace)
    with _CACHE_LOCK:
        cached = _CACHE.get(namespace)
        if cached is not None:
            if cached[1] == identity:
                return cached[0]
            cached[0].close()
            del _CACHE[namespace]
        sock = RtnlSocket(namespace)
        _CACHE[namespace] = (sock, identity)
        return sock


def open_sockets(namespaces: Sequence[str]) -> None:
    """Open the sockets of many namespaces not cached yet, from one thread that enters
    each in turn (an agent restart reads every router namespace: one thread start and
    hand-over per namespace costs more than the socket). A namespace that is gone is
    skipped; :func:`get_socket` reports it when it is used.
    """
    with _CACHE_LOCK:
        missing = [ns for ns in dict.fromkeys(namespaces) if ns not in _CACHE]
    if not missing:
        return
    opened: dict[str, tuple[socket.socket, tuple[int, int]]] = {}

    def enter_each() -> None:
        for namespace in missing:
            try:
                fd = nsenter.open_netns(namespace)
            except NamespaceNotFound:
                continue
            try:
                st = os.fstat(fd)
                nsenter.setns_fd(fd)
                opened[namespace] = (_new_socket(), (st.st_dev, st.st_ino))
            except OSError as exc:
                LOG.debug("Opening the netlink socket of %s failed: %s", namespace, exc)
            finally:
                os.close(fd)

    # the thread ends in the last namespace it entered, which affects nobody else
    thread = threading.Thread(target=enter_each, name="netns-sockets", daemon=True)
    thread.start()
    thread.join()
    for namespace, (sock, identity) in opened.items():
        try:
            rtnl = RtnlSocket(namespace, sock)
        except OSError as exc:
            LOG.debug("Setting up the netlink socket of %s failed: %s", namespace, exc)
            continue
        with _CACHE_LOCK:
            if namespace not in _CACHE:
                _CACHE[namespace] = (rtnl, identity)
                continue
        rtnl.close()


def close_socket(namespace: str | None) -> None:
    """Close and forget the cached socket of ``namespace``, if any."""
    with _CACHE_LOCK:
        cached = _CACHE.pop(namespace, None)
    if cached is not None:
        cached[0].close()
