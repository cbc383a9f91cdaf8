"""Prometheus metrics: the status document rendered in the text exposition format.

Served over HTTP (``GET /metrics``) on ``[agent] metrics_listen`` when it is set. The
numbers come from the same status document ``netagent-status`` shows, so the two never
disagree. Only the standard library is used (``http.server`` in a daemon thread).
"""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

LOG = logging.getLogger(__name__)

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
    """``GET /metrics`` over HTTP in a daemon thread."""

    def __init__(self, address: str, port: int, provider: StatusProvider) -> None:
        self._provider = provider
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = render(outer._provider()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                LOG.debug("metrics: " + format, *args)

        self._server = http.server.ThreadingHTTPServer((address, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        LOG.info(
            "Serving Prometheus metrics on http://%s:%d/metrics",
            self._server.server_address[0],
            self.port,
        )

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
