#!/usr/bin/env python3
"""Bounded soak: a real netagent-agent under steady churn, watched for growth (issue 15 item 7).

Builds the churn scenario of ``tests/fullstack/churn.py`` (``--ports`` ports on host-a in
``--networks`` VXLAN networks with the iptables firewall, VM pairs pinging), lets the
desired state change ``--rate`` times a second for ``--warmup`` seconds, then for
``--minutes`` samples every ``--interval`` seconds host-a's agent (resident memory, open
file descriptors, threads) and its kernel objects (links, iptables/ip6tables/ebtables
rules, ipset members, forwarding entries). Adds and deletes alternate, so every count
should stay flat. Prints one JSON line per sample and a summary with each metric's
least-squares slope (per minute), its growth over the window and the growth allowed
(``trends.THRESHOLDS``); exits 1 if any metric has a growth trend ("no growth trend"
otherwise).

Run as root from the repository: ``.venv/bin/python tools/soak.py --minutes 30``.
Everything it creates is removed at the end, also when it is stopped early with SIGINT
or SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fullstack import churn


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before sampling")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")


def scenario(fabric: churn.ChurnFabric, args: argparse.Namespace) -> dict[str, Any]:
    seconds = args.minutes * 60
    return churn.soak(fabric, seconds, args.warmup, args.interval, churn.emit_json)


def verdict(result: dict[str, Any], args: argparse.Namespace) -> bool:
    trends = [m for m, t in result["trend"].items() if t["growth_trend"]]
    ok: bool = result["agent_alive"] and not result["churn_errors"] and not trends
    text = "no growth trend" if not trends else "growth trend: " + ", ".join(trends)
    churn.emit_json({"phase": "summary", "verdict": text, **result})
    return ok


def main() -> int:
    return churn.cli(__doc__, "soak-", add_arguments, scenario, verdict)


if __name__ == "__main__":
    sys.exit(main())
