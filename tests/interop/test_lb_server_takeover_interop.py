"""The takeover with the real processes: neutron-server 25.2.3 and ``neutron-linuxbridge-agent``.

A neutron-server 25.2.3 (:mod:`tests.interop.neutron_lb_server`: ML2
``netagent,linuxbridge,l2population``, VXLAN, own database and vhost, no Keystone) and two
simulated hosts (:mod:`tests.interop.cloud`, ``naio-`` namespaces) each running the stock
``neutron-linuxbridge-agent`` from the 25.2.3 venv inside its host namespace (``ip netns
exec``; VXLAN with l2population, iptables firewall with ipsets). Network, subnet, a
security group allowing ingress ICMP and TCP/22 only, and one compute port per host come
from the API; the VMs are namespaces on the ports' taps (tools/vmctl.py). Before: the old
agents wire the ports (ACTIVE, ``vif_type bridge``) and the VMs ping each other. Then host
by host, while VM A pings VM B every 10 ms and a TCP/22 connection echoes every 20 ms:
SIGTERM to the host's Linux bridge agent, netagent-agent started against the same server
(``source = neutron``, ``take_over_neutron_linuxbridge = true``). After: no ping lost,
the connection alive, TCP/80 and spoofed sources still dropped, nothing of the old agent
left, the ports ACTIVE (their bindings are recorded), and a restarted netagent changes
nothing.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fullstack import harness
from tests.fullstack.harness import Host, Vm, wait_for
from tests.interop import cloud, neutron_server, services, venv
from tests.interop.api import NeutronApi
from tests.interop.neutron_lb_server import LbNeutronServer
from tests.interop.test_lb_takeover_interop import (
    ALLOWED,
    BLOCKED,
    _data_plane,
    _migrate_lb,
    _old_agent_state,
    _ping_stats,
    _spoof_blocked,
    _tcp_probe,
    _vxlan_port,
    take_over,
    traffic,
)

HERE = Path(__file__).resolve().parent
HOSTS = {"host-a": "198.18.0.1", "host-b": "198.18.0.2"}
LB_AGENT_TYPE = "Linux bridge agent"
AGENT_BINARY = "neutron-linuxbridge-agent"
PRIVSEP_SECTIONS = (
    "privsep",
    "privsep_dhcp_release",
    "privsep_ovs_vsctl",
    "privsep_namespace",
    "privsep_conntrack",
    "privsep_link",
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LbNeutronServer]:
    for what in services.remove_leftovers():
        print(f"interop: removed leftover {what}")
    srv = LbNeutronServer(tmp_path / "neutron")
    with venv.in_use(venv.LB_SERVER_IN_USE):
        try:
            srv.start()
            print("\n" + srv.timing_line())
            yield srv
        except Exception:
            print(srv.diagnostics(), file=sys.stderr)
            raise
        finally:
            srv.stop()


class LbAgents:
    """The stock neutron-linuxbridge-agent of each host, started and stopped by PID."""

    def __init__(self, fabric: cloud.InteropFabric, lb_venv: Path) -> None:
        self.fabric = fabric
        self.venv = lb_venv
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def config(self, host: Host) -> Path:
        path = self.fabric.workdir / f"lb-agent-{host.name}.conf"
        state = self.fabric.workdir / f"lb-state-{host.name}"
        (state / "lock").mkdir(parents=True, exist_ok=True)
        helper = f"{self.venv / 'bin' / 'privsep-helper'} --config-file {path}"
        privsep = "".join(f"[{s}]\nhelper_command = {helper}\n" for s in PRIVSEP_SECTIONS)
        path.write_text(
            "[DEFAULT]\n"
            f"host = {host.name}\n"
            f"state_path = {state}\n"
            "debug = true\n"
            f"log_file = {self.fabric.workdir / f'lb-agent-{host.name}.log'}\n"
            # the relay in the host namespace listens on 127.0.0.1:5672
            f"transport_url = {self.fabric.server.transport_url}\n"
            "[experimental]\nlinuxbridge = true\n"
            "[agent]\n"
            "root_helper =\n"
            f"report_interval = {neutron_server.AGENT_REPORT_INTERVAL}\n"
            "polling_interval = 1\n"
            "[linux_bridge]\nphysical_interface_mappings =\n"
            "[vxlan]\nenable_vxlan = true\n"
            f"local_ip = {host.tunnel_ip}\n"
            "l2_population = true\n"
            "[securitygroup]\nfirewall_driver = iptables\nenable_ipset = true\n"
            f"[oslo_concurrency]\nlock_path = {state / 'lock'}\n" + privsep
        )
        return path

    def start(self, host: Host) -> None:
        out = (self.fabric.workdir / f"lb-agent-{host.name}.stdout").open("ab")
        self.processes[host.name] = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, str(self.venv / "bin" / AGENT_BINARY),
             "--config-file", str(self.config(host))],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        out.close()

    def stop(self, host: Host) -> int:
        """SIGTERM, as systemd stops it; its privsep daemons (same group) after it."""
        proc = self.processes[host.name]
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        finally:
            neutron_server.signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        return code

    def close(self) -> None:
        for proc in self.processes.values():
            neutron_server.signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)

    def log_tail(self, host: Host, lines: int = 40) -> str:
        path = self.fabric.workdir / f"lb-agent-{host.name}.log"
        if not path.exists():
            return ""
        text = path.read_text(errors="replace").splitlines()
        return (
            "\n".join(line for line in text if " ERROR " in line or "Traceback" in line)[-4000:]
            + "\n"
            + "\n".join(text[-lines:])
        )


@pytest.fixture
def fabric(server: LbNeutronServer, tmp_path: Path) -> Iterator[cloud.InteropFabric]:
    fab = cloud.InteropFabric(tmp_path / "fabric", server, firewall_driver="iptables")
    (tmp_path / "fabric").mkdir()
    try:
        fab.start()
        for name, tunnel_ip in HOSTS.items():
            fab.add_host(name, tunnel_ip)
        yield fab
    finally:
        print(fab.diagnostics())
        fab.close()


def _alive(api: NeutronApi, host: str, agent_type: str) -> bool:
    return any(a["alive"] for a in api.agents(host=host, agent_type=agent_type))


def _wait_port(api: NeutronApi, port_id: str, **want: Any) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        port = api.show("port", port_id)
        return port if all(port[k] == v for k, v in want.items()) else None

    return neutron_server.wait_until(f"port {port_id} {want}", probe, 60, 0.5)


def _security_group(api: NeutronApi) -> str:
    group = api.create("security_group", name="ssh-icmp")
    for proto, port in (("icmp", None), ("tcp", ALLOWED)):
        rule: dict[str, Any] = {
            "security_group_id": group["id"],
            "direction": "ingress",
            "ethertype": "IPv4",
            "protocol": proto,
        }
        if port is not None:
            rule.update(port_range_min=port, port_range_max=port)
        api.create("security_group_rule", **rule)
    return str(group["id"])


def _holds(a: Vm, b: Vm) -> None:
    assert harness.can_ping(a.netns, b.address), "ICMP allowed by the group"
    assert _tcp_probe(a, b.address, ALLOWED), f"TCP/{ALLOWED} allowed by the group"
    assert not _tcp_probe(a, b.address, BLOCKED), f"TCP/{BLOCKED} not allowed by the group"
    assert not _tcp_probe(b, a.address, BLOCKED), f"TCP/{BLOCKED} not allowed by the group"


def test_real_linuxbridge_agents_taken_over_under_traffic(
    server: LbNeutronServer, fabric: cloud.InteropFabric
) -> None:
    api = server.api()
    lb_venv = venv.lb_agent()[0]
    agents = LbAgents(fabric, lb_venv)
    hosts = list(fabric.hosts.values())
    try:
        _run(api, fabric, agents, hosts)
    except BaseException:
        for host in hosts:
            print(f"--- lb agent {host.name}\n{agents.log_tail(host)}")
        print(server.diagnostics())
        raise
    finally:
        agents.close()


def _run(
    api: NeutronApi, fabric: cloud.InteropFabric, agents: LbAgents, hosts: list[Host]
) -> None:
    for host in hosts:
        agents.start(host)
    for host in hosts:
        wait_for(
            f"LB agent of {host.name} alive", lambda h=host: _alive(api, h.name, LB_AGENT_TYPE), 60
        )

    group = _security_group(api)
    net = api.create("network", name="lb-takeover")
    api.create("subnet", network_id=net["id"], cidr="192.0.2.0/24", ip_version=4,
               enable_dhcp=False, gateway_ip=None)  # fmt: skip
    vms: list[Vm] = []
    for i, host in enumerate(hosts):
        port = api.compute_port(net["id"], host.name, security_groups=[group])
        assert port["binding:vif_type"] == "bridge", port
        vms.append(fabric.add_neutron_vm(f"vm-{'ab'[i]}", host, port, net["mtu"]))
    vm_a, vm_b = vms
    bridge = f"brq{net['id'][:11]}"
    for vm in vms:
        _wait_port(api, vm.port_id, status="ACTIVE")
        # the agent makes the bridge but leaves a compute port's tap to Nova (libvirt's
        # <interface type='bridge'> of a bridge VIF): do what libvirt does
        wait_for(f"{bridge} on {vm.host.name}", lambda h=vm.host: bridge in harness.links(h.netns))
        harness.ip(vm.host.netns, "link", "set", vm.tap, "master", bridge)
    before_bindings = {vm.name: _binding(api, vm) for vm in vms}
    print(f"\nbindings before: {before_bindings}")

    # before: the old agents' data plane, policy and anti-spoofing
    for host in hosts:
        assert _old_agent_state(host), f"the LB agent built nothing on {host.name}"
    stream_server = subprocess.Popen(
        ["ip", "netns", "exec", vm_b.netns, "python3", str(HERE / "tcp_stream.py"), "serve",
         str(ALLOWED), str(BLOCKED)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        fabric.wait_ping(vm_a, vm_b, timeout=30)
        wait_for("echo server", lambda: _tcp_probe(vm_a, vm_b.address, ALLOWED), timeout=10)
        _holds(vm_a, vm_b)
        _spoof_blocked(vm_a, vm_b)
        _switch(api, fabric, agents, hosts, vm_a, vm_b)
    finally:
        stream_server.kill()
        stream_server.wait(5)


def _binding(api: NeutronApi, vm: Vm) -> dict[str, Any]:
    port = api.show("port", vm.port_id)
    return {k: port[k] for k in ("status", "binding:host_id", "binding:vif_type")}


def _write_netagent_config(fabric: cloud.InteropFabric, host: Host, udp_port: int) -> None:
    fabric.write_agent_config(host)
    with host.config_file.open("a") as conf:
        conf.write(
            f"vxlan_udp_port = {udp_port}\n"
            "[neutron]\nl2_population = true\n"
            "[agent]\ntake_over_neutron_linuxbridge = true\n"
        )


def _switch(
    api: NeutronApi,
    fabric: cloud.InteropFabric,
    agents: LbAgents,
    hosts: list[Host],
    vm_a: Vm,
    vm_b: Vm,
) -> None:
    before = {h.name: fabric.ifindexes(h, ("brq", "vxlan-")) for h in hosts}
    with traffic(vm_a, vm_b, fabric.workdir, deadline=120) as flow:
        for host in hosts:
            udp_port = _vxlan_port(host)
            code = agents.stop(host)
            print(f"{host.name}: neutron-linuxbridge-agent exited with {code}")
            _write_netagent_config(fabric, host, udp_port)
            dry = _migrate_lb(host, "--dry-run")
            assert dry.returncode == 0, dry.stdout + dry.stderr
            print(f"{host.name} dry run:\n{dry.stdout}")
            take_over(host, timeout=90)
    flow.assert_uninterrupted()

    # after: the server's view, the devices, the policy
    for host in hosts:
        wait_for(
            f"netagent of {host.name} alive",
            lambda h=host: _alive(api, h.name, "Netagent agent"),
            30,
        )
        # the stopped agent's row: dead after agent_down_time (deleted by the operator)
        wait_for(
            f"LB agent of {host.name} dead",
            lambda h=host: not _alive(api, h.name, LB_AGENT_TYPE),
            timeout=3 * neutron_server.AGENT_DOWN_TIME,
        )
        assert _old_agent_state(host) == [], _old_agent_state(host)
        after = fabric.ifindexes(host, ("brq", "nvx-"))
        old = before[host.name]
        assert after == {k.replace("vxlan-", "nvx-"): v for k, v in old.items()}, (after, old)
    bindings = {vm.name: _binding(api, vm) for vm in (vm_a, vm_b)}
    print(f"bindings after: {bindings}")
    for vm in (vm_a, vm_b):
        assert bindings[vm.name]["status"] == "ACTIVE", bindings
        assert bindings[vm.name]["binding:host_id"] == vm.host.name, bindings
    _holds(vm_a, vm_b)
    _spoof_blocked(vm_a, vm_b)
    _spoof_blocked(vm_b, vm_a)

    # a second run is a no-op
    for host in hosts:
        dry = _migrate_lb(host, "--dry-run")
        assert dry.returncode == 0 and "nothing to do" in dry.stdout, dry.stdout + dry.stderr
        snapshot = _data_plane(host)
        host.stop_agent()
        host.start_agent()
        wait_for(f"{host.name} converged again", lambda h=host: h.status().returncode == 0, 60)
        assert _data_plane(host) == snapshot
    fabric.wait_ping(vm_a, vm_b)
    assert all(h.agent_alive() for h in hosts), fabric.diagnostics()
    _rebind(api, vm_a, vm_b)


def _rebind(api: NeutronApi, vm_a: Vm, vm_b: Vm) -> None:
    """ML2 keeps the old binding; a ``binding:profile`` change makes it bind again, now
    by netagent's driver (``tap``). Pings during it are reported, not asserted: the port
    is unbound for a moment (doc/migration.md)."""
    pinger = subprocess.Popen(
        ["ip", "netns", "exec", vm_b.netns, "ping", "-n", "-q", "-i", "0.01", "-W", "1",
         "-w", "60", vm_a.address],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        api.update("port", vm_a.port_id, **{"binding:profile": {"netagent-rebind": "1"}})
        port = _wait_port(api, vm_a.port_id, **{"binding:vif_type": "tap", "status": "ACTIVE"})
        time.sleep(2.0)
    finally:
        pinger.send_signal(signal.SIGINT)
        out = pinger.communicate(timeout=10)[0]
    sent, received = _ping_stats(out)
    print(f"rebind of {vm_a.name}: {port['binding:vif_type']}, {_binding(api, vm_a)}; "
          f"pings during it {sent} sent, {sent - received} lost")  # fmt: skip
    assert _binding(api, vm_b)["binding:vif_type"] == "bridge"
    _holds(vm_a, vm_b)
