"""OpenFlow on a bridge's management socket: the one place netagent talks OpenFlow.

No process is forked: changes are OpenFlow 1.4 bundles of flow-mods that
:mod:`netagent.privileged.flowmod` encodes from netagent's flow lines, reads of netagent's
flows (cookies and counters) are one OpenFlow 1.3 flow-stats request (the agent reads each
bridge's canary at every pass).

A bundle is applied atomically by ovs-vswitchd: either every line of it is in the table or
none. As ovs-ofctl ``--bundle`` does it, the bundle is opened, every flow-mod added, and a
barrier sent; ovs-vswitchd checks each flow-mod when it is added, so the errors of the
additions have all arrived when the barrier's reply does. Then the bundle is committed, or
discarded if any addition was refused; :class:`StagedBundle` lets the caller choose when
to commit. Lines are the ``add-flows`` file format, where a
line may start with ``delete``; callers build them with :mod:`netagent.ovs.flows`. The
target is a bridge's management socket (``unix:<rundir>/<bridge>.mgmt``), never a remote
controller address.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import struct
from collections.abc import Sequence

from netagent.common.exceptions import NetagentError
from netagent.privileged import flowmod
from netagent.privileged.errors import InvalidArgument

_TARGET_RE = re.compile(r"^unix:/[A-Za-z0-9_./-]+\.mgmt$")
_TIMEOUT = 60
_READ_TIMEOUT = 10

_OFP13, _OFP14 = 0x04, flowmod.OFP14
_HEADER = flowmod.HEADER
_T_HELLO, _T_ERROR, _T_ECHO_REQUEST, _T_ECHO_REPLY = 0, 1, 2, 3
_T_MULTIPART_REQUEST, _T_MULTIPART_REPLY = 18, 19
_T_BARRIER_REQUEST, _T_BARRIER_REPLY = 20, 21
_T_BUNDLE_CONTROL, _T_BUNDLE_ADD = 33, 34
_BCT_OPEN, _BCT_COMMIT = 0, 4
_BUNDLE_FLAGS = 3  # OFPBF_ATOMIC | OFPBF_ORDERED
_BUNDLE_CONTROL = struct.Struct("!IHH")  # bundle id, type, flags
_BUNDLE_ADD = struct.Struct("!I2xH")  # bundle id, flags; the message follows
_MP_FLOW, _MP_REPLY_MORE = 1, 1
_ANY = 0xFFFFFFFF  # OFPP_ANY / OFPG_ANY
_ALL_TABLES = 0xFF
#: multipart type + flags, then ofp_flow_stats_request with an empty OXM match
_FLOW_STATS_REQUEST = struct.Struct("!HH4xB3xII4xQQHH4x")
_FLOW_STATS = struct.Struct("!HBx8xH10xQQQ")  # length, table, priority, cookie, packets, bytes


class OpenFlowError(NetagentError):
    """The bridge could not be reached or refused a request; for a bundle, nothing of it
    was applied."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(target, reason)
        self.target = target
        self.reason = reason

    def __str__(self) -> str:
        return f"OpenFlow on {self.target}: {self.reason}"


def _target(target: str) -> str:
    if not isinstance(target, str) or not _TARGET_RE.fullmatch(target):
        raise InvalidArgument("target", target, "unix:/path/<bridge>.mgmt")
    return target


class _Channel:
    """One OpenFlow connection; answers echo requests.

    The hello is sent at once and the requests may follow it without waiting for
    ovs-vswitchd's (OpenFlow allows it; a busy ovs-vswitchd answers each message only at
    its next main-loop iteration, so a round trip saved is worth having). The peer's hello
    is checked by the first :meth:`receive`: a switch without our version answers with a
    hello of a lower version and an error, and the requests sent after it are not applied.
    """

    def __init__(self, sock: socket.socket, target: str, version: int) -> None:
        self.sock = sock
        self.target = target
        self.version = version
        self._hello_checked = False
        sock.sendall(_HEADER.pack(version, _T_HELLO, _HEADER.size, 0))

    def message(self, kind: int, xid: int, body: bytes = b"") -> bytes:
        return _HEADER.pack(self.version, kind, _HEADER.size + len(body), xid) + body

    def receive(self) -> bytes:
        """The next message that is not the hello or an echo request.

        :raises OpenFlowError: the peer's hello is not of our version.
        """
        while True:
            message = _recv_message(self.sock)
            theirs, kind, _, xid = _HEADER.unpack(message[: _HEADER.size])
            if not self._hello_checked:
                if kind != _T_HELLO or theirs < self.version:
                    raise OpenFlowError(
                        self.target,
                        f"no OpenFlow version {self.version} (hello: version {theirs}, "
                        f"type {kind})",
                    )
                self._hello_checked = True
                continue
            if kind != _T_ECHO_REQUEST:
                return message
            self.sock.sendall(self.message(_T_ECHO_REPLY, xid, message[_HEADER.size :]))


def _connect(target: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(_target(target).removeprefix("unix:"))
    except BaseException:
        sock.close()
        raise
    return sock


def _error(message: bytes) -> str:
    err_type, code = struct.unpack_from("!HH", message, _HEADER.size)
    return f"error type {err_type} code {code}"


def bundle(target: str, lines: Sequence[str]) -> None:
    """Apply flow additions and deletions as one atomic bundle.

    :param lines: ``add-flows`` lines, e.g. ``cookie=0x..,table=0,priority=1,actions=drop``
        or ``delete cookie=0x../-1`` (:mod:`netagent.privileged.flowmod`).
    :raises InvalidArgument: bad target, or a line netagent never writes (nothing sent).
    :raises OpenFlowError: the bridge cannot be reached or refused the bundle (nothing
        applied).
    """
    staged = StagedBundle(target, lines)
    staged.send()
    staged.commit()


class StagedBundle:
    """A bundle ovs-vswitchd holds checked but not applied: :meth:`send` stages it,
    :meth:`commit` applies it with one more round trip, :meth:`discard` (or closing the
    connection) drops it.

    The driver stages a pass's flows while its OVSDB transaction is under way and commits
    them once ovs-vswitchd has applied the transaction, so the flows never act before the
    ports' tags do and the pass does not wait for ovs-vswitchd twice in a row. The flows
    are encoded when the bundle is made, in the caller's thread; :meth:`send` is only
    I/O, so a thread that sends holds Python's interpreter lock for microseconds and the
    threads that compute (the driver's, ovsdbapp's) are not kept waiting for it.

    :raises InvalidArgument: bad target, or a line netagent never writes (nothing sent).
    """

    def __init__(self, target: str, lines: Sequence[str]) -> None:
        _target(target)
        self.target = target
        self.lines = list(lines)
        self._mods = [flowmod.flow_mod(line, xid) for xid, line in enumerate(self.lines, start=2)]
        self._sock: socket.socket | None = None
        self._channel: _Channel | None = None
        self._discarded = False

    def send(self) -> None:
        """Stage the bundle in ovs-vswitchd (once; an empty bundle sends nothing).

        :raises OpenFlowError: the bridge cannot be reached or refused a line, or the
            bundle was discarded or committed (nothing staged).
        """
        if self._discarded:
            raise OpenFlowError(self.target, "bundle: discarded or committed already")
        if not self._mods or self._channel is not None:
            return
        try:
            self._sock = _connect(self.target, _TIMEOUT)
            self._channel = _Channel(self._sock, self.target, _OFP14)
            refused = _stage(self._channel, self.lines, self._mods)
        except OSError as exc:
            self.discard()
            raise OpenFlowError(self.target, f"bundle: {exc}") from exc
        if refused:
            self.discard()
            raise OpenFlowError(self.target, refused)

    def commit(self) -> None:
        """Apply the bundle (atomically; staged first if :meth:`send` was not called)
        and close the connection.

        :raises OpenFlowError: the bundle or its commit was refused or the connection
            failed (nothing applied).
        """
        self.send()
        channel = self._channel
        if channel is None:
            return
        try:
            _finish(channel, _BCT_COMMIT, len(self.lines) + 3)
        except OSError as exc:
            raise OpenFlowError(self.target, f"bundle: {exc}") from exc
        finally:
            self.discard()

    def discard(self) -> None:
        """Drop the bundle (ovs-vswitchd discards an uncommitted bundle with its
        connection); it cannot be sent or committed after this."""
        if self._sock is not None:
            self._sock.close()
        self._sock, self._channel, self._discarded = None, None, True


def _control(channel: _Channel, kind: int, xid: int) -> bytes:
    body = _BUNDLE_CONTROL.pack(0, kind, _BUNDLE_FLAGS)
    return channel.message(_T_BUNDLE_CONTROL, xid, body)


def _stage(channel: _Channel, lines: Sequence[str], mods: list[bytes]) -> str:
    """Open the bundle and add ``mods``; :returns: why a line was refused, or ``""``."""
    barrier = len(mods) + 2
    out = [_control(channel, _BCT_OPEN, 1)]
    for mod in mods:
        xid = _HEADER.unpack_from(mod)[3]  # the same as the flow-mod's, as OpenFlow requires
        out.append(channel.message(_T_BUNDLE_ADD, xid, _BUNDLE_ADD.pack(0, _BUNDLE_FLAGS) + mod))
    out.append(channel.message(_T_BARRIER_REQUEST, barrier))
    channel.sock.sendall(b"".join(out))
    refused = ""
    while True:
        message = channel.receive()
        _, kind, _, xid = _HEADER.unpack(message[: _HEADER.size])
        if kind == _T_ERROR and not refused and 1 <= xid < barrier:
            what = "bundle open" if xid == 1 else repr(lines[xid - 2])
            refused = f"{what} refused ({_error(message)})"
        elif kind == _T_BARRIER_REPLY and xid == barrier:
            return refused


def _finish(channel: _Channel, kind: int, xid: int) -> None:
    channel.sock.sendall(_control(channel, kind, xid))
    while True:
        message = channel.receive()
        _, reply, _, reply_xid = _HEADER.unpack(message[: _HEADER.size])
        if reply_xid != xid:
            continue
        if reply == _T_ERROR:
            raise OpenFlowError(channel.target, f"bundle commit refused ({_error(message)})")
        return


@dataclasses.dataclass(frozen=True)
class FlowStats:
    """One flow's identity and counters as ovs-vswitchd reports them."""

    cookie: int
    table: int
    priority: int
    packets: int
    bytes: int


def cookies(target: str, cookie: int, mask: int, table: int = _ALL_TABLES) -> list[int]:
    """The cookies of the flows whose cookie matches ``cookie``/``mask`` (one per flow).

    :param table: only this table (default: all).
    :raises OpenFlowError: the bridge cannot be reached.
    """
    return [flow.cookie for flow in flow_stats(target, cookie, mask, table)]


def flow_stats(target: str, cookie: int, mask: int, table: int = _ALL_TABLES) -> list[FlowStats]:
    """The flows whose cookie matches ``cookie``/``mask``, with their counters.

    :raises InvalidArgument: bad target, cookie, mask or table.
    :raises OpenFlowError: the bridge cannot be reached or refused the request.
    """
    return flow_stats_each([target], cookie, mask, table)[0]


def flow_stats_each(
    targets: Sequence[str], cookie: int, mask: int, table: int = _ALL_TABLES
) -> list[list[FlowStats]]:
    """:func:`flow_stats` of several bridges at once: every request is sent before any
    answer is read, so the bridges answer at the same time (the agent reads each bridge's
    canary at every pass).

    :returns: per target, in order, its flows.
    :raises InvalidArgument: bad target, cookie, mask or table (nothing sent).
    :raises OpenFlowError: a bridge cannot be reached or refused the request.
    """
    for target in targets:
        _target(target)
    if not (0 <= cookie < 1 << 64 and 0 < mask < 1 << 64):
        raise InvalidArgument("cookie", (cookie, mask), "64-bit values")
    if not isinstance(table, int) or not 0 <= table <= _ALL_TABLES:
        raise InvalidArgument("table", table, "0..255")
    sockets: list[socket.socket] = []
    channels: list[_Channel] = []
    target = ""  # the bridge being talked to, for the error
    try:
        for target in targets:
            sockets.append(_connect(target, _READ_TIMEOUT))
            channels.append(_Channel(sockets[-1], target, _OFP13))
            _request_flow_stats(channels[-1], cookie, mask, table)
        found = []
        for channel in channels:
            target = channel.target
            found.append(_read_flow_stats(channel))
        return found
    except OSError as exc:
        raise OpenFlowError(target, f"flow statistics: {exc}") from exc
    finally:
        for sock in sockets:
            sock.close()


_STATS_XID = 2


def _request_flow_stats(channel: _Channel, cookie: int, mask: int, table: int) -> None:
    body = _FLOW_STATS_REQUEST.pack(
        _MP_FLOW,
        0,
        table,
        _ANY,
        _ANY,
        cookie,
        mask,
        1,
        4,  # OFPMT_OXM, no fields
    )
    channel.sock.sendall(channel.message(_T_MULTIPART_REQUEST, _STATS_XID, body))


def _read_flow_stats(channel: _Channel) -> list[FlowStats]:
    found: list[FlowStats] = []
    while True:
        message = channel.receive()
        _, kind, _, msg_xid = _HEADER.unpack(message[: _HEADER.size])
        if msg_xid != _STATS_XID:
            continue  # an asynchronous message
        if kind == _T_ERROR:
            raise OpenFlowError(channel.target, f"flow statistics refused ({_error(message)})")
        if kind != _T_MULTIPART_REPLY:
            raise OpenFlowError(channel.target, f"unexpected OpenFlow message type {kind}")
        _, flags = struct.unpack_from("!HH", message, _HEADER.size)
        offset = _HEADER.size + 8
        while offset + _FLOW_STATS.size <= len(message):
            length, table_id, priority, flow_cookie, packets, octets = _FLOW_STATS.unpack_from(
                message, offset
            )
            if length < _FLOW_STATS.size:
                raise OpenFlowError(channel.target, "malformed flow statistics")
            found.append(FlowStats(flow_cookie, table_id, priority, packets, octets))
            offset += length
        if not flags & _MP_REPLY_MORE:
            return found


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("connection closed by ovs-vswitchd")
        data += chunk
    return bytes(data)


def _recv_message(sock: socket.socket) -> bytes:
    header = _recv_exactly(sock, _HEADER.size)
    length = _HEADER.unpack(header)[2]
    if length < _HEADER.size:
        raise OSError(f"bad OpenFlow message length {length}")
    return header + _recv_exactly(sock, length - _HEADER.size)
