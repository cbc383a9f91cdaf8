"""The namespace L3 driver against an in-memory kernel, and its pure layout."""

from __future__ import annotations

import dataclasses
import ipaddress
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from oslo_config import cfg

from netagent import conf as netagent_conf
from netagent.cmd import agent as agent_cmd
from netagent.drivers import base
from netagent.drivers.l3namespace import NamespaceL3Driver
from netagent.drivers.l3namespace import layout as lay
from netagent.drivers.l3namespace.kernel import RouteSpec, RuleSpec
from netagent.drivers.noop import NoopL3Driver
from netagent.drivers.openvswitch import OpenvswitchDriver
from netagent.drivers.openvswitch.hostplug import OvsHostPlug
from netagent.model import DesiredState
from netagent.model.network import Network, NetworkType, Subnet
from netagent.model.port import FixedIP, Port
from netagent.model.router import FloatingIP, Route, Router, RouterPort
from tests.unit.drivers.fake_router_kernel import FakeRouterKernel

EXT = Network(str(uuid.UUID(int=1)), "", NetworkType.FLAT, None, "ext", 1500)
NET = Network(str(uuid.UUID(int=2)), "", NetworkType.VXLAN, 100, None, 1450)
SUB_A = Subnet(
    str(uuid.UUID(int=11)),
    EXT.id,
    ipaddress.ip_network("203.0.113.0/24"),
    4,
    ipaddress.ip_address("203.0.113.1"),
)
SUB_B = Subnet(
    str(uuid.UUID(int=12)),
    EXT.id,
    ipaddress.ip_network("198.51.100.0/24"),
    4,
    ipaddress.ip_address("198.51.100.1"),
)
SUB_IN = Subnet(
    str(uuid.UUID(int=13)),
    NET.id,
    ipaddress.ip_network("192.0.2.0/24"),
    4,
    ipaddress.ip_address("192.0.2.1"),
)
ROUTER_ID = "3f1c2a8e-5d0b-4c57-9a57-0d5f8b5d2e11"
GW_PORT = "aaaaaaaa-0000-4000-8000-000000000001"
IF_PORT = "bbbbbbbb-0000-4000-8000-000000000002"


def _port(pid: str, net: Network, owner: str, *fixed: tuple[Subnet, str]) -> Port:
    return Port(
        id=pid,
        network_id=net.id,
        mac_address="fa:16:3e:00:00:" + pid[-2:],
        fixed_ips=tuple(FixedIP(s.id, ipaddress.ip_address(a)) for s, a in fixed),
        host="h",
        device_owner=owner,
        port_security_enabled=False,
        device_id=ROUTER_ID,
    )


def _fip(n: int, floating: str, fixed: str | None) -> FloatingIP:
    return FloatingIP(
        id=str(uuid.UUID(int=100 + n)),
        floating_ip_address=ipaddress.ip_address(floating),
        fixed_ip_address=ipaddress.ip_address(fixed) if fixed else None,
        port_id=str(uuid.UUID(int=200 + n)) if fixed else None,
        router_id=ROUTER_ID,
        floating_network_id=EXT.id,
    )


def router(
    *,
    two_subnets: bool = False,
    fips: tuple[FloatingIP, ...] = (),
    routes: tuple[tuple[str, str], ...] = (),
    snat: bool = True,
    router_id: str = ROUTER_ID,
) -> Router:
    gw_fixed = [(SUB_A, "203.0.113.10")] + ([(SUB_B, "198.51.100.10")] if two_subnets else [])
    gw = _port(GW_PORT, EXT, "network:router_gateway", *gw_fixed)
    rp = _port(IF_PORT, NET, "network:router_interface", (SUB_IN, "192.0.2.1"))
    return Router(
        id=router_id,
        enable_snat=snat,
        gateway=RouterPort(gw, tuple(s for s, _ in gw_fixed), 1500),
        interfaces=(RouterPort(rp, (SUB_IN,), 1450),),
        routes=tuple(Route(ipaddress.ip_network(d), ipaddress.ip_address(n)) for d, n in routes),
        floating_ips=fips,
        external_network_id=EXT.id,
    )


STATE = DesiredState.build(networks=[EXT, NET], subnets=[SUB_A, SUB_B, SUB_IN])


# -- layout -------------------------------------------------------------------------


def test_layout_devices_and_addresses() -> None:
    want = lay.compute(router(fips=(_fip(1, "203.0.113.20", "192.0.2.10"),)), STATE)
    assert want.namespace == f"qrouter-{ROUTER_ID}"
    assert [(d.name, d.host_name, d.mtu, [str(a) for a in d.addresses]) for d in want.devices] == [
        ("qg-aaaaaaaa-00", "tapaaaaaaaa-00", 1500, ["203.0.113.10/24", "203.0.113.20/32"]),
        ("qr-bbbbbbbb-00", "tapbbbbbbbb-00", 1450, ["192.0.2.1/24"]),
    ]


def test_layout_policy_tables_per_external_subnet() -> None:
    fips = (_fip(1, "203.0.113.20", "192.0.2.10"), _fip(2, "198.51.100.20", "192.0.2.11"))
    want = lay.compute(router(two_subnets=True, fips=fips), STATE)
    # tables by subnet id order: SUB_A (…11) -> 1000, SUB_B (…12) -> 1001
    assert want.tables == (1000, 1001)
    net = ipaddress.ip_network
    assert want.rules == {
        RuleSpec(1000, net("203.0.113.20/32"), 1000),
        RuleSpec(1000, net("192.0.2.10/32"), 1000),
        RuleSpec(1000, net("198.51.100.20/32"), 1001),
        RuleSpec(1000, net("192.0.2.11/32"), 1001),
        RuleSpec(2000, net("203.0.113.10/32"), 1000),
        RuleSpec(2000, net("198.51.100.10/32"), 1001),
    }
    defaults = {r for r in want.routes if r.destination.prefixlen == 0}
    qg = "qg-aaaaaaaa-00"
    gw_a, gw_b = ipaddress.ip_address("203.0.113.1"), ipaddress.ip_address("198.51.100.1")
    assert defaults == {
        RouteSpec(254, net("0.0.0.0/0"), gw_a, qg),
        RouteSpec(1000, net("0.0.0.0/0"), gw_a, qg),
        RouteSpec(1001, net("0.0.0.0/0"), gw_b, qg),
    }
    # each table also reaches the internal subnet
    assert (
        RouteSpec(
            1001, net("192.0.2.0/24"), None, "qr-bbbbbbbb-00", ipaddress.ip_address("192.0.2.1")
        )
        in want.routes
    )


def test_layout_on_link_routes_to_extra_subnets_of_the_gateway() -> None:
    base = router(
        fips=(_fip(1, "203.0.113.20", "192.0.2.10"),), routes=(("198.18.0.0/15", "203.0.113.1"),)
    )
    far = Subnet(str(uuid.UUID(int=14)), EXT.id, ipaddress.ip_network("198.51.100.0/24"), 4)
    v6 = Subnet(str(uuid.UUID(int=15)), EXT.id, ipaddress.ip_network("fd00:5::/64"), 6)
    # a subnet the router is on (the kernel's route) and one an extra route names: left alone
    same = Subnet(str(uuid.UUID(int=16)), EXT.id, ipaddress.ip_network("192.0.2.0/24"), 4)
    named = Subnet(str(uuid.UUID(int=17)), EXT.id, ipaddress.ip_network("198.18.0.0/15"), 4)
    assert base.gateway is not None
    gateway = dataclasses.replace(base.gateway, extra_subnets=(far, v6, same, named))
    want = lay.compute(dataclasses.replace(base, gateway=gateway), STATE)
    qg, net = "qg-aaaaaaaa-00", ipaddress.ip_network
    on_link = {r for r in want.routes if r.gateway is None and r.device == qg}
    assert on_link == {
        RouteSpec(254, net("198.51.100.0/24"), None, qg),
        RouteSpec(254, net("fd00:5::/64"), None, qg),
        RouteSpec(1000, net("198.51.100.0/24"), None, qg),
        # the gateway subnet's own on-link route in the policy table (with its source)
        RouteSpec(1000, net("203.0.113.0/24"), None, qg, ipaddress.ip_address("203.0.113.10")),
    }
    # no extra subnets: no such routes
    plain = lay.compute(base, STATE)
    assert not {r for r in plain.routes if r.destination == net("198.51.100.0/24")}


def test_layout_nat_rules() -> None:
    want = lay.compute(router(fips=(_fip(1, "203.0.113.20", "192.0.2.10"),)), STATE)
    text = {chain: [" ".join(r.render(4)) for r in rules] for chain, rules in want.nat.jumps}
    assert text["PREROUTING"] == ["-d 203.0.113.20/32 -j DNAT --to-destination 192.0.2.10"]
    assert text["OUTPUT"] == text["PREROUTING"]
    assert text["POSTROUTING"] == [
        "! -o qg-aaaaaaaa-00 -m conntrack ! --ctstate DNAT -j ACCEPT",
        "-s 192.0.2.10/32 -j SNAT --to-source 203.0.113.20",
        "-s 192.0.2.0/24 -o qg-aaaaaaaa-00 -j SNAT --to-source 203.0.113.10",
        "-s 192.0.2.0/24 -m conntrack --ctstate DNAT -j SNAT --to-source 203.0.113.10",
    ]
    off = lay.compute(router(snat=False), STATE)
    post = [" ".join(r.render(4)) for r in dict(off.nat.jumps)["POSTROUTING"]]
    assert not any("-o qg-aaaaaaaa-00 -j SNAT" in line for line in post)


def test_layout_refuses_a_nexthop_off_every_subnet() -> None:
    with pytest.raises(lay.LayoutError, match=r"nexthop 198\.19\.0\.1"):
        lay.compute(router(routes=(("198.18.0.0/16", "198.19.0.1"),)), STATE)


# -- driver against the fake kernel -------------------------------------------------


@pytest.fixture
def kernel() -> FakeRouterKernel:
    return FakeRouterKernel()


@pytest.fixture
def driver(kernel: FakeRouterKernel, tmp_path: Path) -> NamespaceL3Driver:
    return NamespaceL3Driver(None, kernel=kernel, ledger_dir=str(tmp_path / "ledger"))


def test_apply_builds_then_a_second_pass_changes_nothing(
    driver: NamespaceL3Driver, kernel: FakeRouterKernel
) -> None:
    r = router(
        fips=(_fip(1, "203.0.113.20", "192.0.2.10"),), routes=(("198.19.0.0/16", "192.0.2.5"),)
    )
    out = driver.apply_routers([r], STATE)
    assert out.succeeded == {ROUTER_ID} and not out.failed
    ns = kernel.ns[f"qrouter-{ROUTER_ID}"]
    assert set(ns.links) == {"qg-aaaaaaaa-00", "qr-bbbbbbbb-00"}
    assert set(kernel.host) == {"tapaaaaaaaa-00", "tapbbbbbbbb-00"}
    assert (
        RouteSpec(
            254,
            ipaddress.ip_network("198.19.0.0/16"),
            ipaddress.ip_address("192.0.2.5"),
            "qr-bbbbbbbb-00",
        )
        in ns.routes
    )
    driver.announcer.wait_idle()
    assert {str(a) for _, _, a in kernel.announced} == {
        "203.0.113.10",
        "203.0.113.20",
        "192.0.2.1",
    }
    kernel.changes.clear()
    kernel.announced.clear()
    # a second driver (an agent restart) adopts everything without a change
    again = NamespaceL3Driver(None, kernel=kernel, ledger_dir=driver.ledger_dir)
    assert again.apply_routers([r], STATE).succeeded == {ROUTER_ID}
    assert driver.apply_routers([r], STATE).succeeded == {ROUTER_ID}
    again.announcer.wait_idle()
    assert kernel.changes == [] and kernel.announced == []


def test_floating_ip_moved_flushes_conntrack_and_announces(
    driver: NamespaceL3Driver, kernel: FakeRouterKernel
) -> None:
    driver.apply_routers([router(fips=(_fip(1, "203.0.113.20", "192.0.2.10"),))], STATE)
    driver.announcer.wait_idle()
    kernel.announced.clear()
    moved = router(fips=(_fip(1, "203.0.113.20", "192.0.2.11"),))
    driver.apply_routers([moved], STATE)
    driver.announcer.wait_idle()
    floating = ipaddress.ip_address("203.0.113.20")
    assert kernel.flushed == [
        (f"qrouter-{ROUTER_ID}", [floating], [ipaddress.ip_address("192.0.2.10")])
    ]
    assert kernel.announced == [(f"qrouter-{ROUTER_ID}", "qg-aaaaaaaa-00", floating)]
    # removed: flushed again, address gone, nothing announced
    kernel.flushed.clear()
    kernel.announced.clear()
    driver.apply_routers([router()], STATE)
    driver.announcer.wait_idle()
    assert kernel.flushed[0][1] == [floating]
    assert kernel.announced == []
    addrs = kernel.ns[f"qrouter-{ROUTER_ID}"].addresses["qg-aaaaaaaa-00"]
    assert {str(a) for a in addrs} == {"203.0.113.10/24"}


def test_one_bad_router_fails_alone(driver: NamespaceL3Driver, kernel: FakeRouterKernel) -> None:
    other = str(uuid.UUID(int=999))
    good = router(router_id=other)
    good = dataclasses.replace(good, gateway=None, interfaces=())
    kernel.refuse_routes.add("198.19.0.0/16")
    bad = router(routes=(("198.19.0.0/16", "192.0.2.5"),))
    out = driver.apply_routers([bad, good], STATE)
    assert out.succeeded == {other}
    assert "add_route 198.19.0.0/16" in out.failed[ROUTER_ID]


def test_sweep_removes_only_owned_routers(
    driver: NamespaceL3Driver, kernel: FakeRouterKernel
) -> None:
    driver.apply_routers([router()], STATE)
    foreign = f"qrouter-{uuid.UUID(int=77)}"
    kernel.create_namespace(foreign)  # another agent's router on the same machine
    assert driver.sweep({ROUTER_ID}) == []
    assert driver.sweep(set(), dry_run=True) == [f"delete router namespace qrouter-{ROUTER_ID}"]
    assert f"qrouter-{ROUTER_ID}" in kernel.ns
    # a restarted agent still knows what it owns (the ledger)
    again = NamespaceL3Driver(None, kernel=kernel, ledger_dir=driver.ledger_dir)
    assert again.sweep(set()) == [f"delete router namespace qrouter-{ROUTER_ID}"]
    assert set(kernel.ns) == {foreign}
    assert kernel.host == {}


def test_removed_interface_and_admin_down(
    driver: NamespaceL3Driver, kernel: FakeRouterKernel
) -> None:
    driver.apply_routers([router()], STATE)
    driver.apply_routers([dataclasses.replace(router(), interfaces=())], STATE)
    assert set(kernel.ns[f"qrouter-{ROUTER_ID}"].links) == {"qg-aaaaaaaa-00"}
    assert set(kernel.host) == {"tapaaaaaaaa-00"}
    out = driver.apply_routers([dataclasses.replace(router(), admin_state_up=False)], STATE)
    assert out.succeeded == {ROUTER_ID}
    assert kernel.ns == {}


def test_describe_lists_routers(driver: NamespaceL3Driver) -> None:
    driver.apply_routers([router(fips=(_fip(1, "203.0.113.20", "192.0.2.10"),))], STATE)
    doc = driver.describe()["routers"][0]
    assert doc["namespace"] == f"qrouter-{ROUTER_ID}"
    assert doc["floating_ips"][0]["floating"] == "203.0.113.20"
    assert doc["nat"]["PREROUTING"] == ["-d 203.0.113.20/32 -j DNAT --to-destination 192.0.2.10"]


def test_noop_reports_routers_not_applied() -> None:
    out = NoopL3Driver(None).apply_routers([router()], STATE)
    assert ROUTER_ID in out.failed and not out.succeeded


def test_announcer_retries_until_the_port_has_carrier() -> None:
    from netagent.drivers.l3namespace.announce import Announcer  # noqa: PLC0415

    calls: list[str] = []

    def send(namespace: str, device: str, address: object) -> None:
        calls.append(device)
        if device == "qg-never" or len(calls) < 3:
            raise OSError("ENXIO")

    announcer = Announcer(send, retry_interval=0.001, attempts=5)
    address = ipaddress.ip_address("203.0.113.20")
    announcer.submit("ns", "qg-x", address)
    announcer.wait_idle()
    assert calls == ["qg-x"] * 3
    calls.clear()
    announcer.submit("ns", "qg-never", address)
    announcer.wait_idle()  # dropped after 5 attempts
    assert calls == ["qg-never"] * 5


def test_announcer_drops_an_announcement_whose_router_or_port_is_gone() -> None:
    from netagent.drivers.l3namespace.announce import Announcer  # noqa: PLC0415
    from netagent.linux.errors import DeviceNotFound, NamespaceNotFound  # noqa: PLC0415

    calls: list[str] = []

    def send(namespace: str, device: str, address: object) -> None:
        calls.append(device)
        if device == "qg-a":
            raise NamespaceNotFound(namespace)
        raise DeviceNotFound(19, "get_device", device)

    announcer = Announcer(send, retry_interval=0.001, attempts=5)
    address = ipaddress.ip_address("203.0.113.20")
    announcer.submit("qrouter-gone", "qg-a", address)
    announcer.submit("qrouter-x", "qg-b", address)
    announcer.wait_idle()
    assert calls == ["qg-a", "qg-b"]  # one attempt each, no retry


def test_status_command_shows_what_the_router_has(driver: NamespaceL3Driver) -> None:
    from netagent.cmd import status as status_cmd  # noqa: PLC0415

    driver.apply_routers([router(fips=(_fip(1, "203.0.113.20", "192.0.2.10"),))], STATE)
    doc = {
        "routers": [{"id": ROUTER_ID, "applied": True, "ready": True, "error": None}],
        "drivers": {"l3": driver.describe()},
    }
    out = status_cmd.render(doc)
    assert f"router {ROUTER_ID} ready: yes" in out
    assert "  qg-aaaaaaaa-00 (tapaaaaaaaa-00, mtu 1500): 203.0.113.10/24 203.0.113.20/32" in out
    assert "  rule 1000: from 203.0.113.20/32 lookup 1000" in out
    assert "  floating IP 203.0.113.20 -> 192.0.2.10" in out
    assert "  nat PREROUTING: -d 203.0.113.20/32 -j DNAT --to-destination 192.0.2.10" in out


def test_addresses_are_announced_even_when_a_later_step_fails(
    driver: NamespaceL3Driver, kernel: FakeRouterKernel
) -> None:
    kernel.refuse_routes.add("198.19.0.0/16")
    bad = router(routes=(("198.19.0.0/16", "192.0.2.5"),))
    assert ROUTER_ID in driver.apply_routers([bad], STATE).failed
    kernel.refuse_routes.clear()
    assert driver.apply_routers([bad], STATE).succeeded == {ROUTER_ID}  # the retry
    driver.announcer.wait_idle()
    # announced by the failed pass (the retry found them in place)
    assert {str(a) for _, _, a in kernel.announced} == {"203.0.113.10", "192.0.2.1"}


class _RecordingPlug(base.HostPlug):
    def __init__(self) -> None:
        self.plugged: list[list[str]] = []
        self.unplugged: list[list[str]] = []

    def plug(self, ports: Sequence[tuple[str, str, str, str, str]]) -> None:
        self.plugged.append(sorted(host_end for _, _, host_end, _, _ in ports))

    def unplug(self, host_ends: Sequence[str]) -> None:
        self.unplugged.append(sorted(host_ends))


def test_host_ends_are_plugged_when_made_and_once_per_process_then_unplugged(
    kernel: FakeRouterKernel, tmp_path: Path
) -> None:
    plug = _RecordingPlug()
    first = NamespaceL3Driver(None, kernel=kernel, ledger_dir=str(tmp_path / "l"), plug=plug)
    r = router()
    hosts = sorted(rp.port.device_name for rp in r.ports)
    assert not first.apply_routers([r], STATE).failed
    assert not first.apply_routers([r], STATE).failed
    assert plug.plugged == [hosts, []]  # made, then nothing new
    # a restarted agent checks them all once (a crash may have come between make and plug)
    again = NamespaceL3Driver(None, kernel=kernel, ledger_dir=str(tmp_path / "l"), plug=plug)
    assert not again.apply_routers([r], STATE).failed
    assert plug.plugged[-1] == hosts
    assert not again.remove_routers([r.id]).failed
    assert plug.unplugged == [hosts]


def test_the_agent_hands_the_l3_driver_the_l2_drivers_plug() -> None:
    conf = cfg.ConfigOpts()
    netagent_conf.register_all(conf)
    conf.set_override("l3_driver", "namespace", group="agent")
    _, _, l3 = agent_cmd.load_drivers(conf)
    assert isinstance(l3, NamespaceL3Driver)
    assert type(l3.plug) is base.HostPlug  # Linux bridge: found by name
    conf.set_override("l2_driver", "openvswitch", group="agent")
    l2, _, l3 = agent_cmd.load_drivers(conf)
    assert isinstance(l2, OpenvswitchDriver) and isinstance(l3, NamespaceL3Driver)
    assert isinstance(l3.plug, OvsHostPlug) and l3.plug.bridge == "br-int"
    assert l3.plug._state == l2._state  # the L2 driver's connection and pass snapshot
