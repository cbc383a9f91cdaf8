#!/usr/bin/env python3
"""Benchmark: N ports created through the Neutron API, bound to one netagent host.

Starts the interop tier's neutron-server (Neutron 29 from PyPI, own database and vhost,
see tests/interop/neutron_server.py) and one simulated host namespace running the real
``netagent-agent`` (``[agent] source = neutron``, Linux bridge driver). Then:

1. creates a VXLAN network, a subnet 192.0.2.0/24 and N compute ports with
   ``binding:host_id`` = the host (bulk POSTs of 50);
2. creates the N taps at once in the host namespace (``tap<port[:11]>`` veth ends, as
   Nova would leave them);
3. measures the time from "all taps present" until the API shows every port ACTIVE, and
   counts the RPC calls and casts the agent sent meanwhile (oslo.messaging's
   "Calling RPC method" debug lines in the agent's log, by method).

Prints one JSON line of figures. Needs root, RabbitMQ and MariaDB; cleans up everything it
created (namespaces, agent, server, database, vhost) also on failure. Example::

    sudo .venv/bin/python tools/bench/neutron_ports.py --ports 200
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.fullstack import harness  # noqa: E402
from tests.interop import cloud, neutron_server  # noqa: E402
from tests.interop.api import NeutronApi  # noqa: E402

HOST = "bench-host"
TUNNEL_IP = "198.18.0.1"
_RPC_LINE = re.compile(r"Calling RPC method (\w+) on target ([\w.-]+)")
#: oslo.log keeps oslo.messaging at INFO by default; its debug line is what we count.
LOG_LEVELS = "oslo_messaging=DEBUG,amqp=WARN,amqplib=WARN,kombu=WARN,stevedore=WARN"


def rpc_calls(log: Path, offset: int) -> collections.Counter[str]:
    """RPC methods the agent sent after byte ``offset`` of its log."""
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    return collections.Counter(m.group(1) for m in _RPC_LINE.finditer(text))


def create_taps(netns: str, ports: list[dict[str, Any]], mtu: int) -> None:
    """All taps in one ``ip -batch``: ``tap<id[:11]>`` with a peer carrying the port's MAC."""
    lines = []
    for index, port in enumerate(ports):
        tap = harness.vmctl.tap_name(port["id"])
        peer = f"nbv{index:05d}"
        lines += [
            f"link add {tap} mtu {mtu} type veth peer name {peer} mtu {mtu}",
            f"link set {peer} address {port['mac_address']} up",
            f"link set {tap} up",
        ]
    subprocess.run(
        ["ip", "-n", netns, "-batch", "-"],
        input="\n".join(lines) + "\n",
        text=True,
        check=True,
        capture_output=True,
    )


def start_agent(fab: cloud.InteropFabric, host: harness.Host, args: argparse.Namespace) -> None:
    fab.write_agent_config(host)
    with host.config_file.open("a") as f:
        f.write(f"[DEFAULT]\ndefault_log_levels = {LOG_LEVELS}\n")
        f.write(f"[neutron]\nrpc_resources_processing_step = {args.step}\n")
    if args.agent_launcher is None:
        host.start_agent()
        return
    out = (host.workdir / f"{host.name}.stdout").open("ab")
    cmd = [sys.executable, args.agent_launcher, "--config-file", str(host.config_file)]
    host.process = subprocess.Popen(
        ["ip", "netns", "exec", host.netns, *cmd],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out.close()


def wait_active(api: NeutronApi, network_id: str, count: int, timeout: float) -> float:
    """Poll until ``count`` ports of the network are ACTIVE; returns the time it took."""
    start = time.monotonic()
    while True:
        ports = api.get(f"/v2.0/ports?network_id={network_id}&fields=id&fields=status")["ports"]
        active = sum(1 for p in ports if p["status"] == "ACTIVE")
        if active >= count:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"only {active}/{count} ports ACTIVE after {timeout:.0f}s")
        time.sleep(0.2)


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    with neutron_server.running(workdir) as server:
        return _measure(args, workdir, server)


def _measure(
    args: argparse.Namespace, workdir: Path, server: neutron_server.NeutronServer
) -> dict[str, Any]:
    fab = cloud.InteropFabric(workdir, server)
    try:
        api = server.api()
        fab.start()
        host = fab.add_host(HOST, TUNNEL_IP)
        start_agent(fab, host, args)
        neutron_server.wait_until(
            "the agent alive",
            lambda: any(a["alive"] for a in api.agents(host=HOST)),
            timeout=60,
        )
        net = api.plain_network("bench")
        offset = host.log_file.stat().st_size if host.log_file.exists() else 0
        t0 = time.monotonic()
        ports: list[dict[str, Any]] = []
        for first in range(0, args.ports, 50):
            ports += api.create_many(
                "port",
                [
                    {
                        "network_id": net["id"],
                        "device_owner": "compute:nova",
                        "device_id": f"bench-vm-{i}",
                        "binding:host_id": HOST,
                    }
                    for i in range(first, min(first + 50, args.ports))
                ],
            )
        t_ports = time.monotonic() - t0
        bound = sum(1 for p in ports if p["binding:vif_type"] == "tap")
        t1 = time.monotonic()
        create_taps(host.netns, ports, net["mtu"])
        t_taps = time.monotonic() - t1
        t_active = wait_active(api, net["id"], args.ports, args.timeout)
        time.sleep(1)  # let the last outcome calls reach the log
        calls = rpc_calls(host.log_file, offset)
        return {
            "bench": "neutron_ports",
            "ports": args.ports,
            "bound_tap": bound,
            "create_ports_s": round(t_ports, 2),
            "create_taps_s": round(t_taps, 3),
            "all_active_after_taps_s": round(t_active, 2),
            "rpc_calls_total": sum(calls.values()),
            "rpc_calls": dict(sorted(calls.items())),
            "rpc_resources_processing_step": args.step,
            "neutron": server.timings,
        }
    except Exception:
        print(server.diagnostics() + fab.diagnostics(), file=sys.stderr)
        raise
    finally:
        fab.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ports", type=int, default=200, help="ports to create (≤ 250)")
    parser.add_argument(
        "--step", type=int, default=20, help="agent's rpc_resources_processing_step"
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for ACTIVE")
    parser.add_argument(
        "--agent-launcher",
        help="python script to run instead of netagent-agent (takes --config-file)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.ports <= 250:
        parser.error("--ports must be 1..250 (one /24 subnet)")
    with tempfile.TemporaryDirectory(prefix="netagent-bench-") as tmp:
        print(json.dumps(run(args, Path(tmp))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
