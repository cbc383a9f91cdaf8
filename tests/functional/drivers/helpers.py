"""Helpers of the Linux bridge driver's functional tests: iproute2 read-backs, model objects.

Kernel state is read back with iproute2's JSON output, independently of the code under
test. Addresses are from 198.18.0.0/15 (underlay) and 192.0.2.0/24 (tenant).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
import uuid
from typing import Any

from netagent.drivers.base import RemotePort
from netagent.model.network import Network, NetworkType
from netagent.model.port import Port

LOCAL_IP = "198.18.0.1"
PEER_B = ipaddress.ip_address("198.18.0.2")
PEER_C = ipaddress.ip_address("198.18.0.3")
PEER_D = ipaddress.ip_address("198.18.0.4")
ZERO = "00:00:00:00:00:00"


def sh(netns: str, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["ip", "-n", netns, *args], capture_output=True, text=True)
    if check and proc.returncode:
        raise AssertionError(f"ip {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def links(netns: str) -> dict[str, dict[str, Any]]:
    return {d["ifname"]: d for d in json.loads(sh(netns, "-d", "-j", "link", "show") or "[]")}


def fdb(netns: str, device: str) -> set[tuple[str, str]]:
    out = subprocess.run(
        ["bridge", "-n", netns, "-j", "fdb", "show", "dev", device],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {(e["mac"], e["dst"]) for e in json.loads(out or "[]") if "dst" in e}


def add_nic(netns: str, name: str) -> None:
    """A stand-in NIC (this kernel has no dummy module): a veth end, peer ``x-<name>``."""
    sh(netns, "link", "add", name, "type", "veth", "peer", "name", ("x-" + name)[:15])


def is_up(dev: dict[str, Any]) -> bool:
    return "UP" in dev["flags"]


def network(
    vni: int | None = 1001, mtu: int = 1450, kind: str = "vxlan", physnet: str | None = None
) -> Network:
    return Network(
        id=str(uuid.uuid4()),
        name="",
        network_type=NetworkType(kind),
        segmentation_id=vni,
        physical_network=physnet,
        mtu=mtu,
    )


def port(net: Network, admin_state_up: bool = True) -> Port:
    mac = "fa:16:3e:" + ":".join(f"{b:02x}" for b in uuid.uuid4().bytes[:3])
    return Port(
        id=str(uuid.uuid4()),
        network_id=net.id,
        mac_address=mac,
        host="host-a",
        admin_state_up=admin_state_up,
    )


def remote(mac: str, tunnel: ipaddress.IPv4Address, *ips: str) -> RemotePort:
    addresses = tuple(ipaddress.ip_address(ip) for ip in ips)
    return RemotePort(mac_address=mac, ip_addresses=addresses, tunnel_ip=tunnel)


def brq(net: Network) -> str:
    return "brq" + net.id[:11]


class Monitor:
    """``ip monitor link neigh`` in a namespace: every link/FDB/neighbour change."""

    def __init__(self, netns: str) -> None:
        self.proc = subprocess.Popen(
            ["ip", "-n", netns, "monitor", "link", "neigh"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        time.sleep(0.3)

    def stop(self) -> str:
        time.sleep(0.3)
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=5)
        return out


def add_tap(netns: str, p: Port, up: bool = True) -> None:
    """What Nova leaves: the tap (here a veth end), MTU 1500, not in any bridge."""
    sh(netns, "link", "add", p.device_name, "type", "veth", "peer", "name", "vm" + p.id[:8])
    if up:
        sh(netns, "link", "set", p.device_name, "up")
