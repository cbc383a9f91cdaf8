"""The soak's samples of an agent and its host, and their trend (least-squares slope)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from tests.fullstack import harness
from tests.fullstack.harness import Host
from tests.fullstack.kernel_state import run_in


def _proc_status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def sample_resources(host: Host) -> dict[str, float]:
    """The agent's memory, fds and threads, and the host's kernel object counts."""
    assert host.process is not None
    pid = host.process.pid
    proc = _proc_status(pid)
    # the least of three reads: an iptables-restore pipe or a reaper thread of the moment
    # is not a leak, and a leak is in every read
    fds, threads = len(os.listdir(f"/proc/{pid}/fd")), int(proc["Threads"])
    for _ in range(2):
        time.sleep(0.2)
        fds = min(fds, len(os.listdir(f"/proc/{pid}/fd")))
        threads = min(threads, int(_proc_status(pid)["Threads"]))
    rules = 0
    for tool in ("iptables-nft-save", "ip6tables-nft-save", "ebtables-nft-save"):
        rules += sum(1 for line in run_in(host.netns, tool).splitlines() if line.startswith("-A "))
    ipsets = run_in(host.netns, "ipset", "save").splitlines()
    fdb = json.loads(harness.run("bridge", "-n", host.netns, "-j", "fdb", "show").stdout or "[]")
    return {
        "rss_kib": float(proc["VmRSS"].split()[0]),
        "fds": float(fds),
        "threads": float(threads),
        "links": float(len(harness.links(host.netns))),
        "rules": float(rules),
        "ipset_members": float(sum(1 for line in ipsets if line.startswith("add "))),
        "fdb_entries": float(len(fdb)),
    }


#: A metric has a growth trend when its least-squares slope, over the sampled window,
#: adds more than ``max(absolute, relative * mean)``: an fd or a thread per minute is a
#: leak, a few KiB of allocator noise is not.
THRESHOLDS: dict[str, tuple[float, float]] = {
    "rss_kib": (4096.0, 0.03),
    "fds": (3.0, 0.0),
    "threads": (2.0, 0.0),
    "links": (5.0, 0.01),
    "rules": (40.0, 0.01),
    "ipset_members": (5.0, 0.01),
    "fdb_entries": (10.0, 0.01),
    "stale_ports": (5.0, 0.0),
}


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points (0 for fewer than two distinct x)."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def trend(samples: list[tuple[float, dict[str, float]]]) -> dict[str, dict[str, Any]]:
    """Per metric: slope per minute, growth over the window, allowed growth, verdict.

    :param samples: (seconds since start, metrics) pairs.
    """
    if not samples:
        return {}
    window = (samples[-1][0] - samples[0][0]) / 60.0
    out: dict[str, dict[str, Any]] = {}
    for metric, (absolute, relative) in THRESHOLDS.items():
        points = [(t / 60.0, values[metric]) for t, values in samples]
        per_minute = slope(points)
        mean = sum(y for _, y in points) / len(points)
        allowed = max(absolute, relative * mean)
        growth = per_minute * window
        out[metric] = {
            "first": points[0][1],
            "last": points[-1][1],
            "mean": round(mean, 1),
            "slope_per_minute": round(per_minute, 3),
            "growth_over_window": round(growth, 1),
            "allowed_growth": round(allowed, 1),
            "growth_trend": growth > allowed,
        }
    return out
