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
Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fullstack import churn


def emit(doc: dict[str, Any]) -> None:
    print(json.dumps(doc), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--networks", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--rate", type=float, default=2.0, help="changes per second")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before sampling")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    scale = churn.Scale(args.ports, args.networks, args.pairs, args.rate)
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    ok = False
    try:
        with churn.churn_fabric(workdir, scale) as fabric:
            fabric.build()
            result = churn.soak(fabric, args.minutes * 60, args.warmup, args.interval, emit)
        trends = [m for m, t in result["trend"].items() if t["growth_trend"]]
        ok = result["agent_alive"] and not result["churn_errors"] and not trends
        verdict = "no growth trend" if not trends else "growth trend: " + ", ".join(trends)
        emit({"phase": "summary", "verdict": verdict, **result})
    finally:
        if args.keep or not ok:
            print(f"work directory: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
