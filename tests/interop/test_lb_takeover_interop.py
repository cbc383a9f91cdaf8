"""Taking over hosts wired by the real Neutron Linux bridge agent code, under traffic.

The "before" state is built by Neutron 25.2.3's own Linux bridge agent code (the last
release with that agent, from PyPI into its own cached virtualenv,
:func:`tests.interop.venv.lb_agent`), run inside each simulated host's namespace by
:mod:`tests.interop.lb_agent_build`: ``LinuxBridgeManager`` (``brq`` bridges, ``vxlan-<VNI>``
devices, l2population FDB), ``IptablesFirewallDriver`` with ipsets and conntrack zones,
and the ARP/MAC spoofing chains in ebtables. Then netagent-agent with ``[agent]
take_over_neutron_linuxbridge = true`` is started host by host while a VM pings the other
every 10 ms and a TCP connection echoes a message every 20 ms. Assertions are on packets:
no ping lost, the connection alive, the security group (ICMP and TCP/22 only) still
blocking TCP/80, spoofed sources still dropped; nothing of the old agent left
(``netagent-migrate-lb --verify``), devices adopted in place (same ifindexes), and a
second run changes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fullstack import harness
from tests.fullstack.harness import BIN, Fabric, Host, Vm, wait_for
from tests.interop import venv

HERE = Path(__file__).resolve().parent
SG = str(uuid.uuid4())
VNI = 1001
#: TCP ports the server VM listens on; the security group allows 22 only
ALLOWED, BLOCKED = 22, 80
SPOOFED = "192.0.2.99"
SAVES = (
    "iptables-nft-save",
    "ip6tables-nft-save",
    "iptables-legacy-save",
    "ip6tables-legacy-save",
)


def _neutron_rules() -> list[dict[str, Any]]:
    """The group's rules as the SG RPC hands them to the agent's firewall."""
    base = {"security_group_id": SG, "ethertype": "IPv4"}
    return [
        {**base, "direction": "egress"},
        {**base, "direction": "ingress", "protocol": "icmp"},
        {
            **base,
            "direction": "ingress",
            "protocol": "tcp",
            "port_range_min": ALLOWED,
            "port_range_max": ALLOWED,
        },
    ]


def _api_rules() -> list[dict[str, Any]]:
    """The same rules as the Neutron API (and netagent's state file) has them."""
    rules = []
    for rule in _neutron_rules():
        api = {k: v for k, v in rule.items() if k != "security_group_id"}
        rules.append({"id": str(uuid.uuid4()), **api})
    return rules


class LbFabric(Fabric):
    """The fullstack fabric with the security group on every port."""

    def state(self) -> dict[str, Any]:
        doc = super().state()
        doc["security_groups"] = [{"id": SG, "name": "ssh", "security_group_rules": _api_rules()}]
        for port in doc["ports"]:
            port["security_groups"] = [SG]
        return doc


@pytest.fixture
def fabric(tmp_path: Path) -> Iterator[LbFabric]:
    for name in harness.leftover_namespaces():
        harness.run("ip", "netns", "delete", name, check=False)
    fab = LbFabric(tmp_path)
    try:
        fab.start()
        yield fab
    finally:
        fab.close()


def _in(netns: str, *argv: str, check: bool = True, timeout: float = 60) -> str:
    proc = subprocess.run(
        ["ip", "netns", "exec", netns, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} in {netns} failed: {proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def _tools_path(fab: LbFabric, backend: str) -> str:
    """PATH for the Neutron code: its ``iptables*`` commands run ``backend``'s variant, as
    the host's alternatives would have them (ebtables stays nft: no legacy nat table)."""
    if backend == "nft":
        return os.environ["PATH"]
    tools = fab.workdir / "legacy-tools"
    tools.mkdir(exist_ok=True)
    for family in ("iptables", "ip6tables"):
        for suffix in ("", "-save", "-restore"):
            link = tools / f"{family}{suffix}"
            if not link.exists():
                link.symlink_to(f"/usr/sbin/{family}-legacy{suffix}")
    return f"{tools}:{os.environ['PATH']}"


def _build_with_neutron(
    python: Path, fab: LbFabric, host: Host, peers: list[Host], backend: str
) -> None:
    """Wire ``host``'s VMs with the Neutron LB agent's code, as its RPC loop would."""
    vms = [vm for vm in fab.vms.values() if vm.host is host]
    members = [[vm.address, vm.mac] for vm in fab.vms.values()]
    fdb: dict[str, list[list[str]]] = {}
    for peer in peers:
        remote = [[vm.mac, vm.address] for vm in fab.vms.values() if vm.host is peer]
        fdb[peer.tunnel_ip] = [["00:00:00:00:00:00", "0.0.0.0"], *remote]
    net = next(iter(fab.networks.values()))
    spec = {
        "caller_netns_inode": os.stat("/proc/self/ns/net").st_ino,
        "local_ip": host.tunnel_ip,
        "lock_path": str(fab.workdir / f"locks-{host.name}"),
        "networks": [{"id": net["id"], "vni": VNI, "mtu": net["mtu"]}],
        "security_groups": {SG: _neutron_rules()},
        "members": {SG: {"IPv4": members}},
        "ports": [
            {
                "id": vm.port_id,
                "device": vm.tap,
                "mac_address": vm.mac,
                "network_id": vm.network_id,
                "fixed_ips": [vm.address],
                "security_groups": [SG],
                "port_security_enabled": True,
                "allowed_address_pairs": [],
                "device_owner": "compute:nova",
            }
            for vm in vms
        ],
        "fdb": {net["id"]: fdb},
    }
    proc = subprocess.run(
        ["ip", "netns", "exec", host.netns, str(python), str(HERE / "lb_agent_build.py")],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PATH": _tools_path(fab, backend)},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


def _vxlan_port(host: Host) -> int:
    """The UDP port of the host's one ``vxlan-<VNI>`` (the old agent's ``udp_dstport``)."""
    (name,) = [n for n in harness.links(host.netns) if n.startswith("vxlan-")]
    dev = json.loads(harness.ip(host.netns, "-d", "-j", "link", "show", name).stdout)[0]
    return int(dev["linkinfo"]["info_data"]["port"])


def _old_agent_state(host: Host) -> list[str]:
    """What of the Neutron LB agent is in the host namespace, read with the tools."""
    found = [n for n in harness.links(host.netns) if n.startswith("vxlan-")]
    for tool in (*SAVES, "ebtables-nft-save -t nat"):
        text = _in(host.netns, *tool.split())
        found += sorted(set(re.findall(r"neutron[-A-Za-z0-9]+", text)))
    found += [s for s in _in(host.netns, "ipset", "list", "-n").split() if s.startswith("NIP")]
    return found


def _data_plane(host: Host) -> dict[str, str]:
    """The host's filters, sets and devices as the tools print them (no counters)."""
    state = {
        tool: "\n".join(
            re.sub(r"\[\d+:\d+\]", "[0:0]", line)
            for line in _in(host.netns, *tool.split()).splitlines()
            if line[:1] != "#"
        )
        for tool in (*SAVES, "ebtables-nft-save", "ipset save")
    }
    devices = json.loads(_in(host.netns, "ip", "-j", "link", "show"))
    state["links"] = json.dumps(
        sorted((d["ifname"], d["ifindex"], d.get("master"), d["flags"]) for d in devices)
    )
    return state


def _tcp_probe(vm: Vm, dst: str, port: int) -> bool:
    """A new connection to ``dst:port`` is accepted or refused (the SYN got through)."""
    code = (
        "import socket,sys\n"
        "s=socket.socket(); s.settimeout(1.5)\n"
        "try:\n s.connect((sys.argv[1], int(sys.argv[2]))); print('open')\n"
        "except ConnectionRefusedError: print('open')\n"
        "except OSError: print('blocked')\n"
    )
    out = _in(vm.netns, "python3", "-c", code, dst, str(port))
    return out.strip() == "open"


def _migrate_lb(host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ip", "netns", "exec", host.netns, str(BIN / "netagent-migrate-lb"), *args,
            "--config-file", str(host.config_file),
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _security_group_holds(fab: LbFabric, a: Vm, b: Vm) -> None:
    assert harness.can_ping(a.netns, b.address), "ICMP allowed by the group"
    assert _tcp_probe(a, b.address, ALLOWED), f"TCP/{ALLOWED} allowed by the group"
    assert not _tcp_probe(a, b.address, BLOCKED), f"TCP/{BLOCKED} not allowed by the group"
    assert not _tcp_probe(b, a.address, BLOCKED), f"TCP/{BLOCKED} not allowed by the group"


def _spoof_blocked(a: Vm, b: Vm) -> None:
    code = (
        "import socket,sys\n"
        "s=socket.socket(); s.settimeout(1.5)\n"
        "s.bind((sys.argv[3], 0))\n"
        "try:\n s.connect((sys.argv[1], int(sys.argv[2]))); print('open')\n"
        "except ConnectionRefusedError: print('open')\n"
        "except OSError: print('blocked')\n"
    )
    _in(a.netns, "ip", "addr", "add", f"{SPOOFED}/32", "dev", "eth0")
    try:
        got = _in(a.netns, "python3", "-c", code, b.address, str(ALLOWED), SPOOFED).strip()
        icmp = _in(
            a.netns, "ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "1", "-I", SPOOFED,
            b.address, check=False,
        )  # fmt: skip
    finally:
        _in(a.netns, "ip", "addr", "del", f"{SPOOFED}/32", "dev", "eth0", check=False)
    assert got == "blocked", f"TCP/{ALLOWED} from spoofed {SPOOFED} got through"
    assert " 0 received" in icmp, f"ICMP from spoofed {SPOOFED} got through: {icmp}"


def _ping_stats(text: str) -> tuple[int, int]:
    match = re.search(r"(\d+) packets transmitted, (\d+) received", text)
    assert match, text
    return int(match.group(1)), int(match.group(2))


@dataclasses.dataclass
class Traffic:
    """What the pings and the TCP stream of :func:`traffic` saw."""

    sent: int = 0
    received: int = 0
    tcp: dict[str, Any] = dataclasses.field(default_factory=dict)

    def assert_uninterrupted(self) -> None:
        print(f"pings: {self.sent} sent, {self.sent - self.received} lost; tcp: {self.tcp}")
        assert self.received == self.sent, f"{self.sent - self.received} of {self.sent} lost"
        tcp = self.tcp
        assert tcp.get("error") is None and tcp["echoed"] == tcp["sent"] > 0, tcp


@contextlib.contextmanager
def traffic(vm_a: Vm, vm_b: Vm, workdir: Path, deadline: int) -> Iterator[Traffic]:
    """Pings every 10 ms and a TCP stream to the allowed port from ``vm_a`` to ``vm_b``
    for the duration of the block (at most ``deadline`` seconds); the counts after."""
    stopfile = workdir / "tcp-stop"
    pinger = subprocess.Popen(
        ["ip", "netns", "exec", vm_a.netns, "ping", "-n", "-q", "-i", "0.01", "-W", "1",
         "-w", str(deadline), vm_b.address],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    stream = subprocess.Popen(
        ["ip", "netns", "exec", vm_a.netns, "python3", str(HERE / "tcp_stream.py"), "client",
         vm_b.address, str(ALLOWED), str(stopfile)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    result = Traffic()
    try:
        time.sleep(1.0)
        yield result
        time.sleep(1.0)
    finally:
        stopfile.touch()
        out, err = stream.communicate(timeout=30)
        pinger.send_signal(signal.SIGINT)
        ping_out = pinger.communicate(timeout=10)[0]
        result.sent, result.received = _ping_stats(ping_out)
        result.tcp = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": err}


def take_over(host: Host, timeout: float) -> None:
    """Start netagent on ``host`` (configured for the takeover) and wait until it has
    converged and nothing of the old agent is left."""
    started = time.monotonic()
    host.start_agent()
    wait_for(f"{host.name} converged", lambda: host.status().returncode == 0, timeout=timeout)
    wait_for(
        f"nothing of the old agent left on {host.name}",
        lambda: _migrate_lb(host, "--verify").returncode == 0,
        timeout=30,
    )
    print(f"{host.name} taken over in {time.monotonic() - started:.1f} s")
    time.sleep(1.0)


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_takeover_of_neutron_linuxbridge_hosts_under_traffic(
    fabric: LbFabric, backend: str
) -> None:
    python = venv.lb_agent()[0] / "bin" / "python"
    host_a = fabric.add_host("host-a", "198.18.0.1")
    host_b = fabric.add_host("host-b", "198.18.0.2")
    net = fabric.add_network(VNI)
    vm_a = fabric.add_vm("vm-a", host_a, net, "192.0.2.10/24")
    vm_b = fabric.add_vm("vm-b", host_b, net, "192.0.2.11/24")
    hosts = [host_a, host_b]

    # before: the Neutron Linux bridge agent's data plane, built by its own code
    for host in hosts:
        _build_with_neutron(python, fabric, host, [h for h in hosts if h is not host], backend)
        assert _old_agent_state(host), "the Neutron code built nothing"
    server = subprocess.Popen(
        ["ip", "netns", "exec", vm_b.netns, "python3", str(HERE / "tcp_stream.py"), "serve",
         str(ALLOWED), str(BLOCKED)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        fabric.wait_ping(vm_a, vm_b, timeout=20)
        wait_for("echo server", lambda: _tcp_probe(vm_a, vm_b.address, ALLOWED), timeout=10)
        _security_group_holds(fabric, vm_a, vm_b)
        _spoof_blocked(vm_a, vm_b)
        _takeover(fabric, hosts, vm_a, vm_b, backend)
    finally:
        server.kill()
        server.wait(5)


def _takeover(fabric: LbFabric, hosts: list[Host], vm_a: Vm, vm_b: Vm, backend: str) -> None:
    port = _vxlan_port(hosts[0])
    fabric.write_state()
    extra = (
        f"vxlan_udp_port = {port}\n"
        "[agent]\nfirewall_driver = iptables\ntake_over_neutron_linuxbridge = true\n"
    )
    for host in hosts:
        host.write_config(fabric.state_file, extra)
        dry = _migrate_lb(host, "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert f"NOOP: rename vxlan-{VNI}" in dry.stdout, dry.stdout
        assert "NOOP: destroy ipset NIPv4" in dry.stdout, dry.stdout
        assert f"iptables ({backend}) IPv4 filter: remove" in dry.stdout, dry.stdout
        print(f"\n{host.name} dry run:\n{dry.stdout}")
    before = {h.name: fabric.ifindexes(h, ("brq", "vxlan-")) for h in hosts}

    with traffic(vm_a, vm_b, fabric.workdir, deadline=90) as flow:
        for host in hosts:
            take_over(host, timeout=60)
    flow.assert_uninterrupted()

    # after: same devices, the same policy, nothing of the old agent
    for host in hosts:
        assert _old_agent_state(host) == [], _old_agent_state(host)
        after = fabric.ifindexes(host, ("brq", "nvx-"))
        old = before[host.name]
        assert after == {k.replace("vxlan-", "nvx-"): v for k, v in old.items()}, (after, old)
    _security_group_holds(fabric, vm_a, vm_b)
    _spoof_blocked(vm_a, vm_b)
    _spoof_blocked(vm_b, vm_a)

    # a second run is a no-op: nothing to do, and a restarted agent changes no device
    for host in hosts:
        dry = _migrate_lb(host, "--dry-run")
        assert dry.returncode == 0 and "nothing to do" in dry.stdout, dry.stdout + dry.stderr
        snapshot = _data_plane(host)
        host.stop_agent()
        host.start_agent()
        wait_for(f"{host.name} converged again", lambda h=host: h.status().returncode == 0)
        assert _data_plane(host) == snapshot
        assert fabric.ifindexes(host, ("brq", "nvx-")) == {
            k.replace("vxlan-", "nvx-"): v for k, v in before[host.name].items()
        }
    fabric.wait_ping(vm_a, vm_b)
    assert all(h.agent_alive() for h in hosts), fabric.diagnostics()
