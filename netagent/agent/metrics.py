"""Prometheus metrics: the status document exposed through ``prometheus-client``.

Served over HTTP (``GET /metrics``) on ``[agent] metrics_listen`` when it is set. The
numbers come from the same status document ``netagent-status`` shows, so the two never
disagree. :class:`NetagentCollector` turns that document into metric families; it is
registered on the client's default registry (``prometheus_client.REGISTRY``, which also
carries the process, platform and GC collectors) while a :class:`MetricsServer` runs, and
the registry's text exposition is answered by a minimal HTTP/1.0 responder on the bounded
server of :mod:`netagent.agent.serve`, so local users cannot exhaust its threads (the
client's own ``start_http_server`` has no such bound).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from netagent.agent import serve

LOG = logging.getLogger(__name__)

StatusProvider = Callable[[], dict[str, Any]]

_INTEGRITY = (
    "Integrity checks (firewall chains, hooks and ipsets, the L2 host guard, bridges, "
    "uplinks, taps and VXLAN forwarding entries)"
)

#: status counter key, metric name (the client appends ``_total`` to counters), type, help
_COUNTERS = (
    ("passes", "netagent_passes", "counter", "Reconciliation passes run."),
    ("full_syncs", "netagent_full_syncs", "counter", "Full resyncs run."),
    ("failures", "netagent_failures", "counter", "Resource applies that failed."),
    (
        "driver_errors",
        "netagent_driver_errors",
        "counter",
        "Driver calls that raised (all resources of the batch failed).",
    ),
    (
        "integrity_checks",
        "netagent_integrity_checks",
        "counter",
        f"{_INTEGRITY} run (kernel state compared with what was applied).",
    ),
    (
        "integrity_repairs",
        "netagent_integrity_repairs",
        "counter",
        f"{_INTEGRITY} that found kernel state changed by someone else and rewrote it.",
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


class NetagentCollector(Collector):
    """The metric families of one status document, fetched anew on every scrape."""

    def __init__(self, provider: StatusProvider) -> None:
        self._provider = provider

    def describe(self) -> list[Metric]:
        # The names without calling the provider: registering must not need a status.
        kinds = [(name, kind) for _key, name, kind, _help in _COUNTERS]
        kinds += [(name, "gauge") for name in _GAUGES]
        return [_family(name, kind, "", []) for name, kind in kinds]

    def collect(self) -> Iterator[Metric]:
        doc = self._provider()
        host = str(doc.get("host", ""))
        counters = doc.get("counters", {})
        for key, name, kind, help_text in _COUNTERS:
            value = counters.get(key)
            if value is not None:  # not known yet: no sample rather than a made-up 0
                yield _family(name, kind, help_text, ["host"], [([host], float(value))])
        yield _family(
            "netagent_converged",
            "gauge",
            "1 when everything wanted is applied.",
            ["host"],
            [([host], 1.0 if doc.get("converged") else 0.0)],
        )
        ports = doc.get("ports", [])
        states = {
            "wired": sum(1 for p in ports if p.get("wired")),
            "filtered": sum(1 for p in ports if p.get("filtered")),
            "waiting_for_device": sum(1 for p in ports if p.get("waiting_for_device")),
            "error": sum(1 for p in ports if p.get("error")),
            "total": len(ports),
        }
        yield _family(
            "netagent_ports",
            "gauge",
            "Local ports by state.",
            ["host", "state"],
            [([host, state], float(n)) for state, n in states.items()],
        )
        networks = doc.get("networks", [])
        yield _family(
            "netagent_networks",
            "gauge",
            "Networks on this host by readiness.",
            ["host", "ready"],
            [
                (
                    [host, str(r).lower()],
                    float(sum(1 for n in networks if bool(n.get("ready")) is r)),
                )
                for r in (True, False)
            ],
        )
        yield _family(
            "netagent_source_errors",
            "gauge",
            "Objects the source rejected as invalid.",
            ["host"],
            [([host], float(len(doc.get("source_errors", []))))],
        )


_GAUGES = ("netagent_converged", "netagent_ports", "netagent_networks", "netagent_source_errors")


def _family(
    name: str,
    kind: str,
    help_text: str,
    labels: list[str],
    samples: list[tuple[list[str], float]] | None = None,
) -> Metric:
    family: CounterMetricFamily | GaugeMetricFamily
    if kind == "counter":
        family = CounterMetricFamily(name, help_text, labels=labels)
    else:
        family = GaugeMetricFamily(name, help_text, labels=labels)
    for values, value in samples or []:
        family.add_metric(values, value)
    return family


def render(doc: dict[str, Any]) -> str:
    """The netagent metrics of ``doc`` alone, in the Prometheus text format."""
    registry = CollectorRegistry()
    registry.register(NetagentCollector(lambda: doc))
    return generate_latest(registry).decode()


class MetricsServer:
    """``GET /metrics`` over HTTP, from a :class:`~netagent.agent.serve.BoundedServer`.

    Answers the default registry of ``prometheus_client``: the netagent collector
    (registered by :meth:`start`, removed by :meth:`stop`) next to the client's process,
    platform and GC collectors. One request per connection. A request must arrive whole
    within :data:`~netagent.agent.serve.CONNECTION_TIMEOUT` seconds; until it has, it holds
    no thread. At most :data:`~netagent.agent.serve.MAX_HANDLERS` answers are sent at once.
    """

    def __init__(
        self,
        address: str,
        port: int,
        provider: StatusProvider,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self._collector = NetagentCollector(provider)
        self._registry = registry
        self._registered = False
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.create_server((address, port), family=family, backlog=64)
        self._server = serve.BoundedServer(sock, self._answer, "metrics", read_head=True)
        self._address = sock.getsockname()

    @property
    def port(self) -> int:
        return int(self._address[1])

    def start(self) -> None:
        """Register the collector and serve.

        :raises ValueError: another running server's collector is on the same registry.
        """
        self._registry.register(self._collector)
        self._registered = True
        self._server.start()
        LOG.info("Serving Prometheus metrics on http://%s:%d/metrics", self._address[0], self.port)

    def stop(self) -> None:
        """Stop serving and unregister the collector. Idempotent."""
        self._server.stop()
        if self._registered:
            with contextlib.suppress(KeyError):
                self._registry.unregister(self._collector)
            self._registered = False

    def _answer(self, conn: socket.socket, head: bytes) -> None:
        deadline = time.monotonic() + serve.CONNECTION_TIMEOUT
        method, path = _request_line(head)
        content_type = "text/plain"
        if method not in ("GET", "HEAD"):
            status, body = "405 Method Not Allowed", b"only GET\n"
        elif path.split("?")[0] != "/metrics":
            status, body = "404 Not Found", b"not found: try /metrics\n"
        else:
            status, body = "200 OK", generate_latest(self._registry)
            content_type = CONTENT_TYPE_LATEST
        LOG.debug("metrics: %s %.100r -> %s", method, path, status)
        reply = (
            f"HTTP/1.0 {status}\r\n"
            f"Content-Type: {content_type}\r\n"
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
