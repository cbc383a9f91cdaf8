#!/usr/bin/env python3
"""Standalone demo: two simulated hosts run netagent on the example state; their VMs ping.

Everything lives in network namespaces this script creates (``nademo-*``) and removes at
the end (also on Ctrl-C or failure): an underlay bridge (198.18.0.0/24), one namespace per
host in ``etc/netagent/examples/state.yaml`` running a real ``netagent-agent`` with its own
config and state directory, and one "VM" namespace per VM port (``tools/vmctl.py`` makes
the ``tap…`` device as Nova would). The root namespace is not touched.

Run as root after ``tools/setup-host.sh`` (``tools/demo.sh`` does both).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import vmctl  # noqa: E402

from netagent.sources import statefile  # noqa: E402

PREFIX = "nademo-"
UNDERLAY_NS = PREFIX + "ul"


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def ip(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("ip", "-n", ns, *args, check=check)


def cleanup(agents: list[subprocess.Popen[bytes]]) -> None:
    for proc in agents:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    for name in sorted(os.listdir("/run/netns") if os.path.isdir("/run/netns") else []):
        if name.startswith(PREFIX):
            sh("ip", "netns", "delete", name, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", default=str(ROOT / "etc/netagent/examples/state.yaml"))
    parser.add_argument("--l2-driver", default="linuxbridge")
    parser.add_argument("--firewall-driver", default="iptables")
    parser.add_argument("--keep", action="store_true", help="leave everything running")
    parser.add_argument(
        "--bin-dir",
        default=str(Path(sys.executable).parent),
        help="where netagent-agent and netagent-status are (e.g. a venv the wheel went into)",
    )
    args = parser.parse_args()

    result = statefile.load_state(args.state)
    for error in result.errors:
        print(f"state file: skipped invalid object: {error}")
    state = result.state
    workdir = Path(tempfile.mkdtemp(prefix="netagent-demo-"))
    agents: list[subprocess.Popen[bytes]] = []
    cleanup([])  # leftovers of an interrupted earlier run
    try:
        sh("ip", "netns", "add", UNDERLAY_NS)
        ip(UNDERLAY_NS, "link", "add", "br-ul", "type", "bridge")
        ip(UNDERLAY_NS, "link", "set", "br-ul", "up")
        vms: list[tuple[str, str, list[str]]] = []  # (vm namespace, host, addresses)
        for index, agent in enumerate(sorted(state.agents.values(), key=lambda a: a.host)):
            host_ns = PREFIX + agent.host
            sh("ip", "netns", "add", host_ns)
            ip(host_ns, "link", "set", "lo", "up")
            ip(UNDERLAY_NS, "link", "add", f"ul{index}", "type", "veth", "peer", "name", "ul")
            ip(UNDERLAY_NS, "link", "set", "ul", "netns", host_ns)
            ip(UNDERLAY_NS, "link", "set", f"ul{index}", "master", "br-ul", "up")
            ip(host_ns, "addr", "add", f"{agent.tunneling_ip}/24", "dev", "ul")
            ip(host_ns, "link", "set", "ul", "up")
            # the flat "public" network's uplink: a veth whose far end stands for the wire
            ip(host_ns, "link", "add", "phys1", "type", "veth", "peer", "name", "phys1-wire")
            ip(host_ns, "link", "set", "phys1-wire", "up")
            conf = workdir / f"{agent.host}.conf"
            conf.write_text(
                f"[DEFAULT]\nhost = {agent.host}\nstate_path = {workdir / agent.host}\n"
                f"log_file = {workdir / agent.host}.log\n"
                f"[agent]\nsource = file\nl2_driver = {args.l2_driver}\n"
                f"firewall_driver = {args.firewall_driver}\n"
                f"[file_source]\npath = {Path(args.state).resolve()}\n"
                f"[linuxbridge]\nlocal_ip = {agent.tunneling_ip}\n"
                "physical_interface_mappings = physnet1:phys1\n"
            )
            agent_bin = str(Path(args.bin_dir) / "netagent-agent")
            agents.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", host_ns, agent_bin, "--config-file", str(conf)]
                )
            )
            print(
                f"host {agent.host}: namespace {host_ns}, underlay {agent.tunneling_ip}, "
                f"agent pid {agents[-1].pid}, log {workdir / agent.host}.log"
            )
            for port in state.ports.values():
                if port.host != agent.host or not port.device_owner.startswith("compute:"):
                    continue
                network = state.networks[port.network_id]
                addresses = []
                for fixed in port.fixed_ips:
                    subnet = state.subnets[fixed.subnet_id]
                    addresses.append(f"{fixed.ip_address}/{subnet.cidr.prefixlen}")
                vm_ns = PREFIX + "vm-" + port.id[:8]
                vmctl.create_vm(
                    vm_ns=vm_ns,
                    port_id=port.id,
                    mac=port.mac_address,
                    ips=addresses,
                    host_ns=host_ns,
                    mtu=network.mtu,
                )
                vms.append((vm_ns, agent.host, [a.split("/")[0] for a in addresses]))
                print(f"  VM {vm_ns}: port {port.id} tap {port.device_name} {addresses}")
        ok = True
        for src_ns, src_host, _ in vms:
            for dst_ns, dst_host, addresses in vms:
                if src_ns == dst_ns:
                    continue
                for address in addresses:
                    ok &= ping(src_ns, address, f"{src_host} -> {dst_host}")
        for agent in sorted(state.agents.values(), key=lambda a: a.host):
            status = sh(
                str(Path(args.bin_dir) / "netagent-status"),
                "--state-path",
                str(workdir / agent.host),
                check=False,
            )
            print(f"--- netagent-status on {agent.host}\n{status.stdout}{status.stderr}")
        if args.keep:
            print(f"--keep: leaving namespaces {PREFIX}* and agents running ({workdir})")
            agents.clear()
            return 0 if ok else 1
        return 0 if ok else 1
    finally:
        if not args.keep:
            cleanup(agents)
            shutil.rmtree(workdir, ignore_errors=True)


def ping(ns: str, address: str, label: str, timeout: float = 30.0) -> bool:
    version = ipaddress.ip_address(address).version
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = sh(
            "ip",
            "netns",
            "exec",
            ns,
            "ping",
            f"-{version}",
            "-c",
            "1",
            "-W",
            "1",
            address,
            check=False,
        )
        if result.returncode == 0:
            rtt = (
                result.stdout.split("time=")[-1].split("\n")[0] if "time=" in result.stdout else ""
            )
            print(f"ping {label} {address}: ok {rtt}")
            return True
    print(f"ping {label} {address}: FAILED after {timeout:.0f} s")
    return False


if __name__ == "__main__":
    sys.exit(main())
