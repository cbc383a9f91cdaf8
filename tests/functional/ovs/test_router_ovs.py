"""Routers on an Open vSwitch host: the namespace L3 driver's ports on br-int.

A private ovsdb-server/ovs-vswitchd (userspace datapath) in the host namespace, the
openvswitch L2 driver, and the namespace L3 driver with ``[agent] l2_driver =
openvswitch``: the router's host ends go on br-int with os-vif's external_ids through the
L2 driver's host plug (its OVSDB connection and pass snapshot), the L2 driver wires them
like VM ports, and two VMs on two VXLAN networks reach each other
through the router (ICMP and TCP: the router ends compute their own checksums on the
userspace datapath). Removing the router removes its br-int ports. OVS state is read
back with ovs-vsctl, not with the code under test.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from netagent.conf import agent as agent_conf
from netagent.conf import iptables as ipt_conf
from netagent.conf import ovs as ovs_conf
from netagent.drivers.base import NetworkPlan, PortPlan
from netagent.drivers.l3namespace import NamespaceL3Driver
from netagent.drivers.openvswitch import OpenvswitchDriver
from netagent.model import DesiredState
from netagent.model.network import Network, Subnet
from netagent.model.port import FixedIP, Port
from netagent.model.router import Router, RouterPort
from tests.common.ovs import PrivateOvs
from tests.common.traffic import ask, whoami_server
from tests.functional.drivers.helpers import network, port
from tests.functional.ovs.conftest import can_ping, plug_vm, run


@pytest.fixture
def l2(make_driver: Callable[..., OpenvswitchDriver]) -> OpenvswitchDriver:
    return make_driver()


@pytest.fixture
def l3(
    l2: OpenvswitchDriver, ovs: PrivateOvs, netns: str, tmp_path: Path
) -> Iterator[NamespaceL3Driver]:
    conf = cfg.ConfigOpts()
    for register in (agent_conf.register_opts, ipt_conf.register_opts, ovs_conf.register_opts):
        register(conf)
    fixture = config_fixture.Config(conf)
    fixture.setUp()
    fixture.config(group="agent", l2_driver="openvswitch")
    fixture.config(group="ovs", ovsdb_connection=ovs.connection, datapath_type="netdev")
    fixture.config(group="iptables", backend="nft")
    ledger = str(tmp_path / "ledger")
    driver = NamespaceL3Driver(conf, netns=netns, ledger_dir=ledger, plug=l2.host_plug(netns))
    try:
        yield driver
    finally:
        for router_id in driver._applied.copy():
            run("ip", "netns", "delete", f"qrouter-{router_id}")
        fixture.cleanUp()


def _subnet(net: Network, cidr: str) -> Subnet:
    gateway = ipaddress.ip_network(cidr).network_address + 1
    return Subnet(str(uuid.uuid4()), net.id, ipaddress.ip_network(cidr), 4, gateway)


def _with_ip(p: Port, subnet: Subnet, address: str, owner: str = "") -> Port:
    fixed = (FixedIP(subnet.id, ipaddress.ip_address(address)),)
    return dataclasses.replace(p, fixed_ips=fixed, device_owner=owner)


def test_router_ports_on_br_int_route_between_networks(
    make_driver: Callable[..., OpenvswitchDriver],
    l2: OpenvswitchDriver,
    l3: NamespaceL3Driver,
    ovs: PrivateOvs,
    netns: str,
    make_netns: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nets = [network(1001), network(1002)]
    subnets = [_subnet(nets[0], "192.0.2.0/24"), _subnet(nets[1], "198.51.100.0/24")]
    router_id = str(uuid.uuid4())
    vms, vm_ports, router_ports = [], [], []
    for net, subnet in zip(nets, subnets, strict=True):
        vm_port = _with_ip(port(net), subnet, str(subnet.cidr.network_address + 10))
        vm = make_netns("vm")
        plug_vm(ovs, netns, vm, vm_port.id, vm_port.mac_address, f"{vm_port.addresses[0]}/24")
        run("ip", "-n", vm, "route", "add", "default", "via", str(subnet.gateway_ip))
        vms.append(vm)
        vm_ports.append(vm_port)
        rp = _with_ip(port(net), subnet, str(subnet.gateway_ip), "network:router_interface")
        router_ports.append(dataclasses.replace(rp, device_id=router_id))
    router = Router(
        id=router_id,
        interfaces=tuple(
            RouterPort(rp, (s,), 1450) for rp, s in zip(router_ports, subnets, strict=True)
        ),
    )
    state = DesiredState.build(networks=nets, subnets=subnets, routers=[router])

    # the router first (as the agent: routers, then networks and ports)
    out = l3.apply_routers([router], state)
    assert not out.failed, out.failed
    for rp in router_ports:
        ids = ovs.vsctl("get", "Interface", rp.device_name, "external_ids")
        assert f'iface-id="{rp.id}"' in ids and f'attached-mac="{rp.mac_address}"' in ids
    l2.begin_pass()
    assert not l2.ensure_networks([NetworkPlan(n, {}) for n in nets]).failed
    plans = [
        PortPlan(p, next(n for n in nets if n.id == p.network_id))
        for p in (*vm_ports, *router_ports)
    ]
    plugged = l2.plug_ports(plans)
    l2.end_pass()
    assert plugged.succeeded == {p.port.id for p in plans}, plugged.failed
    tags = {p.port.id: int(ovs.vsctl("get", "Port", p.port.device_name, "tag")) for p in plans}
    assert tags[vm_ports[0].id] == tags[router_ports[0].id] != tags[vm_ports[1].id]
    assert tags[vm_ports[1].id] == tags[router_ports[1].id]

    assert can_ping(vms[0], "192.0.2.1")
    assert can_ping(vms[0], "198.51.100.10")  # through the router
    with whoami_server(vms[1], "vm2"):
        assert ask(vms[0], "198.51.100.10") == "vm2 192.0.2.10"
    # TCP from the router itself (its checksums cross the userspace datapath)
    with whoami_server(f"qrouter-{router_id}", "router"):
        assert ask(vms[0], "192.0.2.1") == "router 192.0.2.10"

    # an agent restart finds everything in place: its pass (routers, then networks and
    # ports, as the agent's) reads OVSDB once for both drivers and writes nothing
    before = ovs.vsctl("--columns=_uuid,name", "list", "Interface")
    l2_again = make_driver()
    snapshots = []
    real_snapshot = l2_again._ovsdb.snapshot
    monkeypatch.setattr(
        l2_again._ovsdb, "snapshot", lambda: snapshots.append(1) or real_snapshot()
    )
    again = NamespaceL3Driver(
        l3.conf, netns=netns, ledger_dir=str(l3.ledger_dir), plug=l2_again.host_plug(netns)
    )
    l2_again.begin_pass()
    assert not again.apply_routers([router], state).failed
    assert not l2_again.ensure_networks([NetworkPlan(n, {}) for n in nets]).failed
    assert l2_again.plug_ports(plans).succeeded == {p.port.id for p in plans}
    l2_again.end_pass()
    assert (len(snapshots), l2_again.ovsdb_transactions, l2_again.flow_changes) == (1, 0, 0)
    assert ovs.vsctl("--columns=_uuid,name", "list", "Interface") == before

    # the router goes: its ports leave br-int with it
    assert not l3.remove_routers([router_id]).failed
    remaining = ovs.vsctl("list-ports", "br-int")
    assert not any(rp.device_name in remaining for rp in router_ports), remaining
    assert vm_ports[0].device_name in remaining
