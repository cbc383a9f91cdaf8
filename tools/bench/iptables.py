#!/usr/bin/env python3
"""Benchmark the iptables manager: full apply of N chains x R rules, then one chain changed.

Runs in a fresh namespace of its own (deleted at the end) and prints one JSON line; the
one-chain time is the median of ``--repeat`` changes, each to a different chain, made
``--pause`` seconds apart (an isolated change, as the agent makes them).
``one_chain_b2b_s`` is the median of as many changes made back to back: with nf_tables
each of those waits for the kernel to release the previous commit's deleted rules (one
RCU grace period per namespace, see doc/iptables.md)::

    tools/bench/iptables.py --chains 500 --rules 20 [--backend nft|legacy|auto]

Needs root. Never touches the root namespace's iptables.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from netagent.linux.iptables import (
    ACCEPT,
    DROP,
    RETURN,
    Conntrack,
    DPortRange,
    IptablesManager,
    Jump,
    Physdev,
    Proto,
    Rule,
    SrcNet,
)


def chain_rules(index: int, rules: int, variant: int = 0) -> list[Rule]:
    out = [Rule((Conntrack(frozenset({"ESTABLISHED", "RELATED"})),), ACCEPT)]
    for r in range(rules - 2):
        net = ipaddress.ip_network(f"198.51.100.{(index + r) % 256}/32")
        port = 1000 + r + variant
        out.append(Rule((Proto(6), SrcNet(net), DPortRange(port, port)), ACCEPT))
    out.append(Rule((), DROP))
    return out[:rules]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chains", type=int, default=500)
    parser.add_argument("--rules", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5, help="one-chain changes (median)")
    parser.add_argument(
        "--pause", type=float, default=0.1, help="seconds between one-chain changes"
    )
    parser.add_argument("--backend", default="nft", choices=["nft", "legacy", "auto"])
    args = parser.parse_args()
    ns = f"nabench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        mgr = IptablesManager(ns, backend=args.backend, verify_interval=None)
        names = [f"na-b-{i:05d}" for i in range(args.chains)]
        for i, name in enumerate(names):
            mgr.set_chain(4, "filter", name, chain_rules(i, args.rules))
        jumps = [
            Rule((Physdev(out=f"tap{i:011d}", is_bridged=True),), Jump(name))
            for i, name in enumerate(names)
        ]
        mgr.set_jumps(4, "filter", "FORWARD", [*jumps, Rule((), RETURN)])
        t0 = time.perf_counter()
        full = mgr.apply()
        t_full = time.perf_counter() - t0
        assert full.ok, full.failed
        samples: dict[float, list[float]] = {args.pause: [], 0.0: []}
        for k in range(2 * args.repeat):
            pause = args.pause if k < args.repeat else 0.0
            time.sleep(pause)
            changed = names[(args.chains // 2 + k) % args.chains]
            mgr.set_chain(4, "filter", changed, chain_rules(k, args.rules, 1))
            t0 = time.perf_counter()
            one = mgr.apply()
            samples[pause].append(time.perf_counter() - t0)
            assert one.ok, one.failed
        t_one = statistics.median(samples[args.pause])
        t_b2b = statistics.median(samples[0.0])
        t0 = time.perf_counter()
        mgr.verify()
        t_verify = time.perf_counter() - t0
        one_text = one.inputs[0][2]
        print(
            json.dumps(
                {
                    "bench": "iptables",
                    "backend": mgr.backend,
                    "chains": args.chains,
                    "rules_per_chain": args.rules,
                    "full_apply_s": round(t_full, 4),
                    "one_chain_apply_s": round(t_one, 4),
                    "ratio": round(t_one / t_full, 4),
                    "one_chain_b2b_s": round(t_b2b, 4),
                    "full_input_bytes": len(full.inputs[0][2]),
                    "one_chain_input_bytes": len(one_text),
                    "one_chain_input_chains": sum(
                        1 for line in one_text.splitlines() if line.startswith((":", "-F "))
                    ),
                    "verify_s": round(t_verify, 4),
                }
            )
        )
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
