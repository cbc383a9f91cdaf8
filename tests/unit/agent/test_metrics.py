"""Prometheus rendering and the HTTP endpoint (loopback only)."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest

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
