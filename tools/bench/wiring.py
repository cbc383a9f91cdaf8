"""Wiring benchmark: the Linux bridge driver against `ip -batch` making the same changes.

For each size N (``--ports 250,500,1000,2000``), two fresh namespaces (one per side, made
one after the other) get N taps the way libvirt leaves them (persistent tap devices, up,
not enslaved, made by ``ip -batch``, not timed) and ``--networks`` VXLAN networks. Timed:

* ``driver``: the production path, :class:`LinuxBridgeDriver` ``ensure_networks`` then
  ``plug_ports`` in one pass (``begin_pass`` first, as the agent does), after a warm-up
  call that writes the host guard (ebtables, not part of wiring);
* ``ip_batch``: one ``ip -batch`` with the same changes: per network a bridge (MTU, MAC, up)
  and a VXLAN device (enslaved, up), IPv6 off on both (``/proc/sys`` writes), and per port
  one ``link set tapX master brqY mtu M up``.

Both sides are checked afterwards (every tap enslaved, with the MTU). Each side runs
``--repeat`` times, alternating; the best run counts (medians are printed too). One JSON line
per size::

    {"ports": N, "networks": M, "repeat": R, "driver_s": ..., "ip_batch_s": ...,
     "ratio": ..., "driver_us_per_port": ..., ...}

Run as root from the repository: ``.venv/bin/python tools/bench/wiring.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from oslo_config import cfg

from netagent.common import names
from netagent.conf import linuxbridge as lb_conf
from netagent.drivers.base import NetworkPlan, PortPlan
from netagent.drivers.linuxbridge import LinuxBridgeDriver
from netagent.drivers.linuxbridge.neighbours import bridge_mac
from netagent.model.network import Network, NetworkType
from netagent.model.port import Port
from netagent.privileged import nsenter

LOCAL_IP = "198.18.0.1"
MTU = 1450
VXLAN_PORT = 4789


def ip_batch(namespace: str, lines: list[str]) -> None:
    subprocess.run(
        ["ip", "-n", namespace, "-batch", "-"],
        input="\n".join(lines) + "\n",
        text=True,
        check=True,
        capture_output=True,
    )


def make_host(ports: int, networks: int) -> tuple[str, list[NetworkPlan], list[PortPlan]]:
    """A namespace with an underlay address and N unwired taps; the plans to wire them."""
    namespace = "nabench-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    nets = [
        Network(
            id=str(uuid.uuid4()),
            name="",
            network_type=NetworkType.VXLAN,
            segmentation_id=6000 + n,
            physical_network=None,
            mtu=MTU,
        )
        for n in range(networks)
    ]
    port_plans = []
    for i in range(ports):
        net = nets[i % networks]
        mac = "fa:16:3e:" + ":".join(f"{b:02x}" for b in i.to_bytes(3, "big"))
        port = Port(id=str(uuid.uuid4()), network_id=net.id, mac_address=mac, host="host-a")
        port_plans.append(PortPlan(port=port, network=net))
    lines = [
        "link add ul0 type veth peer name ul0p",
        f"addr add {LOCAL_IP}/15 dev ul0",
        "link set ul0 up",
    ]
    for plan in port_plans:
        tap = plan.port.device_name
        lines += [f"tuntap add dev {tap} mode tap", f"link set {tap} up"]
    ip_batch(namespace, lines)
    return namespace, [NetworkPlan(network=n, tunnel_peers={}) for n in nets], port_plans


def wire_driver(namespace: str, nets: list[NetworkPlan], ports: list[PortPlan]) -> float:
    conf = cfg.ConfigOpts()
    lb_conf.register_opts(conf)
    conf([], project="netagent-bench")
    conf.set_override("local_ip", LOCAL_IP, group="linuxbridge")
    conf.set_override("vxlan_udp_port", VXLAN_PORT, group="linuxbridge")
    driver = LinuxBridgeDriver(conf, netns=namespace)
    driver.initialize()
    driver.ensure_networks([])  # writes the host guard
    start = time.perf_counter()
    driver.begin_pass()
    done = driver.ensure_networks(nets)
    plugged = driver.plug_ports(ports)
    elapsed = time.perf_counter() - start
    if done.failed or plugged.failed:
        raise RuntimeError(f"driver failed: {done.failed} {plugged.failed}")
    return elapsed


def _disable_ipv6(devices: list[str]) -> None:
    for device in devices:
        Path(f"/proc/sys/net/ipv6/conf/{device}/disable_ipv6").write_text("1")


def wire_ip_batch(namespace: str, nets: list[NetworkPlan], ports: list[PortPlan]) -> float:
    create: list[str] = []
    lines: list[str] = []
    devices: list[str] = []
    for plan in nets:
        net = plan.network
        bridge = names.network_bridge(net.id)
        assert net.segmentation_id is not None
        vxlan = names.vxlan_device(net.segmentation_id)
        mac = bridge_mac(net.id, LOCAL_IP)
        create += [
            f"link add {bridge} mtu {MTU} address {mac} type bridge stp_state 0 "
            "forward_delay 0 ageing_time 30000",
            f"link add {vxlan} mtu {MTU} type vxlan id {net.segmentation_id} "
            f"local {LOCAL_IP} dstport {VXLAN_PORT} nolearning",
        ]
        lines += [
            f"link set {bridge} up",
            f"link set {vxlan} master {bridge} up",
        ]
        devices += [bridge, vxlan]
    for plan in ports:
        bridge = names.network_bridge(plan.network.id)
        lines.append(f"link set {plan.port.device_name} master {bridge} mtu {MTU} up")
    start = time.perf_counter()
    ip_batch(namespace, create)
    nsenter.call_in_namespace(namespace, _disable_ipv6, devices)
    ip_batch(namespace, lines)
    return time.perf_counter() - start


def check(namespace: str, ports: list[PortPlan]) -> None:
    out = subprocess.run(
        ["ip", "-n", namespace, "-j", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    links = {item["ifname"]: item for item in json.loads(out)}
    for plan in ports:
        link = links[plan.port.device_name]
        if link.get("master") != names.network_bridge(plan.network.id) or link["mtu"] != MTU:
            raise RuntimeError(f"{plan.port.device_name} not wired: {link}")


def measure(size: int, networks: int, repeat: int) -> dict[str, float | int]:
    """Best of ``repeat`` runs of each side, alternating (the machine is shared)."""
    result: dict[str, float | int] = {"ports": size, "networks": networks, "repeat": repeat}
    times: dict[str, list[float]] = {"driver": [], "ip_batch": []}
    for _ in range(repeat):
        for side, wire in (("driver", wire_driver), ("ip_batch", wire_ip_batch)):
            namespace, nets, ports = make_host(size, networks)
            try:
                time.sleep(0.5)  # let the setup's kernel work settle
                times[side].append(wire(namespace, nets, ports))
                check(namespace, ports)
            finally:
                subprocess.run(["ip", "netns", "delete", namespace], check=False)
    for side, values in times.items():
        result[f"{side}_s"] = round(min(values), 4)
        result[f"{side}_median_s"] = round(sorted(values)[len(values) // 2], 4)
        result[f"{side}_us_per_port"] = round(1e6 * min(values) / size, 1)
    result["ratio"] = round(float(result["driver_s"]) / float(result["ip_batch_s"]), 3)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ports", default="250,500,1000,2000", help="comma-separated sizes")
    parser.add_argument("--networks", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; best is kept")
    args = parser.parse_args()
    for size in (int(item) for item in args.ports.split(",")):
        print(json.dumps(measure(size, args.networks, args.repeat)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
