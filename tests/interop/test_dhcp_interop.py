"""Guests get DHCP and metadata from the stock neutron-dhcp-agent plugged by netagent.

Module-scoped scenario (tests build on each other in file order): two simulated hosts run
netagent (Linux bridge, iptables firewall); host-a also runs the unmodified
``neutron-dhcp-agent`` of the interop venv with ``interface_driver = netagent``, dnsmasq
and haproxy from Debian, and a stand-in metadata agent on its proxy socket. A VXLAN
network with a DHCP-enabled subnet gets a DHCP port (created by the agent, bound by
netagent's ML2 driver, its ``tap`` end wired by netagent); the "VMs" are namespaces with no
address that run ISC dhclient. Assertions are on leases, packets and the server's view.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fullstack import harness
from tests.interop import cloud, dhcp, neutron_server
from tests.interop.api import NeutronApi

HOSTS = {"host-a": "198.18.0.1", "host-b": "198.18.0.2"}
TIMEOUT = 60
CIDR = "192.0.2.0/24"
GATEWAY = "192.0.2.1"
CIDR6 = "fd00:12::/64"
METADATA = "169.254.169.254"


def _wait(what: str, probe: Any, timeout: float = TIMEOUT) -> Any:
    return neutron_server.wait_until(what, probe, timeout, 0.5)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dhcp")


@pytest.fixture(scope="module")
def fabric(neutron: neutron_server.NeutronServer, workdir: Path) -> Iterator[cloud.InteropFabric]:
    with cloud.running_fabric(neutron, workdir, HOSTS, firewall_driver="iptables") as fab:
        yield fab


@pytest.fixture(scope="module")
def agent(
    neutron: neutron_server.NeutronServer,
    api: NeutronApi,
    fabric: cloud.InteropFabric,
    workdir: Path,
) -> Iterator[dhcp.DhcpAgent]:
    with dhcp.running_agent(neutron, api, fabric.hosts["host-a"], HOSTS, timeout=TIMEOUT) as agent:
        yield agent


@pytest.fixture(scope="module")
def network(api: NeutronApi, agent: dhcp.DhcpAgent) -> dict[str, Any]:
    net = api.create("network", name="interop-dhcp")
    agent.network_ids.add(net["id"])
    subnet = api.create(
        "subnet",
        network_id=net["id"],
        cidr=CIDR,
        ip_version=4,
        enable_dhcp=True,
        gateway_ip=GATEWAY,
    )
    net["subnet_id"] = subnet["id"]
    return net


def _fixed_ip(port: dict[str, Any], version: int) -> str:
    """The port's first fixed IP of ``version``."""
    sep = "." if version == 4 else ":"
    return next(str(ip["ip_address"]) for ip in port["fixed_ips"] if sep in ip["ip_address"])


def _dhcp_ports(api: NeutronApi, network_id: str) -> list[dict[str, Any]]:
    return api.ports(network_id=network_id, device_owner="network:dhcp")


@pytest.fixture(scope="module")
def dhcp_port(api: NeutronApi, agent: dhcp.DhcpAgent, network: dict[str, Any]) -> dict[str, Any]:
    def active() -> dict[str, Any] | None:
        ports = _dhcp_ports(api, network["id"])
        return ports[0] if ports and ports[0]["status"] == "ACTIVE" else None

    _wait("DHCP port ACTIVE", active)
    # dual stack: the same DHCP port serves DHCPv6 (stateful: dnsmasq hands out the ports'
    # fixed IPv6 addresses as IA_NA; no router, so no RA). Added once the agent serves the
    # network: created right after the IPv4 subnet, the IPv6 one raced the network's
    # scheduling here, the agent never heard of it and no guest port became ACTIVE.
    subnet6 = api.create(
        "subnet",
        network_id=network["id"],
        cidr=CIDR6,
        ip_version=6,
        enable_dhcp=True,
        ipv6_address_mode="dhcpv6-stateful",
    )
    network["subnet6_id"] = subnet6["id"]

    def dual_stack() -> dict[str, Any] | None:
        port = active()
        return port if port and any(":" in ip["ip_address"] for ip in port["fixed_ips"]) else None

    port: dict[str, Any] = _wait("DHCP port with an IPv6 address", dual_stack)
    return port


class Guest:
    """A VM namespace without addresses; its tap carries a Neutron port."""

    def __init__(self, port: dict[str, Any], netns: str, host: harness.Host, workdir: Path):
        self.port = port
        self.netns = netns
        self.host = host
        self.client = dhcp.Dhclient(netns, workdir)

    @property
    def address(self) -> str:
        return _fixed_ip(self.port, 4)

    @property
    def address6(self) -> str:
        return _fixed_ip(self.port, 6)

    @property
    def tap(self) -> str:
        return "tap" + self.port["id"][:11]


@pytest.fixture(scope="module")
def guests(
    api: NeutronApi,
    fabric: cloud.InteropFabric,
    network: dict[str, Any],
    dhcp_port: dict[str, Any],
    workdir: Path,
) -> Iterator[dict[str, Guest]]:
    result: dict[str, Guest] = {}
    try:
        for index, name in enumerate(HOSTS):
            port = api.compute_port(network["id"], name)
            netns = f"{cloud.NETNS_PREFIX}{fabric.tag}-guest{index}"
            fabric.namespaces.append(netns)
            host = fabric.hosts[name]
            # no address and the default MTU: both must come from DHCP
            harness.vmctl.create_vm(
                vm_ns=netns,
                port_id=port["id"],
                mac=port["mac_address"],
                ips=[],
                host_ns=host.netns,
            )
            result[name] = Guest(port, netns, host, workdir)
        for guest in result.values():
            _wait(f"port {guest.port['id']} ACTIVE", lambda g=guest: _status(api, g) == "ACTIVE")
        yield result
    finally:
        # dhclient daemons live in the guests' namespaces
        for pid in dhcp.pids_in_namespaces([g.netns for g in result.values()]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _status(api: NeutronApi, guest: Guest) -> str:
    return str(api.show("port", guest.port["id"])["status"])


def _links(netns: str) -> dict[str, dict[str, Any]]:
    return harness.links(netns)


def _addresses(netns: str) -> list[str]:
    out = harness.ip(netns, "-4", "-o", "addr", "show", "dev", "eth0").stdout
    return [line.split()[3] for line in out.splitlines()]


def _routes(netns: str) -> str:
    return harness.ip(netns, "-4", "route", "show").stdout


# -- tests ----------------------------------------------------------------------------------


def test_dhcp_port_plugged_bound_and_wired(
    api: NeutronApi,
    fabric: cloud.InteropFabric,
    network: dict[str, Any],
    dhcp_port: dict[str, Any],
) -> None:
    host = fabric.hosts["host-a"]
    assert dhcp_port["binding:host_id"] == "host-a"
    assert dhcp_port["binding:vif_type"] == "tap"
    tap = "tap" + dhcp_port["id"][:11]
    ns_end = "ns-" + dhcp_port["id"][:11]
    links = _links(host.netns)
    assert links[tap]["master"] == "brq" + network["id"][:11]
    assert links[tap]["linkinfo"]["info_kind"] == "veth"
    inside = _links(f"qdhcp-{network['id']}")
    assert inside[ns_end]["address"] == dhcp_port["mac_address"]
    assert inside[ns_end]["mtu"] == links[tap]["mtu"] == network["mtu"] == 1450


def test_guest_gets_fixed_ip_gateway_and_mtu(
    network: dict[str, Any], guests: dict[str, Guest]
) -> None:
    guest = guests["host-a"]
    assert _links(guest.netns)["eth0"]["mtu"] == 1500
    assert guest.client.once() == 0, (guest.client.dir / "dhclient.out").read_text()
    lease = guest.client.leases()[-1]
    assert lease["reason"] == "BOUND"
    assert lease["new_ip_address"] == guest.address
    assert lease["new_routers"] == GATEWAY
    assert lease["new_interface_mtu"] == str(network["mtu"]) == "1450"
    assert _addresses(guest.netns) == [f"{guest.address}/24"]
    assert _links(guest.netns)["eth0"]["mtu"] == 1450
    assert f"default via {GATEWAY}" in _routes(guest.netns)


def test_guest_on_another_host_gets_its_lease_over_vxlan(guests: dict[str, Guest]) -> None:
    guest = guests["host-b"]
    assert guest.client.once() == 0, (guest.client.dir / "dhclient.out").read_text()
    lease = guest.client.leases()[-1]
    assert (lease["reason"], lease["new_ip_address"]) == ("BOUND", guest.address)
    assert _links(guest.netns)["eth0"]["mtu"] == 1450


def test_metadata_request_reaches_the_proxy_in_the_dhcp_namespace(
    network: dict[str, Any], guests: dict[str, Guest], dhcp_port: dict[str, Any]
) -> None:
    guest = guests["host-a"]
    dhcp_address = _fixed_ip(dhcp_port, 4)
    # isolated subnet: dnsmasq pushes a host route to the metadata address via the DHCP port
    assert f"{METADATA} via {dhcp_address}" in _routes(guest.netns)
    status, body = dhcp.http_get(guest.netns, f"http://{METADATA}/latest/meta-data/")
    assert status == 200, body
    answer = json.loads(body)
    assert answer["path"] == "/latest/meta-data/"
    assert answer["network_id"] == network["id"]  # added by Neutron's haproxy
    assert answer["forwarded_for"] == guest.address


def _link_local_ready(netns: str) -> bool:
    out = harness.ip(netns, "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link").stdout
    return "fe80::" in out and "tentative" not in out


def test_guests_get_dhcpv6_stateful_addresses_and_reach_each_other(
    network: dict[str, Any], guests: dict[str, Guest], workdir: Path
) -> None:
    clients = {}
    try:
        for name, guest in guests.items():
            harness.wait_for(
                f"{name} link-local", lambda g=guest: _link_local_ready(g.netns), timeout=15
            )
            client = clients[name] = dhcp.Dhclient(guest.netns, workdir, family=6)
            started = time.monotonic()
            assert client.once() == 0, (client.dir / "dhclient.out").read_text()
            print(
                json.dumps(
                    {
                        "test": "dhcp_interop",
                        "host": name,
                        "dhcpv6_time_to_lease_s": round(time.monotonic() - started, 2),
                    }
                )
            )
            lease = client.leases()[-1]
            assert (lease["reason"], lease["new_ip6_address"]) == ("BOUND6", guest.address6)
            out = harness.ip(guest.netns, "-6", "-o", "addr", "show", "dev", "eth0").stdout
            assert f"{guest.address6}/" in out
            assert lease["new_ip6_prefixlen"] == "128"  # IA_NA: the on-link prefix is RA's
            # what a router's RA would add (no router here): the subnet on-link
            harness.ip(guest.netns, "-6", "route", "replace", CIDR6, "dev", "eth0")
        # the leased addresses carry traffic: host-b's guest reaches host-a's over VXLAN
        a, b = guests["host-a"], guests["host-b"]
        harness.wait_for("b -> a ping6", lambda: harness.can_ping(b.netns, a.address6), timeout=30)
    finally:
        for client in clients.values():
            client.stop()


def test_dhcp_port_is_trusted_but_does_not_weaken_other_ports_filters(
    api: NeutronApi,
    fabric: cloud.InteropFabric,
    network: dict[str, Any],
    guests: dict[str, Guest],
    dhcp_port: dict[str, Any],
) -> None:
    a, b = guests["host-a"], guests["host-b"]
    qdhcp = f"qdhcp-{network['id']}"
    # the default group admits its members: b reaches a (positive control)
    harness.wait_for("b -> a ping", lambda: harness.can_ping(b.netns, a.address), timeout=30)
    # the DHCP port is unfiltered itself, but the guests' ingress filters still apply to it
    assert not harness.can_ping(qdhcp, a.address)
    assert not harness.can_ping(qdhcp, b.address)
    # and it was the filter: a rule admitting the DHCP port's address lets the ping through
    dhcp_address = _fixed_ip(dhcp_port, 4)
    rule = api.create(
        "security_group_rule",
        security_group_id=a.port["security_groups"][0],
        direction="ingress",
        ethertype="IPv4",
        protocol="icmp",
        remote_ip_prefix=f"{dhcp_address}/32",
    )
    try:
        harness.wait_for("DHCP ns -> a ping", lambda: harness.can_ping(qdhcp, a.address), 30)
    finally:
        api.remove("security_group_rule", rule["id"])
    harness.wait_for("DHCP ns -> a blocked", lambda: not harness.can_ping(qdhcp, a.address), 30)


def test_lease_renews_while_netagent_is_killed_and_after_restart(
    api: NeutronApi,
    fabric: cloud.InteropFabric,
    guests: dict[str, Guest],
    dhcp_port: dict[str, Any],
) -> None:
    guest = guests["host-a"]
    host = fabric.hosts["host-a"]
    tap = "tap" + dhcp_port["id"][:11]
    before = fabric.ifindexes(host, ("brq", "nvx-", "tap"))
    guest.client.stop()
    calls = len(guest.client.leases())
    host.stop_agent(signal.SIGKILL)
    assert not host.agent_alive()
    # INIT-REBOOT: DHCPREQUEST for the lease it has, answered while netagent is dead
    assert guest.client.once() == 0, (guest.client.dir / "dhclient.out").read_text()
    lease = guest.client.leases()[-1]
    assert len(guest.client.leases()) > calls
    assert (lease["reason"], lease["new_ip_address"]) == ("REBOOT", guest.address)
    host.start_agent()
    _wait(
        "netagent on host-a alive again",
        lambda: any(a["alive"] for a in api.agents(host="host-a", agent_type="Netagent agent")),
    )
    _wait(
        "DHCP port ACTIVE again", lambda: api.show("port", dhcp_port["id"])["status"] == "ACTIVE"
    )
    assert fabric.ifindexes(host, ("brq", "nvx-", "tap")) == before
    assert _links(host.netns)[tap]["master"] == "brq" + dhcp_port["network_id"][:11]
    guest.client.stop()
    assert guest.client.once() == 0
    assert guest.client.leases()[-1]["new_ip_address"] == guest.address


def _alive(pid: int) -> bool:
    """Running (a zombie is not: PID 1 here may reap the killed daemons late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def test_a_crashed_runs_dhcp_leftovers_are_removed_and_a_new_agent_serves_again(
    fabric: cloud.InteropFabric,
    agent: dhcp.DhcpAgent,
    network: dict[str, Any],
    guests: dict[str, Guest],
    dhcp_port: dict[str, Any],
) -> None:
    host = fabric.hosts["host-a"]
    qdhcp = f"qdhcp-{network['id']}"
    tap = "tap" + dhcp_port["id"][:11]
    bridge = "brq" + network["id"][:11]
    inside = dhcp.pids_in_namespaces([qdhcp])
    assert inside  # dnsmasq, haproxy
    # the run "crashes": the agent dies, dnsmasq and haproxy (daemons) live on
    agent.stop(signal.SIGKILL)
    assert all(_alive(pid) for pid in inside)
    removed = dhcp.remove_leftovers()
    assert f"namespace {qdhcp}" in removed, removed
    assert not any(_alive(pid) for pid in inside)
    assert qdhcp not in os.listdir("/run/netns")
    # the veth pair goes with the namespace: the kernel destroys a namespace's devices
    # in a work queue after its last reference is gone, not within `ip netns delete`
    _wait(f"{tap} gone with {qdhcp}", lambda: tap not in _links(host.netns))
    # a new agent plugs the DHCP port again (fresh state), netagent wires the new tap
    agent.start()
    _wait(
        f"{tap} back on {bridge}", lambda: _links(host.netns).get(tap, {}).get("master") == bridge
    )
    guest = guests["host-a"]
    guest.client.stop()
    started = time.monotonic()
    assert guest.client.once() == 0, (guest.client.dir / "dhclient.out").read_text()
    print(
        json.dumps(
            {
                "test": "dhcp_interop",
                "lease_after_agent_restart_s": round(time.monotonic() - started, 2),
            }
        )
    )
    assert guest.client.leases()[-1]["new_ip_address"] == guest.address


def test_deleting_the_subnet_removes_the_dhcp_ports_wiring(
    api: NeutronApi,
    fabric: cloud.InteropFabric,
    network: dict[str, Any],
    guests: dict[str, Guest],
    dhcp_port: dict[str, Any],
) -> None:
    host = fabric.hosts["host-a"]
    tap = "tap" + dhcp_port["id"][:11]
    assert tap in _links(host.netns)
    for guest in guests.values():
        guest.client.stop()
        api.remove("port", guest.port["id"])
    api.remove("subnet", network["subnet6_id"])
    api.remove("subnet", network["subnet_id"])
    _wait("DHCP port deleted", lambda: not _dhcp_ports(api, network["id"]))
    _wait(f"{tap} removed", lambda: tap not in _links(host.netns))
    bridge = "brq" + network["id"][:11]
    links = _links(host.netns)
    assert not [n for n, d in links.items() if d.get("master") == bridge]
