#!/usr/bin/env python3
"""Benchmark: cost of the L2 drift check and of the ipset check with nothing changed.

In a fresh namespace: ``--ports`` taps spread over ``--networks`` VXLAN networks, each
with one remote host and one remote port (a flooding entry, a static entry, an ARP
suppression entry), wired by the Linux bridge driver; and ``--sets`` netagent ipsets
holding ``--ports`` addresses between them, written by the ipset manager. Then each check
runs ``--repeat`` times (it must find nothing) and the figures are printed as one JSON
line (median and maximum milliseconds). Run as root from the repository:
``.venv/bin/python tools/bench/drift_check.py``. The namespace is removed at the end.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import statistics
import subprocess
import time
import uuid

from oslo_config import cfg

from netagent.conf import linuxbridge as lb_conf
from netagent.drivers.base import NetworkPlan, PortPlan, RemotePort
from netagent.drivers.linuxbridge import LinuxBridgeDriver
from netagent.linux.ipset import IpsetManager
from netagent.model.network import Network, NetworkType
from netagent.model.port import Port

LOCAL_IP = "198.18.0.1"
REMOTE_IP = ipaddress.ip_address("198.18.0.2")


def _ip_batch(netns: str, lines: list[str]) -> None:
    subprocess.run(
        ["ip", "-n", netns, "-batch", "-"], input="\n".join(lines) + "\n", text=True, check=True
    )


def _timed(fn: object, repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
        assert not result, f"the check found something: {result}"
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--networks", type=int, default=10)
    parser.add_argument("--sets", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="profile one L2 check")
    args = parser.parse_args()
    netns = f"nabench-drift-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        _ip_batch(
            netns,
            [
                "link add eth-ul type veth peer name eth-ul-peer",
                f"addr add {LOCAL_IP}/15 dev eth-ul",
                "link set eth-ul up",
                "link set lo up",
            ],
        )
        nets = [
            Network(
                id=str(uuid.uuid4()),
                name="",
                network_type=NetworkType.VXLAN,
                segmentation_id=3000 + i,
                physical_network=None,
                mtu=1450,
            )
            for i in range(args.networks)
        ]
        plans = [
            NetworkPlan(
                net,
                {"remote": REMOTE_IP},
                (
                    RemotePort(
                        f"fa:16:3f:00:00:{i:02x}",
                        (ipaddress.ip_address("192.0.2.250"),),
                        REMOTE_IP,
                    ),
                ),
            )
            for i, net in enumerate(nets)
        ]
        ports = []
        for i in range(args.ports):
            net = nets[i % len(nets)]
            mac = f"fa:16:3e:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}"
            ports.append(
                PortPlan(Port(id=str(uuid.uuid4()), network_id=net.id, mac_address=mac), net)
            )
        _ip_batch(
            netns, [f"tuntap add dev {p.port.device_name} mode tap" for p in ports]
        )  # fmt: skip
        _ip_batch(netns, [f"link set {p.port.device_name} up" for p in ports])
        conf = cfg.ConfigOpts()
        lb_conf.register_opts(conf)
        conf([], project="netagent-bench")
        conf.set_override("local_ip", LOCAL_IP, group="linuxbridge")
        driver = LinuxBridgeDriver(conf, netns=netns)
        driver.initialize()
        assert not driver.ensure_networks(plans).failed
        assert not driver.plug_ports(ports).failed
        l2 = _timed(driver.find_drift, args.repeat)
        if args.profile:
            import cProfile  # noqa: PLC0415

            cProfile.runctx("driver.find_drift()", globals(), locals(), sort="cumtime")
        sets = IpsetManager(netns)
        for s in range(args.sets):
            members = [
                str(ipaddress.ip_address("198.19.0.0") + i)
                for i in range(s, args.ports, args.sets)
            ]
            sets.set_members(f"na4bench{s}", 4, members)
        assert not sets.apply().failed
        ipset = _timed(sets.check, args.repeat)
        print(
            json.dumps(
                {
                    "ports": args.ports,
                    "networks": args.networks,
                    "sets": args.sets,
                    "l2_find_drift": l2,
                    "ipset_check": ipset,
                }
            )
        )
    finally:
        subprocess.run(["ip", "netns", "delete", netns], check=False)


if __name__ == "__main__":
    main()
