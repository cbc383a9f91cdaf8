"""Wiring benchmark: N ports on a bridge, netagent's linux layer against one `ip -batch`.

Each side gets a fresh namespace of its own (created and deleted here, one after the
other, with a pause between so that one side's background load does not slow the other).
Per port: a veth pair, one end enslaved to the bridge, MTU on both ends, both up, one
IPv4 address from 198.18.0.0/15 on the far end. Prints one JSON line::

    {"ports": N, "netagent_s": ..., "ip_batch_s": ..., "ratio": ...}

``--style ops`` (default) queues the same seven operations per port as the ip script;
``--style fused`` folds master/MTU/up into the veth creation request, as a driver would.
Run as root: ``.venv/bin/python tools/bench/wiring.py --ports 500``.
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

from netagent.linux import ip_lib, netns

BRIDGE = "brbench"
MTU = 1450


def _address(i: int) -> ipaddress.IPv4Interface:
    base = int(ipaddress.IPv4Address("198.18.0.1"))
    return ipaddress.IPv4Interface(f"{ipaddress.IPv4Address(base + i)}/15")


def wire_netagent(namespace: str, ports: int, style: str) -> float:
    start = time.perf_counter()
    with ip_lib.batch(namespace) as b:
        b.create_bridge(BRIDGE, up=True)
        for i in range(ports):
            near, far = f"vb{i}", f"vf{i}"
            if style == "fused":
                b.create_veth(
                    near, far, master=BRIDGE, mtu=MTU, peer_mtu=MTU, up=True, peer_up=True
                )
            else:
                b.create_veth(near, far)
                b.set_master(near, BRIDGE)
                b.set_mtu(near, MTU)
                b.set_mtu(far, MTU)
                b.set_up(near)
                b.set_up(far)
            b.add_address(far, _address(i))
    return time.perf_counter() - start


def wire_ip_batch(namespace: str, ports: int) -> float:
    lines = [f"link add {BRIDGE} type bridge", f"link set {BRIDGE} up"]
    for i in range(ports):
        near, far = f"vb{i}", f"vf{i}"
        lines += [
            f"link add {near} type veth peer name {far}",
            f"link set {near} master {BRIDGE}",
            f"link set {near} mtu {MTU}",
            f"link set {far} mtu {MTU}",
            f"link set {near} up",
            f"link set {far} up",
            f"addr add {_address(i)} dev {far}",
        ]
    script = "\n".join(lines) + "\n"
    start = time.perf_counter()
    subprocess.run(["ip", "-n", namespace, "-batch", "-"], input=script, text=True, check=True)
    return time.perf_counter() - start


def _check(namespace: str, ports: int) -> None:
    links = {link.name: link for link in ip_lib.list_devices(namespace=namespace)}
    assert sum(1 for link in links.values() if link.master == BRIDGE) == ports
    assert all(links[f"vf{i}"].up and links[f"vf{i}"].mtu == MTU for i in range(ports))
    assert len(ip_lib.list_addresses(namespace=namespace, family=4)) == ports + 1  # + lo


def _measure(side: str, ports: int, style: str, settle: float) -> float:
    """Wire in a fresh namespace, check, delete it, let the kernel settle."""
    namespace = f"nabench-{side[0]}-{uuid.uuid4().hex[:8]}"
    netns.create(namespace)
    try:
        if side == "netagent":
            seconds = wire_netagent(namespace, ports, style)
        else:
            seconds = wire_ip_batch(namespace, ports)
        _check(namespace, ports)
    finally:
        netns.delete(namespace, missing_ok=True)
    # Up veths on a bridge keep the CPU busy (IPv6 DAD/MLD floods, then the namespace's
    # asynchronous cleanup); do not let that land on the other side's measurement.
    time.sleep(settle)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ports", type=int, default=500)
    parser.add_argument("--style", choices=("ops", "fused"), default="ops")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds; medians")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds between runs")
    args = parser.parse_args()
    agent_runs: list[float] = []
    ip_runs: list[float] = []
    for round_no in range(args.rounds):
        order = ("ip", "netagent") if round_no % 2 == 0 else ("netagent", "ip")
        for side in order:
            seconds = _measure(side, args.ports, args.style, args.settle)
            (agent_runs if side == "netagent" else ip_runs).append(seconds)
    agent_s = statistics.median(agent_runs)
    ip_s = statistics.median(ip_runs)
    figures = {
        "ports": args.ports,
        "style": args.style,
        "rounds": args.rounds,
        "netagent_s": round(agent_s, 3),
        "ip_batch_s": round(ip_s, 3),
        "ratio": round(agent_s / ip_s, 3),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
