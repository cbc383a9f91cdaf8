"""The agent's status: the document, the unix-socket server, and the client.

Protocol: a client connects to ``<state_path>/status.sock``; the agent writes one JSON
document followed by a newline and closes the connection. Nothing is read from the
client, so the socket cannot be used to change anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from netagent.agent import planning, serve
from netagent.common.exceptions import NetagentError
from netagent.explain import snapshot

#: The status of a router on a host whose L3 driver builds none.
NOT_APPLIED = "not applied: this host's l3_driver builds no routers"

if TYPE_CHECKING:
    from netagent.agent.converge import Converger
    from netagent.agent.source import SourceUpdate

LOG = logging.getLogger(__name__)

SOCKET_NAME = "status.sock"
_MAX_DOCUMENT = 64 * 1024 * 1024


class StatusUnavailableError(NetagentError):
    """No agent answers on the status socket."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"no agent answers on {self.path}: {self.reason}"


@dataclasses.dataclass
class Counters:
    """Pass counters, written by the worker only."""

    passes: int = 0
    full_syncs: int = 0
    last_full_sync_duration: float | None = None
    last_pass_duration: float | None = None
    #: firewall integrity checks run, and chains/hooks they found changed and rewrote
    integrity_checks: int = 0
    integrity_repairs: int = 0

    def as_dict(self, **extra: int) -> dict[str, Any]:
        return {**dataclasses.asdict(self), **extra}


def socket_path(state_path: str) -> str:
    """The status socket of an agent whose ``state_path`` is given."""
    return os.path.join(state_path, SOCKET_NAME)


def not_ready(host: str) -> dict[str, Any]:
    """The document before the first pass."""
    return {"host": host, "ports": [], "networks": [], "routers": [], "source_errors": []}


def describe(
    host: str,
    plan: planning.HostPlan,
    devices: Mapping[str, int],
    converger: Converger,
    update: SourceUpdate,
) -> dict[str, Any]:
    """Build the status document after a pass (worker thread)."""
    ports = []
    for pid in sorted(plan.ports):
        port = plan.ports[pid]
        pp = plan.port_plans.get(pid)
        filtered = wired = False
        if pp is not None:
            filtered = converger.filtered.matches(pid, planning.filter_fingerprint(pp, plan.view))
            wired = converger.wired.matches(pid, planning.wire_fingerprint(pp, devices))
        error = plan.port_errors.get(pid) or converger.errors.get(("port", pid))
        if pp is not None:
            converged = filtered and wired and error is None
        else:
            converged = error is None and pid not in converger.wired
        ports.append(
            {
                "id": pid,
                "device": port.device_name,
                "network": port.network_id,
                "device_present": port.device_name in devices,
                "admin_state_up": port.admin_state_up,
                "filtered": filtered,
                "wired": wired,
                "waiting_for_device": plan.waiting_for_device(pid),
                "converged": converged,
                "error": error,
            }
        )
    networks = []
    for nid in sorted(plan.networks):
        np = plan.networks[nid]
        local = [p for p in plan.ports.values() if p.network_id == nid]
        networks.append(
            {
                "id": nid,
                "type": str(np.network.network_type),
                "segmentation_id": np.network.segmentation_id,
                "mtu": np.network.mtu,
                "ports": sorted(p.id for p in local),
                "devices": sorted(p.device_name for p in local if p.device_name in devices),
                "tunnel_peers": {h: str(ip) for h, ip in np.tunnel_peers.items()},
                "remote_ports": len(np.remote_ports),
                "ready": converger.networks.matches(nid, np),
                "error": converger.errors.get(("network", nid)),
            }
        )
    for nid, why in sorted(plan.refused_networks.items()):
        network = plan.view.networks[nid]
        networks.append(
            {
                "id": nid,
                "type": str(network.network_type),
                "segmentation_id": network.segmentation_id,
                "mtu": network.mtu,
                "ports": sorted(p.id for p in plan.ports.values() if p.network_id == nid),
                "devices": [],
                "tunnel_peers": {},
                "remote_ports": 0,
                "ready": False,
                "error": why,
            }
        )
    builds = converger.l3.builds_routers
    routers = [
        {
            "id": rid,
            "applied": builds,
            "ready": builds and converger.routers.matches(rid, router),
            "error": converger.errors.get(("router", rid)) if builds else NOT_APPLIED,
        }
        for rid, router in sorted(plan.routers.items())
    ]
    security_groups = [
        {"id": gid, "stateful": group.stateful, "rules": [r.summary() for r in group.rules]}
        for gid, group in sorted(plan.view.security_groups.items())
    ]
    return {
        "host": host,
        "origin": update.origin,
        "ports": ports,
        "networks": networks,
        "routers": routers,
        "security_groups": security_groups,
        "source_errors": list(update.errors),
        "explain": snapshot.document(
            host,
            (
                (nid, str(np.network.network_type), np.network.segmentation_id, np.tunnel_peers)
                for nid, np in plan.networks.items()
            ),
            update.state,
            planned=plan.port_plans,
        ),
    }


class StatusServer:
    """Serves ``provider()`` as JSON to every client of a unix socket.

    Each client gets a handler thread of its own (at most
    :data:`~netagent.agent.serve.MAX_HANDLERS` at once, beyond that a client is closed at
    once) and :data:`~netagent.agent.serve.CONNECTION_TIMEOUT` seconds to read the whole
    document, so a client that never reads cannot hold up the others.

    :param path: socket path; its directory is created if missing.
    :param provider: builds the document (called from handler threads, concurrently).
    """

    def __init__(self, path: str, provider: Callable[[], Mapping[str, Any]]) -> None:
        self.path = path
        self._provider = provider
        self._server: serve.BoundedServer | None = None

    def start(self) -> None:
        """Bind and start serving.

        :raises NetagentError: another agent already serves this socket.
        :raises OSError: the socket cannot be created.
        """
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o755, exist_ok=True)
        if _answers(self.path):
            raise NetagentError(f"another agent is serving {self.path} (same state_path?)")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old_umask = os.umask(0o117)
        try:
            sock.bind(self.path)
        finally:
            os.umask(old_umask)
        sock.listen(64)
        self._server = serve.BoundedServer(sock, self._answer, "status-server")
        self._server.start()

    def stop(self) -> None:
        """Stop serving and remove the socket. Idempotent."""
        if self._server is not None:
            self._server.stop()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def _answer(self, conn: socket.socket, _head: bytes) -> None:
        deadline = time.monotonic() + serve.CONNECTION_TIMEOUT
        body = json.dumps(self._provider(), sort_keys=True, default=str)
        serve.send_all(conn, body.encode() + b"\n", deadline)


def _answers(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def query(path: str, timeout: float = 10.0) -> dict[str, Any]:
    """Fetch the status document of the agent serving ``path``.

    :raises StatusUnavailableError: nothing listens there, or the answer is not a document.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    chunks: list[bytes] = []
    try:
        sock.connect(path)
        size = 0
        while chunk := sock.recv(65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > _MAX_DOCUMENT:
                raise StatusUnavailableError(path, "status document too large")
    except OSError as exc:
        reason = (
            "agent not running" if exc.errno in (errno.ENOENT, errno.ECONNREFUSED) else str(exc)
        )
        raise StatusUnavailableError(path, reason) from exc
    finally:
        sock.close()
    try:
        doc = json.loads(b"".join(chunks))
    except ValueError as exc:
        raise StatusUnavailableError(path, f"invalid answer: {exc}") from exc
    if not isinstance(doc, dict):
        raise StatusUnavailableError(path, "invalid answer: not an object")
    return doc
