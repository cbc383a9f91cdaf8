"""Prometheus metrics: the status document rendered in the text exposition format.

Served over HTTP (``GET /metrics``) on ``[agent] metrics_listen`` when it is set. The
numbers come from the same status document ``netagent-status`` shows, so the two never
disagree. Only the standard library is used: a minimal HTTP/1.0 responder on the bounded
server of :mod:`netagent.agent.serve`, so local users cannot exhaust its threads.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from netagent.agent import serve

LOG = logging.getLogger(__name__)

_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

StatusProvider = Callable[[], dict[str, Any]]

_COUNTERS = (
    ("passes", "netagent_passes_total", "counter", "Reconciliation passes run."),
    ("full_syncs", "netagent_full_syncs_total", "counter", "Full resyncs run."),
    ("failures", "netagent_failures_total", "counter", "Resource applies that failed."),
    (
        "driver_errors",
        "netagent_driver_errors_total",
        "counter",
        "Driver calls that raised (all resources of the batch failed).",
    ),
    (
        "integrity_checks",
        "netagent_integrity_checks_total",
        "counter",
        "Firewall integrity checks run (kernel chains compared with what was applied).",
    ),
    (
        "integrity_repairs",
        "netagent_integrity_repairs_total",
        "counter",
        "Firewall chains or hooks found changed by someone else and rewritten.",
    ),
    (
        "pending_retries",
        "netagent_pending_retries",
        "gauge",
        "Resources waiting for a retry with backoff.",
    ),
    (
        "last_full_sync_duration",
        "netagent_last_full_sync_seconds",
        "gauge",
        "Duration of the last full resync.",
    ),
    (
        "last_pass_duration",
        "netagent_last_pass_seconds",
        "gauge",
        "Duration of the last reconciliation pass.",
    ),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(doc: dict[str, Any]) -> str:
    """The status document as Prometheus text (version 0.0.4)."""
    host = _label(str(doc.get("host", "")))
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{{{labels}}} {value:g}" for labels, value in samples)

    base = f'host="{host}"'
    counters = doc.get("counters", {})
    for key, name, kind, help_text in _COUNTERS:
        value = counters.get(key)
        if value is not None:
            metric(name, kind, help_text, [(base, float(value))])
    metric(
        "netagent_converged",
        "gauge",
        "1 when everything wanted is applied.",
        [(base, 1.0 if doc.get("converged") else 0.0)],
    )
    ports = doc.get("ports", [])
    states = {
        "wired": sum(1 for p in ports if p.get("wired")),
        "filtered": sum(1 for p in ports if p.get("filtered")),
        "waiting_for_device": sum(1 for p in ports if p.get("waiting_for_device")),
        "error": sum(1 for p in ports if p.get("error")),
        "total": len(ports),
    }
    metric(
        "netagent_ports",
        "gauge",
        "Local ports by state.",
        [(f'{base},state="{state}"', float(n)) for state, n in states.items()],
    )
    networks = doc.get("networks", [])
    metric(
        "netagent_networks",
        "gauge",
        "Networks on this host by readiness.",
        [
            (
                f'{base},ready="{str(bool(r)).lower()}"',
                float(sum(1 for n in networks if bool(n.get("ready")) is r)),
            )
            for r in (True, False)
        ],
    )
    metric(
        "netagent_source_errors",
        "gauge",
        "Objects the source rejected as invalid.",
        [(base, float(len(doc.get("source_errors", []))))],
    )
    return "\n".join(lines) + "\n"


class MetricsServer:
    """``GET /metrics`` over HTTP, from a :class:`~netagent.agent.serve.BoundedServer`.

    One request per connection. A request must arrive whole within
    :data:`~netagent.agent.serve.CONNECTION_TIMEOUT` seconds; until it has, it holds no
    thread. At most :data:`~netagent.agent.serve.MAX_HANDLERS` answers are sent at once.
    """

    def __init__(self, address: str, port: int, provider: StatusProvider) -> None:
        self._provider = provider
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.create_server((address, port), family=family, backlog=64)
        self._server = serve.BoundedServer(sock, self._answer, "metrics", read_head=True)
        self._address = sock.getsockname()

    @property
    def port(self) -> int:
        return int(self._address[1])

    def start(self) -> None:
        self._server.start()
        LOG.info("Serving Prometheus metrics on http://%s:%d/metrics", self._address[0], self.port)

    def stop(self) -> None:
        self._server.stop()

    def _answer(self, conn: socket.socket, head: bytes) -> None:
        deadline = time.monotonic() + serve.CONNECTION_TIMEOUT
        method, path = _request_line(head)
        if method not in ("GET", "HEAD"):
            status, body = "405 Method Not Allowed", b"only GET\n"
        elif path.split("?")[0] != "/metrics":
            status, body = "404 Not Found", b"not found: try /metrics\n"
        else:
            status, body = "200 OK", render(self._provider()).encode()
        LOG.debug("metrics: %s %.100r -> %s", method, path, status)
        reply = (
            f"HTTP/1.0 {status}\r\n"
            f"Content-Type: {_CONTENT_TYPE if status.startswith('200') else 'text/plain'}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        serve.send_all(conn, reply + (body if method != "HEAD" else b""), deadline)


def _request_line(head: bytes) -> tuple[str, str]:
    """Method and path of an HTTP request head (empty strings when it has none)."""
    parts = head.split(b"\n", 1)[0].decode("latin-1").split()
    if len(parts) not in (2, 3):
        return "", ""
    return parts[0], parts[1]
