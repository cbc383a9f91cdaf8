"""Prometheus exposition (prometheus-client) and the HTTP endpoint (loopback only)."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from netagent.agent import metrics

DOC: dict[str, Any] = {
    "host": 'cmp"1',
    "converged": False,
    "counters": {
        "passes": 7,
        "full_syncs": 2,
        "failures": 1,
        "driver_errors": 0,
        "pending_retries": 1,
        "integrity_checks": 40,
        "integrity_repairs": 3,
        "last_full_sync_duration": 0.25,
        "last_pass_duration": None,
    },
    "ports": [
        {"id": "a", "wired": True, "filtered": True, "waiting_for_device": False, "error": None},
        {"id": "b", "wired": False, "filtered": True, "waiting_for_device": True, "error": None},
        {
            "id": "c",
            "wired": False,
            "filtered": False,
            "waiting_for_device": False,
            "error": "device vanished",
        },
    ],
    "networks": [{"id": "n", "ready": True}],
    "source_errors": ["x"],
}


def samples(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_render_counts_ports_and_escapes_labels() -> None:
    got = samples(metrics.render(DOC))
    host = 'host="cmp\\"1"'
    assert got[f"netagent_passes_total{{{host}}}"] == 7
    assert got[f"netagent_integrity_checks_total{{{host}}}"] == 40
    assert got[f"netagent_integrity_repairs_total{{{host}}}"] == 3
    assert got[f"netagent_last_full_sync_seconds{{{host}}}"] == 0.25
    assert f"netagent_last_pass_seconds{{{host}}}" not in got  # unknown yet: no sample
    assert got[f"netagent_converged{{{host}}}"] == 0
    assert got[f'netagent_ports{{{host},state="wired"}}'] == 1
    assert got[f'netagent_ports{{{host},state="filtered"}}'] == 2
    assert got[f'netagent_ports{{{host},state="waiting_for_device"}}'] == 1
    assert got[f'netagent_ports{{{host},state="error"}}'] == 1
    assert got[f'netagent_ports{{{host},state="total"}}'] == 3
    assert got[f'netagent_networks{{{host},ready="true"}}'] == 1
    assert got[f"netagent_source_errors{{{host}}}"] == 1


def test_every_sample_has_help_and_type() -> None:
    text = metrics.render(DOC)
    names = {line.split("{")[0] for line in text.splitlines() if not line.startswith("#")}
    for name in names:
        assert f"# TYPE {name} " in text and f"# HELP {name} " in text
    # The client names a counter's HELP/TYPE lines after its _total sample.
    assert "# TYPE netagent_passes_total counter" in text
    assert "# TYPE netagent_pending_retries gauge" in text
    assert (
        "# HELP netagent_integrity_repairs_total Integrity checks (firewall chains, hooks" in text
    )


def test_render_parses_back_with_the_client_parser() -> None:
    families = {f.name: f for f in text_string_to_metric_families(metrics.render(DOC))}
    assert families["netagent_passes"].type == "counter"
    assert families["netagent_ports"].type == "gauge"
    assert families["netagent_passes"].samples[0].labels == {"host": 'cmp"1'}


def test_http_endpoint_serves_metrics_and_404s_elsewhere() -> None:
    server = metrics.MetricsServer("127.0.0.1", 0, lambda: DOC)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
            assert response.status == 200
            assert "text/plain" in response.headers["Content-Type"]
            assert "netagent_passes_total" in response.read().decode()
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(base + "/", timeout=5)
        assert info.value.code == 404
    finally:
        server.stop()


def get(port: int, method: str = "GET") -> tuple[str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", method=method)
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.headers["Content-Type"], response.read().decode()


def test_endpoint_serves_the_default_registry_with_the_process_collector() -> None:
    server = metrics.MetricsServer("127.0.0.1", 0, lambda: DOC)
    server.start()
    try:
        content_type, body = get(server.port)
        assert content_type == prometheus_client.CONTENT_TYPE_LATEST
        got = samples(body)
        assert got["process_cpu_seconds_total"] > 0
        assert got["process_resident_memory_bytes"] > 0
        assert got['netagent_passes_total{host="cmp\\"1"}'] == 7
        assert get(server.port, "HEAD")[1] == ""
    finally:
        server.stop()
    # Stopped: the netagent collector has left the default registry, the process one stays.
    after = prometheus_client.generate_latest().decode()
    assert "netagent_passes_total" not in after
    assert "process_cpu_seconds_total" in after


def test_servers_one_after_another_register_and_unregister_cleanly() -> None:
    for passes in (1, 2):
        doc = {**DOC, "counters": {"passes": passes}}
        server = metrics.MetricsServer("127.0.0.1", 0, lambda d=doc: d)
        server.start()
        try:
            assert samples(get(server.port)[1])['netagent_passes_total{host="cmp\\"1"}'] == passes
        finally:
            server.stop()
            server.stop()  # idempotent


def test_a_second_running_server_on_the_same_registry_is_refused() -> None:
    first = metrics.MetricsServer("127.0.0.1", 0, lambda: DOC)
    second = metrics.MetricsServer("127.0.0.1", 0, lambda: DOC)
    first.start()
    try:
        with pytest.raises(ValueError, match="Duplicated timeseries"):
            second.start()
    finally:
        second.stop()
        first.stop()
