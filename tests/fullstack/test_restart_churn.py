"""Restart under churn (issue 15 item 1), at CI scale: ``tools/bench/restart_churn.py``
runs the same scenario at 1,000 ports for the figures.

Host-a's agent is killed (SIGKILL) and started again twice while the desired state
changes twice a second (ports added, deleted, moved between groups, admin state flipped,
address pairs and rules changed) and 6 VM pairs ping every 50 ms; each time it catches up
(every port desired at its start reported converged). Afterwards: host-a converged on the
final state; the sample pairs lost no echo request; no link that lived through a restart was
deleted and created again or moved to another bridge; and host-a's kernel state (links,
bridge ports, forwarding and neighbour entries, iptables/ip6tables/ebtables, ipsets) is
exactly what a fresh agent on an empty host builds for the final state.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.fullstack import churn

PORTS = int(os.environ.get("NETAGENT_CHURN_PORTS", "100"))
RESTARTS = 2


def test_restart_under_churn_loses_nothing(tmp_path: Path) -> None:
    scale = churn.Scale(ports=PORTS, networks=4, pairs=6, rate=2.0)
    with churn.churn_fabric(tmp_path, scale) as fabric:
        try:
            fabric.build()
            result = churn.restart_under_churn(fabric, restarts=RESTARTS, settle=5.0)
        except BaseException:
            print(fabric.diagnostics())
            raise
        print(json.dumps({k: v for k, v in result.items() if k != "traffic"}))
        assert result["churn_errors"] == []
        # the churn really ran, with every kind of change, across the restarts
        assert len(result["changes"]) == 7 and min(result["changes"].values()) >= 2
        assert len(result["restarts"]) == RESTARTS
        for restart in result["restarts"]:
            assert restart["links_recreated"] == [], restart
            assert restart["links_rewired"] == [], restart
        for pair in result["traffic"]:
            assert pair["answered"] > 100, pair  # traffic flowed the whole time
            assert pair["lost"] == 0, pair
        assert result["differences"] == [], "\n".join(result["differences"][:40])
