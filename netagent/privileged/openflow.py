"""OpenFlow on a bridge's management socket: the one place netagent talks OpenFlow.

Changes go through ``ovs-ofctl --bundle`` (it owns the flow syntax); reads of netagent's
flows (cookies and counters) speak OpenFlow 1.3 on the socket directly: one flow-stats
request, no process to fork (the agent reads each bridge's canary at every pass).

A bundle is applied atomically by ovs-vswitchd (OpenFlow 1.4 bundles): either every line
of it is in the table or none. Lines are the ``add-flows`` file format, where a line may
start with ``delete``; callers build them with :mod:`netagent.ovs.flows`. The target is a
bridge's management socket (``unix:<rundir>/<bridge>.mgmt``), never a remote controller
address.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import struct
import subprocess
from collections.abc import Sequence

from netagent.common.exceptions import NetagentError
from netagent.privileged.errors import InvalidArgument

_TARGET_RE = re.compile(r"^unix:/[A-Za-z0-9_./-]+\.mgmt$")
_LINE_RE = re.compile(r"^[A-Za-z0-9_ =,.:/()\[\]>+-]+$")
_TIMEOUT = 60
_READ_TIMEOUT = 10

_OFP13 = 0x04
_HEADER = struct.Struct("!BBHI")  # version, type, length, xid
_T_HELLO, _T_ERROR, _T_ECHO_REQUEST, _T_ECHO_REPLY = 0, 1, 2, 3
_T_MULTIPART_REQUEST, _T_MULTIPART_REPLY = 18, 19
_MP_FLOW, _MP_REPLY_MORE = 1, 1
_ANY = 0xFFFFFFFF  # OFPP_ANY / OFPG_ANY
_ALL_TABLES = 0xFF
#: multipart type + flags, then ofp_flow_stats_request with an empty OXM match
_FLOW_STATS_REQUEST = struct.Struct("!HH4xB3xII4xQQHH4x")
_FLOW_STATS = struct.Struct("!HBx8xH10xQQQ")  # length, table, priority, cookie, packets, bytes


class OpenFlowError(NetagentError):
    """ovs-ofctl failed; for a bundle, nothing of it was applied."""

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


def _ofctl(args: list[str], target: str, stdin: str | None = None) -> str:
    try:
        proc = subprocess.run(
            ["ovs-ofctl", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OpenFlowError(target, str(exc)) from exc
    if proc.returncode != 0:
        raise OpenFlowError(target, proc.stderr.strip() or f"exit {proc.returncode}")
    return proc.stdout


def bundle(target: str, lines: Sequence[str]) -> None:
    """Apply flow additions and deletions as one atomic bundle.

    :param lines: ``add-flows`` lines, e.g. ``cookie=0x..,table=0,priority=1,actions=drop``
        or ``delete cookie=0x../-1``.
    :raises InvalidArgument: bad target or a line with characters flows never need.
    :raises OpenFlowError: ovs-ofctl or ovs-vswitchd refused it (nothing applied).
    """
    _target(target)
    for line in lines:
        if not isinstance(line, str) or not _LINE_RE.fullmatch(line):
            raise InvalidArgument("flow", line, "one line of flow syntax")
    if not lines:
        return
    _ofctl(["--bundle", "add-flows", target, "-"], target, "\n".join(lines) + "\n")


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
    path = _target(target).removeprefix("unix:")
    if not (0 <= cookie < 1 << 64 and 0 < mask < 1 << 64):
        raise InvalidArgument("cookie", (cookie, mask), "64-bit values")
    if not isinstance(table, int) or not 0 <= table <= _ALL_TABLES:
        raise InvalidArgument("table", table, "0..255")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(_READ_TIMEOUT)
            sock.connect(path)
            return _flow_stats(sock, target, cookie, mask, table)
    except OSError as exc:
        raise OpenFlowError(target, f"flow statistics: {exc}") from exc


def _flow_stats(
    sock: socket.socket, target: str, cookie: int, mask: int, table: int
) -> list[FlowStats]:
    sock.sendall(_HEADER.pack(_OFP13, _T_HELLO, _HEADER.size, 1))
    version, kind, _, _ = _HEADER.unpack(_recv_message(sock)[: _HEADER.size])
    if kind != _T_HELLO or version < _OFP13:
        raise OpenFlowError(target, f"no OpenFlow 1.3 (hello: version {version}, type {kind})")
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
    xid = 2
    sock.sendall(_HEADER.pack(_OFP13, _T_MULTIPART_REQUEST, _HEADER.size + len(body), xid) + body)
    found: list[FlowStats] = []
    while True:
        message = _recv_message(sock)
        _, kind, _, msg_xid = _HEADER.unpack(message[: _HEADER.size])
        if kind == _T_ECHO_REQUEST:
            sock.sendall(_HEADER.pack(_OFP13, _T_ECHO_REPLY, len(message), msg_xid) + message[8:])
            continue
        if msg_xid != xid:
            continue  # an asynchronous message
        if kind == _T_ERROR:
            err_type, code = struct.unpack_from("!HH", message, _HEADER.size)
            raise OpenFlowError(target, f"flow statistics refused (error {err_type}/{code})")
        if kind != _T_MULTIPART_REPLY:
            raise OpenFlowError(target, f"unexpected OpenFlow message type {kind}")
        _, flags = struct.unpack_from("!HH", message, _HEADER.size)
        offset = _HEADER.size + 8
        while offset + _FLOW_STATS.size <= len(message):
            length, table_id, priority, flow_cookie, packets, octets = _FLOW_STATS.unpack_from(
                message, offset
            )
            if length < _FLOW_STATS.size:
                raise OpenFlowError(target, "malformed flow statistics")
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
