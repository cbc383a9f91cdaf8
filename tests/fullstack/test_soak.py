"""Bounded soak, CI variant (issue 15 item 7): ``tools/soak.py`` runs the same code for 30
minutes at 1,000 ports.

Host-a's agent (100 ports, iptables firewall) under churn twice a second for two minutes:
20 s of warm-up, then its resident memory, open fds, threads, the host's links,
iptables/ip6tables/ebtables rules, ipset members and forwarding entries, and the ports
the agent's status and the desired state disagree on, sampled every 10 s. No metric may
grow beyond ``trends.THRESHOLDS`` over the window (least-squares slope): the churn has no
drift, so the kernel counts must stay flat, and a leaked fd or desired-state copy per
change shows as a trend (checked with deliberately leaking builds: doc/reliability.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.fullstack import churn

PORTS = int(os.environ.get("NETAGENT_SOAK_PORTS", "100"))
SECONDS = float(os.environ.get("NETAGENT_SOAK_SECONDS", "100"))


def test_soak_has_no_growth_trend(tmp_path: Path) -> None:
    scale = churn.Scale(ports=PORTS, networks=4, pairs=2, rate=2.0)
    with churn.churn_fabric(tmp_path, scale) as fabric:
        try:
            fabric.build()
            result = churn.soak(fabric, SECONDS, warmup=20.0)
        except BaseException:
            print(fabric.diagnostics())
            raise
        print(json.dumps(result))
        assert result["agent_alive"], fabric.diagnostics()
        assert result["churn_errors"] == []
        assert result["samples"] >= SECONDS // 10
        # the churn really ran through the window
        assert result["changes"] >= 2.0 * (SECONDS + 20) * 0.8
        growing = {m: t for m, t in result["trend"].items() if t["growth_trend"]}
        assert growing == {}, json.dumps(growing)
