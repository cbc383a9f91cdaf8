"""Security groups through the Neutron REST API change what passes between two VMs.

Two simulated hosts run ``netagent-agent`` with ``[agent] source = neutron`` and
``firewall_driver = iptables`` (nft backend). A security group is created through the API
(Neutron gives it only its default egress rules, no ingress rule) and two compute ports in
it, one per host, are bound and wired. Then, with real packets across the VXLAN network:

* ICMP between the VMs is blocked, as no rule allows it;
* a rule added through the API (ingress ICMP, IPv4) lets the pings pass within
  :data:`CHANGE_TIMEOUT` (the server casts ``security_groups_rule_updated``; each agent
  refetches ``security_group_info_for_devices`` and rewrites the group's chain);
* deleting that rule stops them again within the same bound;
* an allowed address pair added to b's port through the API becomes a member of the
  group on host a, so a rule whose remote group is the group lets b's traffic from that
  address in. Neutron casts no member update for address pairs; host a learns it from
  the server's push of the Port object (:mod:`netagent.rpc.pushes`), well before its
  periodic resync (300 s);
* an address removed from an address group through the API stops b's traffic that a rule
  with that remote address group let in, on host a, within the same bound (no legacy cast
  at all says an address group changed: the AddressGroup push does).

Module-scoped scenario; the tests run in file order and build on each other's state.
Host names, tunnel addresses and the subnet differ from test_neutron_interop.py so the two
modules never share an agent record or a tunnel endpoint in the server.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fullstack import harness
from tests.interop import cloud, neutron_server, sg_checks
from tests.interop.api import PROJECT_ID, NeutronApi
from tests.interop.sg_checks import CHANGE_TIMEOUT, STATUS_TIMEOUT

HOSTS = {"sg-host-a": "198.18.0.11", "sg-host-b": "198.18.0.12"}
#: The remote-group rule's port, and the remote-address-group rule's.
MEMBER_PORT = 5001
ADDRESS_GROUP_PORT = 5002


@pytest.fixture(scope="module")
def fabric(
    neutron: neutron_server.NeutronServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[cloud.InteropFabric]:
    with cloud.running_fabric(
        neutron, tmp_path_factory.mktemp("sg-fabric"), HOSTS, firewall_driver="iptables"
    ) as fab:
        yield fab


@pytest.fixture(scope="module")
def group(api: NeutronApi) -> dict[str, Any]:
    """A fresh group: Neutron's default egress rules (IPv4, IPv6), no ingress rule."""
    sg = api.create("security_group", name=f"interop-sg-{uuid.uuid4().hex[:6]}")
    rules = sg["security_group_rules"]
    assert rules and all(r["direction"] == "egress" for r in rules), rules
    return sg


@pytest.fixture(scope="module")
def vms(
    api: NeutronApi, fabric: cloud.InteropFabric, group: dict[str, Any]
) -> dict[str, harness.Vm]:
    """One compute port in ``group`` per host, bound, wired and ACTIVE, and its VM."""
    for name in HOSTS:
        sg_checks.wait_alive_with_iptables(api, name)
    net = api.plain_network("interop-sg-vxlan", "203.0.113.0/24")
    result = {}
    for index, (name, host) in enumerate(fabric.hosts.items()):
        port = api.compute_port(net["id"], name, security_groups=[group["id"]])
        assert port["binding:vif_type"] == "tap", port
        assert port["binding:vif_details"]["port_filter"] is True, port
        result[name] = fabric.add_neutron_vm(f"sgvm{index}", host, port, mtu=net["mtu"])
    fabric.wait_wired(*result.values(), timeout=STATUS_TIMEOUT)
    for vm in result.values():
        sg_checks.wait_status(api, vm.port_id, "ACTIVE")
    return result


def test_icmp_blocked_without_an_ingress_rule(vms: dict[str, harness.Vm]) -> None:
    a, b = vms["sg-host-a"], vms["sg-host-b"]
    sg_checks.assert_blocked(a, b)
    sg_checks.assert_blocked(b, a)


def test_rule_added_through_the_api_lets_icmp_pass(
    api: NeutronApi, fabric: cloud.InteropFabric, vms: dict[str, harness.Vm], group: dict[str, Any]
) -> None:
    a, b = vms["sg-host-a"], vms["sg-host-b"]
    rule = api.create(
        "security_group_rule",
        security_group_id=group["id"],
        direction="ingress",
        ethertype="IPv4",
        protocol="icmp",
    )
    group["icmp_rule_id"] = rule["id"]
    started = time.monotonic()
    fabric.wait_ping(a, b, timeout=CHANGE_TIMEOUT)
    fabric.wait_ping(b, a, timeout=max(CHANGE_TIMEOUT - (time.monotonic() - started), 5))
    # TCP is still not allowed: only the ICMP rule was added (probe port 22 on b).
    assert not _tcp_ok(a, b, 22)


def test_rule_deleted_through_the_api_stops_icmp(
    api: NeutronApi, fabric: cloud.InteropFabric, vms: dict[str, harness.Vm], group: dict[str, Any]
) -> None:
    a, b = vms["sg-host-a"], vms["sg-host-b"]
    rule_id = group.get("icmp_rule_id")
    assert rule_id, "the rule of the previous test is missing"
    fabric.wait_ping(a, b)
    api.remove("security_group_rule", rule_id)
    sg_checks.wait_blocked(a, b)
    sg_checks.wait_blocked(b, a)


def test_address_pair_becomes_a_remote_group_member_on_the_other_host(
    api: NeutronApi, vms: dict[str, harness.Vm], group: dict[str, Any]
) -> None:
    a, b = vms["sg-host-a"], vms["sg-host-b"]
    taken = {ip["ip_address"] for p in api.ports() for ip in p["fixed_ips"]}
    # the address pair added to b's port, and an address of b's that stays no member
    free = (f"203.0.113.{n}" for n in range(250, 2, -1))
    pair, not_pair = [address for address in free if address not in taken][:2]
    _allow_tcp(api, group["id"], MEMBER_PORT, remote_group_id=group["id"])
    harness.wait_for(
        "the member rule on host a",
        lambda: _tcp_ok(b, a, MEMBER_PORT),
        timeout=CHANGE_TIMEOUT,
    )
    harness.run("ip", "netns", "exec", b.netns, "ip", "addr", "add", f"{pair}/24", "dev", "eth0")
    # neither b's address (anti-spoofing on host b) nor a member (host a) yet
    assert not _tcp_ok(b, a, MEMBER_PORT, source=pair)
    api.update("port", b.port_id, allowed_address_pairs=[{"ip_address": pair}])
    harness.wait_for(
        f"{pair} a member on host a",
        lambda: _tcp_ok(b, a, MEMBER_PORT, source=pair),
        timeout=CHANGE_TIMEOUT,
    )
    # and no more than that: another address of b's is still neither
    harness.run(
        "ip", "netns", "exec", b.netns, "ip", "addr", "add", f"{not_pair}/24", "dev", "eth0"
    )
    assert not _tcp_ok(b, a, MEMBER_PORT, source=not_pair)


def test_address_removed_from_an_address_group_is_refused_on_the_other_host(
    api: NeutronApi, vms: dict[str, harness.Vm], group: dict[str, Any]
) -> None:
    a, b = vms["sg-host-a"], vms["sg-host-b"]
    address = f"{b.address}/32"
    created = api.request(
        "POST",
        "/v2.0/address-groups",
        {
            "address_group": {
                "name": "interop-ag",
                "addresses": [address],
                "project_id": PROJECT_ID,
            }
        },
    )["address_group"]
    _allow_tcp(api, group["id"], ADDRESS_GROUP_PORT, remote_address_group_id=created["id"])
    harness.wait_for(
        "b let in through the address group",
        lambda: _tcp_ok(b, a, ADDRESS_GROUP_PORT),
        timeout=CHANGE_TIMEOUT,
    )
    api.request(
        "PUT",
        f"/v2.0/address-groups/{created['id']}/remove_addresses",
        {"addresses": [address]},
    )
    harness.wait_for(
        "b refused once its address left the group",
        lambda: not _tcp_ok(b, a, ADDRESS_GROUP_PORT),
        timeout=CHANGE_TIMEOUT,
    )
    assert not any(_tcp_ok(b, a, ADDRESS_GROUP_PORT) for _ in range(2))
    assert _tcp_ok(b, a, MEMBER_PORT)  # the group's own rule still lets b in


def _allow_tcp(api: NeutronApi, group_id: str, port: int, **remote: str) -> None:
    """An ingress IPv4 TCP rule for ``port`` from a remote group or address group."""
    api.create(
        "security_group_rule",
        security_group_id=group_id,
        direction="ingress",
        ethertype="IPv4",
        protocol="tcp",
        port_range_min=port,
        port_range_max=port,
        **remote,
    )


def _tcp_ok(src: harness.Vm, dst: harness.Vm, port: int, source: str = "") -> bool:
    """A TCP connect from ``src`` (from its address ``source`` if given) to ``dst``: True
    if anything answered (SYN-ACK or RST)."""
    address = dst.address
    code = (
        "import socket,sys\n"
        "s=socket.socket(); s.settimeout(2)\n"
        f"s.bind(({source!r}, 0))\n"
        f"try: s.connect(({address!r},{port}))\n"
        "except ConnectionRefusedError: sys.exit(0)\n"
        "except OSError: sys.exit(1)\n"
    )
    proc = harness.run("ip", "netns", "exec", src.netns, "python3", "-c", code, check=False)
    return proc.returncode == 0
