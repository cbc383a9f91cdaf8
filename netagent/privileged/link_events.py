"""Kernel link notifications: a read-only NETLINK_ROUTE socket subscribed to RTNLGRP_LINK.

This module only reads. It sits in :mod:`netagent.privileged` because it talks netlink
directly and must open its socket inside a given network namespace. Messages are decoded
by :mod:`netagent.privileged.linkdecode`.

Two kernel behaviours shape it:

* the bridge code sends RTM_NEWLINK/RTM_DELLINK with ``ifi_family = AF_BRIDGE`` to the same
  group whenever a device joins or leaves a bridge (``br_ifinfo_notify``). Such a
  RTM_DELLINK does *not* mean the device is gone, so only ``AF_UNSPEC`` messages are
  reported;
* when the socket's receive buffer overflows the kernel drops notifications and the next
  ``recv`` fails with ENOBUFS. :class:`LinkEventsLostError` tells the caller to dump again.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
from typing import NamedTuple

from netagent.common.exceptions import NetagentError
from netagent.privileged import linkdecode, links, nlsocket, nsenter, validate
from netagent.privileged import nlcodec as nl

#: Bitmask of the legacy multicast group RTNLGRP_LINK (= 1) for ``bind()``.
RTMGRP_LINK = nl.RTMGRP_LINK
_SO_RCVBUFFORCE = 33
_RCVBUF = 4 * 1024 * 1024
_AF_UNSPEC = 0


class LinkEvent(NamedTuple):
    """A device exists (``present``) or was deleted, with its ifindex and name."""

    present: bool
    ifindex: int
    name: str


class LinkEventsLostError(NetagentError):
    """The kernel dropped notifications (ENOBUFS); the caller must dump the links again."""

    def __init__(self, namespace: str | None) -> None:
        super().__init__(namespace)
        self.namespace = namespace

    def __str__(self) -> str:
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"link notifications lost{where} (receive buffer overflow)"


def _decode(msg: nl.RawMessage) -> LinkEvent | None:
    """An ``ifinfmsg`` (notification or dump entry) as an event, if it is one."""
    msg_type = msg.header["type"]
    if msg_type not in (nl.RTM_NEWLINK, nl.RTM_DELLINK):
        return None
    family, index, _flags = linkdecode.header(msg.data)
    if family != _AF_UNSPEC:
        return None
    name = linkdecode.ifname(msg.data)
    if name is None:
        return None
    return LinkEvent(msg_type == nl.RTM_NEWLINK, index, name)


def dump_links(namespace: str | None = None) -> list[LinkEvent]:
    """Every device of ``namespace`` (``None``: the caller's own) as present events.

    :raises NamespaceNotFound: no such namespace.
    :raises KernelError: the dump failed.
    """
    namespace = validate.optional_namespace(namespace)
    sock = nlsocket.RtnlSocket(namespace)
    try:
        messages = sock.dump(nl.RTM_GETLINK, links.dump_request, reply_class=nl.RawMessage)
    finally:
        sock.close()
    events = (_decode(msg) for msg in messages)
    return [event for event in events if event is not None]


class LinkEventSocket:
    """A socket that receives the link notifications of one namespace.

    Open it *before* dumping the links: notifications that arrive between the two are
    queued, and replaying them in order after the dump gives the current state.

    :param namespace: the namespace to watch, ``None`` for the caller's own.
    :raises NamespaceNotFound: no such namespace.
    """

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = validate.optional_namespace(namespace)
        sock: socket.socket = nsenter.call_in_namespace(
            self.namespace,
            socket.socket,
            socket.AF_NETLINK,
            socket.SOCK_RAW | socket.SOCK_CLOEXEC,
            socket.NETLINK_ROUTE,
        )
        self._sock = sock
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RCVBUF)
            except PermissionError:  # not root: the default buffer still works
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
            sock.bind((0, RTMGRP_LINK))
        except BaseException:
            sock.close()
            raise
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)
        self._poll.register(self._wake_r, select.POLLIN)
        self._buf = bytearray(256 * 1024)
        self._closed = False

    def read(self, timeout: float | None = None) -> list[LinkEvent]:
        """Wait for notifications and return those received, oldest first.

        :param timeout: seconds to wait, ``None`` for ever.
        :returns: events; empty after a timeout or :meth:`interrupt`.
        :raises LinkEventsLostError: notifications were dropped by the kernel.
        """
        ready = self._poll.poll(None if timeout is None else int(timeout * 1000))
        if any(fd == self._wake_r for fd, _ in ready):
            return []
        events: list[LinkEvent] = []
        while True:
            try:
                size = self._sock.recv_into(self._buf, len(self._buf), socket.MSG_DONTWAIT)
            except BlockingIOError:
                return events
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    raise LinkEventsLostError(self.namespace) from exc
                raise
            for msg in nl.split(bytes(self._buf[:size])):
                event = _decode(msg)
                if event is not None:
                    events.append(event)

    def interrupt(self) -> None:
        """Make a blocked or the next :meth:`read` return at once (any thread)."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        """Close the socket. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
