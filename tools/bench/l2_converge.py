#!/usr/bin/env python3
"""Benchmark: a real netagent-agent (Linux bridge driver) wiring N ports on one host.

For each size N of ``--ports`` (default 250,500,1000,2000), in a fresh namespace acting as
the host: an underlay address, N taps made as libvirt leaves them (persistent tap devices,
up, not enslaved), and a state file with the ports spread
over ``--networks`` VXLAN networks, each also having one port on a remote host (so every
network gets a flooding entry and a static FDB entry). Then:

1. ``cold``: start the agent, time until ``netagent-status --check`` says converged;
2. ``restart``: stop it (SIGKILL), start it again with everything wired, time until
   converged, counting the kernel objects created/changed/deleted meanwhile (``ip monitor
   link neigh address`` in the namespace; goal 0) and comparing ifindexes.

Prints one JSON line per phase and size, with the cost per port (of the whole wait and of
the agent's own full sync) and the agent's resident memory once converged. Run as root
from the repository: ``.venv/bin/python tools/bench/l2_converge.py``. Everything it
creates is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
LOCAL_IP = "198.18.0.1"
REMOTE_IP = "198.18.0.2"


def ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", netns, *args], check=True, capture_output=True)


def ip_batch(netns: str, lines: list[str]) -> None:
    subprocess.run(
        ["ip", "-n", netns, "-batch", "-"],
        input="\n".join(lines) + "\n",
        text=True,
        check=True,
        capture_output=True,
    )


def link_indexes(netns: str) -> dict[str, int]:
    out = subprocess.run(
        ["ip", "-n", netns, "-j", "link", "show"], check=True, capture_output=True, text=True
    ).stdout
    return {item["ifname"]: item["ifindex"] for item in json.loads(out)}


def build_state(ports: int, networks: int) -> tuple[dict[str, Any], list[str]]:
    nets, subnets, port_list, taps = [], [], [], []
    for n in range(networks):
        net_id, subnet_id = str(uuid.uuid4()), str(uuid.uuid4())
        nets.append(
            {
                "id": net_id,
                "provider:network_type": "vxlan",
                "provider:segmentation_id": 5000 + n,
                "mtu": 1450,
            }
        )
        subnets.append(
            {
                "id": subnet_id,
                "network_id": net_id,
                "ip_version": 4,
                "cidr": f"192.0.2.{n * 16}/28" if networks <= 16 else "192.0.2.0/24",
                "gateway_ip": None,
                "enable_dhcp": False,
            }
        )
        port_list.append(_port(net_id, "host-remote", 0xFFFF00 + n))
    for i in range(ports):
        net = nets[i % networks]
        port = _port(net["id"], "host-a", i)
        port_list.append(port)
        taps.append("tap" + port["id"][:11])
    state = {
        "agents": [
            {"host": "host-a", "configurations": {"tunneling_ip": LOCAL_IP}},
            {"host": "host-remote", "configurations": {"tunneling_ip": REMOTE_IP}},
        ],
        "networks": nets,
        "subnets": subnets,
        "ports": port_list,
    }
    return state, taps


def _port(network_id: str, host: str, n: int) -> dict[str, Any]:
    mac = "fa:16:3e:" + ":".join(f"{b:02x}" for b in n.to_bytes(3, "big"))
    return {
        "id": str(uuid.uuid4()),
        "network_id": network_id,
        "mac_address": mac,
        "binding:host_id": host,
        "device_owner": "compute:nova",
    }


class Agent:
    def __init__(self, netns: str, workdir: Path) -> None:
        self.netns, self.workdir = netns, workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.workdir / "agent.stdout").open("ab")
        self.proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.netns,
                str(BIN / "netagent-agent"),
                "--config-file",
                str(self.workdir / "agent.conf"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def status(self) -> dict[str, Any] | None:
        proc = subprocess.run(
            [
                str(BIN / "netagent-status"),
                "--state-path",
                str(self.workdir / "state"),
                "--json",
                "--timeout",
                "2",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            return None
        doc: dict[str, Any] = json.loads(proc.stdout)
        return doc

    def wait_converged(self, started: float, timeout: float = 120) -> tuple[float, Any]:
        while time.monotonic() - started < timeout:
            doc = self.status()
            if doc and doc.get("converged"):
                return time.monotonic() - started, doc
            time.sleep(0.05)
        raise RuntimeError(f"not converged after {timeout}s; see {self.workdir}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(15)


def rss_kib(pid: int) -> int | None:
    """Resident set size of a process, KiB (``VmRSS``)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def run_size(ports: int, networks: int) -> None:
    """Cold start and restart of one agent with ``ports`` ports; prints two JSON lines."""
    netns = "nabench-" + uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix="l2bench-"))
    agent = Agent(netns, workdir)
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        ip(netns, "link", "set", "lo", "up")
        ip(netns, "link", "add", "ul0", "type", "veth", "peer", "name", "ul0p")
        ip(netns, "addr", "add", f"{LOCAL_IP}/15", "dev", "ul0")
        ip(netns, "link", "set", "ul0", "up")
        state, taps = build_state(ports, networks)
        (workdir / "state.json").write_text(json.dumps(state))
        (workdir / "state").mkdir()
        (workdir / "agent.conf").write_text(
            f"[DEFAULT]\nhost = host-a\nstate_path = {workdir / 'state'}\n"
            f"log_file = {workdir / 'agent.log'}\n"
            f"[agent]\nl2_driver = linuxbridge\n[file_source]\npath = {workdir / 'state.json'}\n"
            f"[linuxbridge]\nlocal_ip = {LOCAL_IP}\n"
        )
        # persistent taps, up, not enslaved: what libvirt leaves for a VM
        ip_batch(
            netns,
            [f"tuntap add dev {t} mode tap" for t in taps] + [f"link set {t} up" for t in taps],
        )

        started = time.monotonic()
        agent.start()
        elapsed, doc = agent.wait_converged(started)
        counters = doc.get("counters", {})
        assert agent.proc is not None
        print(
            json.dumps(
                {
                    "phase": "cold",
                    "ports": ports,
                    "networks": networks,
                    "seconds_to_converged": round(elapsed, 3),
                    "ms_per_port": round(1000 * elapsed / ports, 3),
                    "agent_full_sync_seconds": counters.get("last_full_sync_duration"),
                    "full_sync_ms_per_port": _per_port(counters, ports),
                    "agent_rss_kib": rss_kib(agent.proc.pid),
                }
            ),
            flush=True,
        )

        before = link_indexes(netns)
        agent.stop(signal.SIGKILL)
        monitor = subprocess.Popen(
            ["ip", "-n", netns, "-o", "monitor", "link", "neigh", "address"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        time.sleep(0.3)
        started = time.monotonic()
        agent.start()
        elapsed, doc = agent.wait_converged(started)
        time.sleep(0.3)
        monitor.terminate()
        events = [line for line in monitor.communicate(timeout=5)[0].splitlines() if line]
        after = link_indexes(netns)
        counters = doc.get("counters", {})
        print(
            json.dumps(
                {
                    "phase": "restart",
                    "ports": ports,
                    "seconds_to_converged": round(elapsed, 3),
                    "ms_per_port": round(1000 * elapsed / ports, 3),
                    "agent_full_sync_seconds": counters.get("last_full_sync_duration"),
                    "full_sync_ms_per_port": _per_port(counters, ports),
                    "agent_rss_kib": rss_kib(agent.proc.pid),
                    "kernel_events": len(events),
                    "links_created": len(set(after) - set(before)),
                    "links_deleted": len(set(before) - set(after)),
                    "links_recreated": sum(
                        1 for n in before if n in after and after[n] != before[n]
                    ),
                    "sample_events": events[:5],
                }
            ),
            flush=True,
        )
    finally:
        agent.stop(signal.SIGTERM)
        subprocess.run(["ip", "netns", "delete", netns], check=False)


def _per_port(counters: dict[str, Any], ports: int) -> float | None:
    seconds = counters.get("last_full_sync_duration")
    return None if seconds is None else round(1000 * float(seconds) / ports, 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ports", default="250,500,1000,2000", help="comma-separated sizes")
    parser.add_argument("--networks", type=int, default=10)
    args = parser.parse_args()
    for size in (int(item) for item in args.ports.split(",")):
        run_size(size, args.networks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
