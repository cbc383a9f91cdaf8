"""End to end: an agent with ``l3_driver = namespace`` builds a router from the state
file; checked with real packets between VMs and an upstream namespace on a flat external
network, on both iptables backends. The agent runs in the machine's mount namespace
(``Host.host_mounts``) so the ``qrouter-`` namespace it creates is usable from outside."""

from __future__ import annotations

import json
import signal
import uuid
from typing import Any

import pytest

from netagent.agent import status
from netagent.cmd import explain as explain_cmd
from netagent.explain import render, trace
from tests.common.traffic import ask, neigh_mac, whoami_server
from tests.fullstack import harness
from tests.fullstack.harness import Fabric, Host, Vm, ip, wait_for

EXT_CIDR = "203.0.113.0/24"
UPSTREAM = "203.0.113.1"
GW_IP = "203.0.113.10"
FIP = "203.0.113.20"
SG = str(uuid.uuid4())


class RouterFabric(Fabric):
    """The harness fabric plus an external flat network, one router and floating IPs."""

    def setup_router(self, host: Host, vms: list[Vm]) -> None:
        self.router_id = str(uuid.uuid4())
        self.ext_net = str(uuid.uuid4())
        self.ext_subnet = str(uuid.uuid4())
        self.gw_port = str(uuid.uuid4())
        self.if_port = str(uuid.uuid4())
        self.fips: dict[str, str] = {}  # floating address -> VM port id
        self.router_host = host
        self.routed_vms = vms
        self.with_router = True
        # the upstream namespace, on the external segment behind host's ext0
        self.upstream = self._netns("up")
        ip(
            host.netns,
            "link",
            "add",
            "ext0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            self.upstream,
        )
        ip(host.netns, "link", "set", "ext0", "up")
        ip(self.upstream, "addr", "add", f"{UPSTREAM}/24", "dev", "eth0")
        ip(self.upstream, "link", "set", "eth0", "up")
        # learn from gratuitous ARP even without an entry (to see the agent's announcements)
        harness.run(
            "ip",
            "netns",
            "exec",
            self.upstream,
            "sysctl",
            "-qw",
            "net.ipv4.conf.eth0.arp_accept=1",
        )
        # deleted by close() after the agents are stopped
        self.namespaces.insert(0, f"qrouter-{self.router_id}")
        for vm in vms:
            ip(vm.netns, "route", "add", "default", "via", "192.0.2.1")

    @property
    def router_ns(self) -> str:
        return f"qrouter-{self.router_id}"

    def state(self) -> dict[str, Any]:
        doc = super().state()
        if not getattr(self, "with_router", False):
            return doc
        for subnet in doc["subnets"]:
            subnet["gateway_ip"] = "192.0.2.1"
        doc["security_groups"] = [
            {
                "id": SG,
                "security_group_rules": [
                    {"direction": "egress", "ethertype": "IPv4"},
                    {"direction": "ingress", "ethertype": "IPv4"},
                ],
            }
        ]
        for port in doc["ports"]:
            port["security_groups"] = [SG]
        if not self.router_wanted:
            return doc
        internal = self.routed_vms[0].network_id
        host = self.router_host.name
        doc["networks"].append(
            {
                "id": self.ext_net,
                "provider:network_type": "flat",
                "provider:physical_network": "ext",
                "mtu": 1500,
            }
        )
        doc["subnets"].append(
            {
                "id": self.ext_subnet,
                "network_id": self.ext_net,
                "cidr": EXT_CIDR,
                "gateway_ip": UPSTREAM,
                "enable_dhcp": False,
            }
        )
        doc["ports"] += [
            {
                "id": self.gw_port,
                "network_id": self.ext_net,
                "mac_address": "fa:16:3e:00:aa:01",
                "fixed_ips": [{"subnet_id": self.ext_subnet, "ip_address": GW_IP}],
                "binding:host_id": host,
                "device_owner": "network:router_gateway",
                "device_id": self.router_id,
            },
            {
                "id": self.if_port,
                "network_id": internal,
                "mac_address": "fa:16:3e:00:aa:02",
                "fixed_ips": [{"subnet_id": self._subnet_id(internal), "ip_address": "192.0.2.1"}],
                "binding:host_id": host,
                "device_owner": "network:router_interface",
                "device_id": self.router_id,
            },
        ]
        doc["routers"] = [
            {
                "id": self.router_id,
                "name": "r1",
                "external_gateway_info": {"network_id": self.ext_net, "enable_snat": True},
            }
        ]
        vm_by_port = {vm.port_id: vm for vm in self.routed_vms}
        doc["floatingips"] = [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, floating)),
                "floating_ip_address": floating,
                "floating_network_id": self.ext_net,
                "router_id": self.router_id,
                "port_id": port_id,
                "fixed_ip_address": vm_by_port[port_id].address,
            }
            for floating, port_id in self.fips.items()
        ]
        return doc

    router_wanted = True


@pytest.fixture
def routed(fabric: Fabric) -> RouterFabric:
    fabric.__class__ = RouterFabric
    assert isinstance(fabric, RouterFabric)
    return fabric


def _start(fab: RouterFabric, backend: str) -> tuple[Host, Vm, Vm]:
    host = fab.add_host("host-a", "198.18.0.1")
    host.host_mounts = True
    net = fab.add_network(vni=300)
    vm1 = fab.add_vm("vm1", host, net, "192.0.2.10/24")
    vm2 = fab.add_vm("vm2", host, net, "192.0.2.11/24")
    fab.setup_router(host, [vm1, vm2])
    fab.fips[FIP] = vm2.port_id
    fab.write_state()
    host.write_config(
        fab.state_file,
        "physical_interface_mappings = ext:ext0\n"
        "[agent]\nl3_driver = namespace\nfirewall_driver = iptables\n"
        f"[iptables]\nbackend = {backend}\n",
    )
    host.start_agent()
    wait_for(
        "agent converged",
        lambda: host.status().returncode == 0 and fab.router_ns in _netns_list(),
        timeout=40,
    )
    return host, vm1, vm2


def _explain(host: Host, backend: str, port_id: str, destination: str) -> trace.Explanation:
    """``explain`` of a tcp/80 packet from the agent's status and kernel, as the CLI does."""
    snap = explain_cmd.load(status.query(status.socket_path(str(host.state_path))))
    state = explain_cmd.read_kernel(backend, host.netns)
    return trace.explain(snap, trace.Query(port_id, destination, "tcp", 80), state)


def _netns_list() -> set[str]:
    out = harness.run("ip", "-j", "netns", "list").stdout
    return {entry["name"] for entry in json.loads(out or "[]")}


def _ifindexes(fab: RouterFabric, host: Host) -> dict[str, int]:
    result = {
        name: link["ifindex"]
        for name, link in harness.links(fab.router_ns).items()
        if name.startswith(("qr-", "qg-"))
    }
    result.update(fab.ifindexes(host, ("tap", "brq")))
    return result


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_router_from_state_file(routed: RouterFabric, backend: str) -> None:
    host, vm1, vm2 = _start(routed, backend)
    # the namespace is usable by any process (not hidden in the agent's mount namespace)
    addrs = harness.run("ip", "netns", "exec", routed.router_ns, "ip", "-j", "addr").stdout
    assert GW_IP in addrs and FIP in addrs
    # the new router announced its addresses once its port was wired (before any traffic)
    wait_for(
        "gratuitous ARP for the floating IP",
        lambda: neigh_mac(routed.upstream, FIP) == "fa:16:3e:00:aa:01",
        timeout=15,
    )
    with whoami_server(routed.upstream, "up"):
        wait_for("SNAT out", lambda: ask(vm1.netns, UPSTREAM) == f"up {GW_IP}")
        assert ask(vm2.netns, UPSTREAM) == f"up {FIP}"
    # explain says the same of both: out by the gateway, as the address the upstream saw
    for vm, seen_as in ((vm1, GW_IP), (vm2, FIP)):
        exp = _explain(host, backend, vm.port_id, UPSTREAM)
        assert exp.verdict == "pass", render.render(exp)
        assert f"SNAT {vm.address} -> {seen_as}" in [h.detail for h in exp.path]
        assert exp.where.startswith(f"left router {routed.router_id} on host-a by its gateway")
        assert not exp.mismatches, exp.mismatches
    with whoami_server(vm2.netns, "vm2"):
        assert ask(routed.upstream, FIP) == f"vm2 {UPSTREAM}"
    doc = json.loads(
        harness.run(
            str(harness.BIN / "netagent-status"), "--state-path", str(host.state_path), "--json"
        ).stdout
    )
    assert doc["routers"] == [
        {"id": routed.router_id, "applied": True, "ready": True, "error": None}
    ]
    described = doc["drivers"]["l3"]["routers"][0]
    assert described["floating_ips"][0]["floating"] == FIP

    # SIGKILL during a ping through the floating IP: nothing lost, nothing recreated
    before = _ifindexes(routed, host)
    with harness.background(
        [
            "ip",
            "netns",
            "exec",
            routed.upstream,
            "ping",
            "-n",
            "-c",
            "60",
            "-i",
            "0.05",
            "-W",
            "1",
            FIP,
        ]
    ) as pinger:
        wait_for("ping running", lambda: True)
        host.stop_agent(signal.SIGKILL)
        host.start_agent()
        wait_for("agent converged again", lambda: host.status().returncode == 0, timeout=40)
        out, _ = pinger.communicate(timeout=30)
    assert " 0% packet loss" in out, out
    assert _ifindexes(routed, host) == before

    # the floating IP moves to vm1 in the state file: vm1 answers on it
    routed.fips[FIP] = vm1.port_id
    routed.write_state()
    with whoami_server(vm1.netns, "vm1"):
        wait_for("floating IP moved", lambda: ask(routed.upstream, FIP) == f"vm1 {UPSTREAM}")

    # the router leaves the state file: namespace and host-side devices go
    routed.router_wanted = False
    routed.write_state()
    wait_for("router removed", lambda: routed.router_ns not in _netns_list(), timeout=30)
    assert not any(
        n.startswith("tap") and n[3:] == routed.gw_port[:11] for n in harness.links(host.netns)
    )


def test_cleanup_removes_the_routers_this_agent_made(routed: RouterFabric) -> None:
    host, _vm1, _vm2 = _start(routed, "nft")
    # a router namespace another agent of this machine made is not ours
    foreign = f"qrouter-{uuid.uuid4()}"
    harness.run("ip", "netns", "add", foreign)
    routed.namespaces.append(foreign)
    host.stop_agent()

    def cleanup(*args: str) -> str:
        proc = harness.run(
            *host.command_prefix(),
            str(harness.BIN / "netagent-cleanup"),
            "--config-file",
            str(host.config_file),
            *args,
            check=False,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    assert f"NOOP: NamespaceL3Driver: delete router namespace {routed.router_ns}" in cleanup(
        "--dry-run"
    )
    assert routed.router_ns in _netns_list()
    out = cleanup()
    assert f"delete router namespace {routed.router_ns}" in out
    assert foreign not in out
    assert routed.router_ns not in _netns_list() and foreign in _netns_list()
    tap = "tap" + routed.gw_port[:11]
    assert tap not in harness.links(host.netns)
