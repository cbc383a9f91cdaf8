"""End to end on Open vSwitch: real agents, each host with its own ovsdb-server and
ovs-vswitchd running inside the host's namespace (userspace datapath, testing.md).

Per host: ``br-phy`` holds the underlay veth and the tunnel address (the userspace
datapath routes its VXLAN packets only through an OVS bridge); VMs are plugged into
``br-int`` the way os-vif does it (``iface-id`` = port id, ``attached-mac``). Assertions
are on packets (ping, a TCP exchange) and on flows read with ovs-ofctl.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from typing import Any

from netagent.ovs.flows import COOKIE_MASK, COOKIE_PREFIX
from tests.common import traffic
from tests.common.ovs import PrivateOvs
from tests.fullstack import harness, ovs_host
from tests.fullstack.harness import Fabric, Host, Vm, can_ping, ip, ping, run, wait_for
from tests.fullstack.ovs_host import add_ovs_host

OURS = f"0x{COOKIE_PREFIX:x}/0x{COOKIE_MASK:x}"


def add_ovs_vm(
    fabric: Fabric, switches: dict[str, PrivateOvs], name: str, host: Host, net: str, cidr: str
) -> Vm:
    """A VM whose tap os-vif added to br-int (creating br-int as os-vif does)."""
    vm = fabric.add_vm(name, host, net, cidr)
    ovs_host.plug_like_os_vif(switches[host.name], vm)
    return vm


def tcp_exchange(server: Vm, client: Vm, port: int = 5001) -> bool:
    """One TCP connection client -> server carrying 64 KiB each way (bounded in time)."""
    serve = (
        "import socket\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('0.0.0.0',{port})); s.listen(1); s.settimeout(15)\n"
        "c,_=s.accept(); c.settimeout(15); n=0\n"
        "while n < 65536:\n"
        "    d=c.recv(65536)\n"
        "    if not d: break\n"
        "    n+=len(d)\n"
        "c.sendall(b'y'*n); c.close()\n"
    )
    connect = (
        "import socket,sys\n"
        f"c=socket.create_connection(('{server.address}',{port}),timeout=10)\n"
        "c.sendall(b'x'*65536); n=0\n"
        "while n < 65536:\n"
        "    d=c.recv(65536)\n"
        "    if not d: break\n"
        "    n+=len(d)\n"
        "sys.exit(0 if n == 65536 else 1)\n"
    )
    with harness.background(["ip", "netns", "exec", server.netns, "python3", "-c", serve]) as srv:
        time.sleep(0.5)
        client_proc = run(
            "ip", "netns", "exec", client.netns, "python3", "-c", connect, check=False, timeout=30
        )
        srv.wait(timeout=20)
    return client_proc.returncode == 0 and srv.returncode == 0


def _two_hosts(fabric: Fabric, switches: dict[str, PrivateOvs]) -> tuple[Host, Host]:
    return (
        add_ovs_host(fabric, switches, "host-a", "198.18.0.1"),
        add_ovs_host(fabric, switches, "host-b", "198.18.0.2"),
    )


def _pinging_pair(fabric: Fabric, switches: dict[str, PrivateOvs]) -> tuple[Host, str, Vm, Vm]:
    """Two hosts with running agents, a VM on each in VXLAN network 1001, pinging."""
    host_a, host_b = _two_hosts(fabric, switches)
    net = fabric.add_network(1001)
    vm1 = add_ovs_vm(fabric, switches, "vm1", host_a, net, "192.0.2.10/24")
    vm2 = add_ovs_vm(fabric, switches, "vm2", host_b, net, "192.0.2.11/24")
    fabric.start_agents()
    fabric.wait_ping(vm1, vm2, timeout=30)
    return host_a, net, vm1, vm2


def test_ovs_cross_host_ping_tcp_and_isolation(
    fabric: Fabric, switches: dict[str, PrivateOvs]
) -> None:
    host_a, host_b = _two_hosts(fabric, switches)
    net1, net2 = fabric.add_network(1001), fabric.add_network(1002)
    vm1 = add_ovs_vm(fabric, switches, "vm1", host_a, net1, "192.0.2.10/24")
    vm2 = add_ovs_vm(fabric, switches, "vm2", host_b, net1, "192.0.2.11/24")
    # same subnet on purpose: only L2 separation keeps vm3/vm4 away from vm1/vm2
    vm3 = add_ovs_vm(fabric, switches, "vm3", host_b, net2, "192.0.2.12/24")
    vm4 = add_ovs_vm(fabric, switches, "vm4", host_a, net2, "192.0.2.13/24")
    fabric.start_agents()
    fabric.wait_ping(vm1, vm2, timeout=30)
    fabric.wait_ping(vm4, vm3, timeout=30)
    assert ping(vm2.netns, vm1.address, count=5, interval=0.1).returncode == 0
    assert tcp_exchange(vm2, vm1)
    assert not can_ping(vm1.netns, vm4.address)  # same host, other network
    assert not can_ping(vm1.netns, vm3.address)  # other host, other network
    assert not can_ping(vm3.netns, vm2.address)
    tags = {
        vm.name: int(switches[vm.host.name].vsctl("get", "Port", vm.tap, "tag"))
        for vm in (vm1, vm2, vm3, vm4)
    }
    assert tags["vm1"] != tags["vm4"] and tags["vm2"] != tags["vm3"]

    # netagent-status shows the port's ofport, local VLAN and flow as ovs-vswitchd has them
    switch = switches["host-a"]
    ofport = int(switch.vsctl("get", "Interface", vm1.tap, "ofport"))
    shown = run(
        str(harness.BIN / "netagent-status"),
        "--state-path",
        str(host_a.state_path),
        "--id",
        vm1.port_id,
    ).stdout
    assert f"ofport {ofport} on br-int, local VLAN {tags['vm1']}" in shown, shown
    [flow] = [line for line in shown.splitlines() if line.strip().startswith("flow br-int")]
    assert f"in_port={ofport},actions=NORMAL" in flow and "MISSING" not in flow, shown
    assert int(flow.rsplit(": ", 1)[1].split()[0]) > 0, flow  # the pings went through it

    # explain lays out the Open vSwitch path: br-int with the network's local VLAN, br-tun
    explained = run(
        "ip", "netns", "exec", host_a.netns, str(harness.BIN / "netagent-status"), "explain",
        "--state-path", str(host_a.state_path), "--from", vm1.address, "--to", vm2.address,
        "--proto", "icmp", "--json",
    )  # fmt: skip
    doc = json.loads(explained.stdout)
    hops = [(h["host"], h["kind"], h["name"], h["detail"]) for h in doc["path"]]
    assert ("host-a", "bridge", "br-int", f"network {net1}, local VLAN {tags['vm1']}") in hops
    assert ("host-a", "vxlan", "br-tun", "VNI 1001 to host-b (198.18.0.2)") in hops, hops
    assert doc["verdict"] == "pass" and not any(h[2].startswith("brq") for h in hops)


def _monitor(switch: PrivateOvs, bridge: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["ovs-ofctl", "monitor", switch.mgmt(bridge), "watch:!initial"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=switch.env,  # its control socket goes to the private directory
    )


def _watch_flows(
    host: Host, switch: PrivateOvs
) -> tuple[dict[str, list[str]], dict[str, subprocess.Popen[str]]]:
    """Once ``host`` has converged: netagent's flows on br-int and br-tun, and a running
    flow monitor on each bridge (see :func:`_our_events`)."""
    wait_for(f"{host.name} converged", lambda: host.status().returncode == 0, timeout=30)
    before = {b: switch.flows(b, OURS) for b in ("br-int", "br-tun")}
    monitors = {b: _monitor(switch, b) for b in before}
    time.sleep(0.5)
    return before, monitors


def _our_events(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.poll() is None, "the flow monitor died"
    proc.kill()
    out, _ = proc.communicate(timeout=5)
    return [line for line in out.splitlines() if "event=" in line and "cookie=0x4e6141" in line]


def test_ovs_agent_sigkill_restart_keeps_traffic_and_flows(
    fabric: Fabric, switches: dict[str, PrivateOvs]
) -> None:
    host_a, _net, vm1, vm2 = _pinging_pair(fabric, switches)
    switch = switches["host-a"]
    before, monitors = _watch_flows(host_a, switch)
    count = 100  # 100 pings 0.05 s apart: the restart happens in the middle
    pinger = subprocess.Popen(
        traffic.ping_argv(vm1.netns, vm2.address, count, 0.05),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(1.0)
        host_a.stop_agent(signal.SIGKILL)
        host_a.start_agent()
        wait_for("host-a converged again", lambda: host_a.status().returncode == 0, timeout=30)
        out, _ = pinger.communicate(timeout=30)
    finally:
        if pinger.poll() is None:
            pinger.kill()
            pinger.communicate()
    assert f"{count} packets transmitted, {count} received" in out, out
    after = {b: switch.flows(b, OURS) for b in before}
    # positive control: the monitors do see a change of a flow with netagent's cookie
    control = "cookie=0x4e6141ffffffffff,table=250,priority=1,actions=drop"
    switch.ofctl("add-flow", switch.mgmt("br-tun"), control)
    time.sleep(0.5)
    events = {b: _our_events(proc) for b, proc in monitors.items()}
    assert events["br-int"] == []
    assert [e for e in events["br-tun"] if "table=250" not in e] == []
    assert len(events["br-tun"]) == 1
    assert after == before


def test_ovs_vswitchd_restart_is_repaired(fabric: Fabric, switches: dict[str, PrivateOvs]) -> None:
    host_a, _net, vm1, vm2 = _pinging_pair(fabric, switches)
    switch = switches["host-a"]
    before = {b: switch.flows(b, OURS) for b in ("br-int", "br-tun")}
    switch.restart_vswitchd()
    wait_for(
        "host-a flows reprogrammed",
        lambda: {b: switch.flows(b, OURS) for b in before} == before,
        timeout=15,
    )
    fabric.wait_ping(vm1, vm2, timeout=15)
    assert host_a.agent_alive()


def test_ovs_flat_network_reaches_an_external_namespace(
    fabric: Fabric, switches: dict[str, PrivateOvs]
) -> None:
    host_a = add_ovs_host(fabric, switches, "host-a", "198.18.0.1")
    host_a.extra_config += "[ovs]\nbridge_mappings = physnet1:br-ex\n"
    switch = switches["host-a"]
    # the physical network: br-ex (the operator's) with a veth to an "external" namespace
    external = fabric._netns("ext")
    ip(
        host_a.netns,
        "link",
        "add",
        "ex-up",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        external,
    )
    ip(external, "addr", "add", "192.0.2.1/24", "dev", "eth0")
    ip(external, "link", "set", "eth0", "up")
    ip(host_a.netns, "link", "set", "ex-up", "up")
    ovs_host.add_bridge(switch, "br-ex", "ex-up")
    flat = str(__import__("uuid").uuid4())
    fabric.networks[flat] = {
        "id": flat,
        "name": "flat",
        "provider:network_type": "flat",
        "provider:physical_network": "physnet1",
        "mtu": 1450,
    }
    vxlan = fabric.add_network(1001)
    vm1 = add_ovs_vm(fabric, switches, "vm1", host_a, flat, "192.0.2.10/24")
    vm2 = add_ovs_vm(fabric, switches, "vm2", host_a, vxlan, "192.0.2.11/24")
    fabric.start_agents()
    wait_for("vm1 -> external", lambda: can_ping(vm1.netns, "192.0.2.1"), timeout=30)
    wait_for("vm2 wired", lambda: host_a.status().returncode == 0, timeout=30)
    assert not can_ping(vm2.netns, "192.0.2.1")  # the VXLAN network is not on physnet1
    assert not can_ping(vm2.netns, vm1.address)
    # frames leave br-ex untagged: the external side answers without any VLAN setup
    assert ping(external, vm1.address, count=3, interval=0.1).returncode == 0
    assert "bridge_mappings" not in switch.vsctl("br-get-external-id", "br-ex")


def test_ovs_ovsdb_server_restart_changes_nothing(
    fabric: Fabric, switches: dict[str, PrivateOvs]
) -> None:
    """The agent rides out an ovsdb-server restart: its connection comes back by itself,
    nothing of netagent's is rewritten, and new ports are wired afterwards.

    Packets are *not* asserted here: with the userspace datapath ovs-vswitchd forwards
    nothing until it has reconnected to ovsdb-server (it reconnects after 1 s, then 2 s;
    measured: the same ~3 s gap with the agent stopped), which is OVS's, not netagent's.
    """
    host_a, net, vm1, vm2 = _pinging_pair(fabric, switches)
    switch = switches["host-a"]
    before, monitors = _watch_flows(host_a, switch)
    switch.restart_ovsdb()
    fabric.wait_ping(vm1, vm2, timeout=15)
    time.sleep(2.0)  # two integrity checks of the agent
    events = {b: _our_events(proc) for b, proc in monitors.items()}
    assert events == {"br-int": [], "br-tun": []}
    assert {b: switch.flows(b, OURS) for b in before} == before
    # the agent's OVSDB connection came back: a VM plugged now gets wired
    vm3 = add_ovs_vm(fabric, switches, "vm3", host_a, net, "192.0.2.12/24")
    fabric.write_state()
    fabric.wait_ping(vm3, vm2, timeout=30)
    assert host_a.agent_alive()


def test_ovs_port_wired_when_os_vif_sets_iface_id_later(
    fabric: Fabric, switches: dict[str, PrivateOvs]
) -> None:
    """The tap exists before os-vif adds it to br-int: the first attempt fails, and the
    retry is 120 s away; the OVSDB Interface monitor wires the port when its row appears."""
    host_a, host_b = _two_hosts(fabric, switches)
    host_a.extra_config += "[agent]\nretry_initial_delay = 120\n"
    net = fabric.add_network(1001)
    vm2 = add_ovs_vm(fabric, switches, "vm2", host_b, net, "192.0.2.11/24")
    vm1 = fabric.add_vm("vm1", host_a, net, "192.0.2.10/24")  # tap only, not in OVS yet
    ip(host_a.netns, "link", "set", vm1.tap, "up")
    run("ip", "netns", "exec", vm1.netns, "ethtool", "-K", "eth0", "tx", "off")
    fabric.start_agents()
    wait_for(
        "vm1's first wiring attempt failed",
        lambda: (
            host_a.log_file.exists()
            and "no interface with iface-id" in host_a.log_file.read_text()
        ),
        timeout=30,
    )
    switches["host-a"].vsctl(
        "add-port",
        "br-int",
        vm1.tap,
        "--",
        "set",
        "Interface",
        vm1.tap,
        f"external_ids:iface-id={vm1.port_id}",
        f"external_ids:attached-mac={vm1.mac}",
    )
    fabric.wait_ping(vm1, vm2, timeout=20)


def _attacker(fabric: Fabric, address: str, vni: int, target: str) -> str:
    """A namespace on the underlay with a kernel VXLAN device (VNI ``vni``, to
    ``target``) bridged to an address of the tenant subnet: it injects frames straight
    into the tunnel, the way a rogue or compromised machine on the underlay would."""
    netns = fabric.add_underlay_node("evil", address)
    ip(
        netns,
        "link",
        "add",
        "vx",
        "type",
        "vxlan",
        "id",
        str(vni),
        "remote",
        target,
        "local",
        address,
        "dstport",
        "4789",
        "nolearning",
        "noudpcsum",
    )
    ip(netns, "link", "set", "vx", "mtu", "1450", "address", "fa:16:3e:66:66:66", "up")
    ip(netns, "addr", "add", "192.0.2.66/24", "dev", "vx")
    return netns


def test_ovs_vni_accepted_only_from_the_networks_peers(
    fabric: Fabric, switches: dict[str, PrivateOvs]
) -> None:
    host_a, net, vm1, _vm2 = _pinging_pair(fabric, switches)
    evil = _attacker(fabric, "198.18.0.3", 1001, host_a.tunnel_ip)
    # the attack: VNI 1001 from an endpoint that is no host of the network
    assert ping(evil, vm1.address, count=3, interval=0.2).returncode != 0
    # control: the same packets are taken once 198.18.0.3 is a host of the network
    # (an agent row with that tunnel address and a port of the network bound to it)
    document = fabric.state()
    document["agents"].append(
        {
            "host": "host-c",
            "agent_type": "Netagent agent",
            "configurations": {"tunneling_ip": "198.18.0.3"},
        }
    )
    document["ports"].append(
        {
            "id": str(__import__("uuid").uuid4()),
            "network_id": net,
            "mac_address": "fa:16:3e:66:66:66",
            "fixed_ips": [{"subnet_id": fabric._subnet_id(net), "ip_address": "192.0.2.66"}],
            "binding:host_id": "host-c",
            "device_owner": "compute:nova",
            "admin_state_up": True,
        }
    )
    tmp = fabric.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(document))
    tmp.rename(fabric.state_file)
    wait_for("the peer's packets accepted", lambda: can_ping(evil, vm1.address), timeout=30)


class _RoutedFabric(Fabric):
    """Two tenant networks (192.0.2.0/24, 198.51.100.0/24) and a router between them,
    hosted on ``router_host``."""

    router_id = ""
    router_host = ""
    second = ""

    def state(self) -> dict[str, Any]:
        doc = super().state()
        cidrs = {self.second: "198.51.100.0/24"}
        ports = []
        for subnet in doc["subnets"]:
            cidr = cidrs.get(subnet["network_id"], "192.0.2.0/24")
            gateway = cidr.replace(".0/24", ".1")
            subnet.update(cidr=cidr, gateway_ip=gateway)
            ports.append(
                {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, subnet["id"])),
                    "network_id": subnet["network_id"],
                    "mac_address": f"fa:16:3e:00:ab:{len(ports):02x}",
                    "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": gateway}],
                    "binding:host_id": self.router_host,
                    "device_owner": "network:router_interface",
                    "device_id": self.router_id,
                }
            )
        doc["ports"] += ports
        doc["routers"] = [{"id": self.router_id, "name": "r1"}]
        return doc


def test_ovs_network_node_routes_between_networks(
    fabric: Fabric, switches: dict[str, PrivateOvs]
) -> None:
    """A network node on Open vSwitch: the router lives on host-a (its ports on host-a's
    br-int), the VMs of both networks on host-b; they reach each other only through it,
    over VXLAN both ways, ICMP and TCP."""
    fabric.__class__ = _RoutedFabric
    assert isinstance(fabric, _RoutedFabric)
    host_a, host_b = _two_hosts(fabric, switches)
    host_a.host_mounts = True  # its qrouter- namespace visible from here
    host_a.extra_config += "[agent]\nl3_driver = namespace\n"
    net1, net2 = fabric.add_network(1001), fabric.add_network(1002)
    fabric.router_id, fabric.router_host, fabric.second = str(uuid.uuid4()), "host-a", net2
    fabric.namespaces.insert(0, f"qrouter-{fabric.router_id}")
    vm1 = add_ovs_vm(fabric, switches, "vm1", host_b, net1, "192.0.2.10/24")
    vm2 = add_ovs_vm(fabric, switches, "vm2", host_b, net2, "198.51.100.10/24")
    ip(vm1.netns, "route", "add", "default", "via", "192.0.2.1")
    ip(vm2.netns, "route", "add", "default", "via", "198.51.100.1")
    fabric.start_agents()
    wait_for("vm1 reaches vm2 through the router", lambda: can_ping(vm1.netns, vm2.address),
             timeout=60)  # fmt: skip
    assert tcp_exchange(vm2, vm1)
    # the router's ports are on host-a's br-int, tagged like VM ports
    ports = switches["host-a"].vsctl("list-ports", "br-int").split()
    router_taps = [p for p in ports if p.startswith("tap")]
    assert len(router_taps) == 2, ports
    for tap in router_taps:
        assert int(switches["host-a"].vsctl("get", "Port", tap, "tag")) > 0
