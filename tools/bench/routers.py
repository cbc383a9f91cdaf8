#!/usr/bin/env python3
"""Benchmark the namespace L3 driver: N routers from empty to applied, one floating IP
associated, and a restart (a new driver instance with none of the old one's netlink
sockets, as a new agent process) that must change nothing, run ``--restarts`` times.

Each router has a gateway on a flat external network (198.18.0.0/15), one internal subnet
(192.0.2.0/24, the same in every router: they are isolated) and 2 floating IPs. The driver
runs against a host namespace of its own; no agent, no L2 driver (the taps are left
unwired; announcements are tried once and dropped, so the first driver's retries do not
run during the restart). Prints one JSON line per N, with the 1-minute load average
before and after (the figures move with the machine's load); everything is deleted at the
end::

    tools/bench/routers.py --routers 10 50 200 [--backend auto|nft|legacy] [--restarts 3]

Needs root. Never touches the root namespace.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from netagent.drivers.l3namespace import NamespaceL3Driver
from netagent.drivers.l3namespace.announce import Announcer
from netagent.model import DesiredState
from netagent.model.network import Network, NetworkType, Subnet
from netagent.model.port import FixedIP, Port
from netagent.model.router import FloatingIP, Router, RouterPort
from netagent.privileged import nlsocket

EXT = Network(str(uuid.uuid4()), "", NetworkType.FLAT, None, "ext", 1500)
EXT_SUB = Subnet(
    str(uuid.uuid4()),
    EXT.id,
    ipaddress.ip_network("198.18.0.0/15"),
    4,
    ipaddress.ip_address("198.18.0.1"),
)


class Conf:
    class iptables:  # noqa: N801 - mimics the oslo.config group
        backend = "auto"
        verify_interval = 60.0


def _mac(n: int, kind: int) -> str:
    return f"fa:16:3e:{kind:02x}:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}"


def build(count: int) -> tuple[list[Router], DesiredState]:
    routers, networks, subnets = [], [EXT], [EXT_SUB]
    base = int(ipaddress.ip_address("198.18.1.0"))
    for n in range(count):
        rid = str(uuid.uuid4())
        net = Network(str(uuid.uuid4()), "", NetworkType.VXLAN, 1000 + n, None, 1450)
        sub = Subnet(
            str(uuid.uuid4()),
            net.id,
            ipaddress.ip_network("192.0.2.0/24"),
            4,
            ipaddress.ip_address("192.0.2.1"),
        )
        networks.append(net)
        subnets.append(sub)
        gw_ip = ipaddress.ip_address(base + 3 * n)
        gw = Port(str(uuid.uuid4()), EXT.id, _mac(n, 1), (FixedIP(EXT_SUB.id, gw_ip),), "bench")
        rp = Port(
            str(uuid.uuid4()),
            net.id,
            _mac(n, 2),
            (FixedIP(sub.id, ipaddress.ip_address("192.0.2.1")),),
            "bench",
        )
        fips = tuple(
            FloatingIP(
                str(uuid.uuid4()),
                ipaddress.ip_address(base + 3 * n + 1 + k),
                ipaddress.ip_address(f"192.0.2.{10 + k}"),
                str(uuid.uuid4()),
                rid,
                EXT.id,
            )
            for k in range(2)
        )
        routers.append(
            Router(
                id=rid,
                gateway=RouterPort(gw, (EXT_SUB,), 1500),
                interfaces=(RouterPort(rp, (sub,), 1450),),
                floating_ips=fips,
                external_network_id=EXT.id,
            )
        )
    return routers, DesiredState.build(networks=networks, subnets=subnets, routers=routers)


def ifindexes(routers: list[Router]) -> dict[str, Any]:
    result = {}
    for router in routers:
        ns = f"qrouter-{router.id}"
        out = subprocess.run(
            ["ip", "-n", ns, "-j", "link", "show"], capture_output=True, text=True, check=True
        ).stdout
        result[ns] = sorted((d["ifname"], d["ifindex"]) for d in json.loads(out))
    return result


def driver_for(host: str, ledger: str) -> NamespaceL3Driver:
    driver = NamespaceL3Driver(Conf, netns=host, ledger_dir=ledger)
    driver.announcer = Announcer(driver._announce, attempts=1)
    return driver


def run(count: int, backend: str, restarts: int) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    host = f"bench-l3-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", host], check=True)
    Conf.iptables.backend = backend
    routers, state = build(count)
    try:
        with tempfile.TemporaryDirectory() as ledger:
            driver = driver_for(host, ledger)
            start = time.monotonic()
            out = driver.apply_routers(routers, state)
            applied = time.monotonic() - start
            assert not out.failed, out.failed
            before = ifindexes(routers)
            # one floating IP associated to another fixed IP
            first = routers[0]
            moved = FloatingIP(
                first.floating_ips[0].id,
                first.floating_ips[0].floating_ip_address,
                ipaddress.ip_address("192.0.2.99"),
                str(uuid.uuid4()),
                first.id,
                EXT.id,
            )
            changed = Router(
                **{
                    **{f: getattr(first, f) for f in first.__dataclass_fields__},
                    "floating_ips": (moved, first.floating_ips[1]),
                }
            )
            start = time.monotonic()
            assert not driver.apply_routers([changed], state).failed
            fip_change = time.monotonic() - start
            routers[0] = changed
            # restart: a new driver over what exists, without the old one's sockets
            restart = []
            for _ in range(restarts):
                for router in routers:
                    nlsocket.close_socket(f"qrouter-{router.id}")
                again = driver_for(host, ledger)
                start = time.monotonic()
                assert not again.apply_routers(routers, state).failed
                restart.append(time.monotonic() - start)
            recreated = sum(1 for ns, links in ifindexes(routers).items() if before[ns] != links)
            again.cleanup()
    finally:
        for router in routers:
            subprocess.run(
                ["ip", "netns", "delete", f"qrouter-{router.id}"], check=False, capture_output=True
            )
        subprocess.run(["ip", "netns", "delete", host], check=False)
    return {
        "bench": "routers",
        "backend": backend,
        "routers": count,
        "apply_all_s": round(applied, 3),
        "floating_ip_change_s": round(fip_change, 4),
        "restart_no_change_s": round(restart[0], 3),
        "restart_no_change_min_s": round(min(restart), 3),
        "restart_no_change_median_s": round(statistics.median(restart), 3),
        "routers_with_recreated_devices": recreated,
        "load_1m_before": round(load_before, 2),
        "load_1m_after": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--routers", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--backend", default="auto", choices=["auto", "nft", "legacy"])
    parser.add_argument("--restarts", type=int, default=3)
    args = parser.parse_args()
    # the bench leaves the taps unwired: the announcements wait for nothing, quietly
    logging.basicConfig(level=logging.ERROR)
    for count in args.routers:
        print(json.dumps(run(count, args.backend, args.restarts)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
