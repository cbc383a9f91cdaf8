#!/usr/bin/env python3
"""Benchmark: restarts of a real netagent-agent under steady churn (issue 15 item 1).

Builds the churn scenario of ``tests/fullstack/churn.py`` (``--ports`` ports on host-a in
``--networks`` VXLAN networks with the iptables firewall, ``--pairs`` VM pairs pinging
every 50 ms, half of them across to host-b), then while the desired state changes
``--rate`` times a second, SIGKILLs host-a's agent and starts it again ``--restarts``
times, ``--settle`` seconds apart. Prints one JSON line per restart (seconds until the
first full sync and until caught up, i.e. every port desired at the start and still
desired is reported converged; links deleted and created again or moved to another
bridge) and a summary line: echo requests lost per pair, the churn done, and the
differences between host-a's kernel state and what a fresh agent on an empty host builds
for the final state (goal: none). Exits 1 when a goal is missed.

Run as root from the repository: ``.venv/bin/python tools/bench/restart_churn.py``.
Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fullstack import churn


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--settle", type=float, default=20.0, help="seconds between kills")


def scenario(fabric: churn.ChurnFabric, args: argparse.Namespace) -> dict[str, Any]:
    return churn.restart_under_churn(fabric, args.restarts, args.settle, churn.emit_json)


def verdict(result: dict[str, Any], args: argparse.Namespace) -> bool:
    traffic = result.pop("traffic")
    churn.emit_json(
        {
            "phase": "summary",
            "ports": args.ports,
            "rate": args.rate,
            "pairs_cross_host": sum(1 for t in traffic if t["cross_host"]),
            "lost_per_pair": [t["lost"] for t in traffic],
            **result,
        }
    )
    return (
        result["lost"] == 0
        and not result["differences"]
        and not result["churn_errors"]
        and not any(r["links_recreated"] or r["links_rewired"] for r in result["restarts"])
    )


def main() -> int:
    return churn.cli(__doc__, "restart-churn-", add_arguments, scenario, verdict)


if __name__ == "__main__":
    sys.exit(main())
