"""A router test bed: a host namespace with the Linux bridge and namespace L3 drivers,
"VM" namespaces on internal networks, and upstream namespaces on a flat external network.

Layout::

    ext1 (203.0.113.1/24) ──┐
    ext2 (198.51.100.1/24) ─┼─ bridge br0 in xl ── ext0 in host (flat network "ext")
                            │
    host: brq<ext> ── tap<gw port> ── qg- in qrouter-<id>
          brq<net> ── tap<if port> ── qr- in qrouter-<id>
          brq<net> ── tap<vm port> ── eth0 in a VM namespace

Every namespace and every qrouter- namespace of the bed's routers is deleted by
:meth:`Bed.close`. Addresses: 192.0.2.0/24 internal, 203.0.113.0/24 and 198.51.100.0/24
external, 198.19.0.0/16 "far" hosts upstream.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oslo_config import cfg
from oslo_config import fixture as config_fixture

from netagent.conf import iptables as ipt_conf
from netagent.conf import linuxbridge as lb_conf
from netagent.drivers.base import NetworkPlan, PortPlan
from netagent.drivers.l3namespace import NamespaceL3Driver
from netagent.drivers.linuxbridge import LinuxBridgeDriver
from netagent.model import DesiredState
from netagent.model.network import Network, NetworkType, Subnet
from netagent.model.port import FixedIP, Port
from netagent.model.router import FloatingIP, Route, Router, RouterPort
from tests.common.traffic import ping
from tests.common.vmctl import vmctl

HOST = "host-a"


def sh(*cmd: str, check: bool = True, timeout: float = 20) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode:
        raise AssertionError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    return proc.stdout


def ip(ns: str, *args: str, check: bool = True) -> str:
    return sh("ip", "-n", ns, *args, check=check)


def reach(ns: str, address: str, within: float = 12.0, look_in: tuple[str, ...] = ()) -> None:
    """Ping ``address`` from ``ns`` until one answers (neighbour discovery through a bed
    that was just built can take some seconds on a loaded machine); on failure, raise with
    the neighbour and route tables of ``ns`` and of ``look_in`` so the cause can be read."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if ping(ns, address, count=1):
            return
    tables = []
    for where in (ns, *look_in):
        for what in (("-6", "neigh"), ("neigh",), ("-6", "route"), ("-br", "addr")):
            tables.append(f"--- {where}: ip {' '.join(what)}\n{ip(where, *what, check=False)}")
    raise AssertionError(f"{address} not reached from {ns} in {within} s\n" + "\n".join(tables))


def mac() -> str:
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in uuid.uuid4().bytes[:3])


class Bed:
    """The test bed; see the module docstring."""

    def __init__(self, make_netns: Callable[[str], str], backend: str) -> None:
        self.make_netns = make_netns
        self.host = make_netns("h")
        self.xl = make_netns("xl")
        self.conf = cfg.ConfigOpts()
        lb_conf.register_opts(self.conf)
        ipt_conf.register_opts(self.conf)
        self.fixture = config_fixture.Config(self.conf)
        self.fixture.setUp()
        self.fixture.config(group="linuxbridge", physical_interface_mappings=["ext:ext0"])
        self.fixture.config(group="iptables", backend=backend)
        self.ledger = Path(f"/tmp/natest-l3-{uuid.uuid4().hex[:8]}")
        self.l2 = LinuxBridgeDriver(self.conf, netns=self.host)
        self.l2.initialize()
        self.l3 = NamespaceL3Driver(self.conf, netns=self.host, ledger_dir=str(self.ledger))
        self.router_ids: set[str] = set()
        # the external segment
        ip(self.xl, "link", "add", "br0", "type", "bridge")
        ip(self.xl, "link", "set", "br0", "up")
        self._veth(self.host, "ext0", "p0")
        self.uplinks: dict[str, str] = {}
        self.networks: dict[str, Network] = {}
        self.subnets: dict[str, Subnet] = {}
        self.ports: dict[str, Port] = {}
        self.routers: dict[str, Router] = {}
        self.fips: dict[str, FloatingIP] = {}
        self.ext = self.network("flat", physnet="ext", mtu=1500)

    def _veth(self, ns: str, name: str, bridge_end: str) -> None:
        ip(ns, "link", "add", name, "type", "veth", "peer", "name", bridge_end, "netns", self.xl)
        ip(self.xl, "link", "set", bridge_end, "master", "br0", "up")
        ip(ns, "link", "set", name, "up")

    def upstream(self, tag: str, cidr: str, extra_routes: tuple[str, ...] = ()) -> str:
        """An upstream router namespace on the external segment with ``cidr`` on eth0."""
        ns = self.make_netns(tag)
        self._veth(ns, "eth0", f"p-{tag}"[:15])
        ip(ns, "addr", "add", cidr, "dev", "eth0")
        for route in extra_routes:
            ip(ns, "route", "add", *route.split())
        return ns

    def close(self) -> None:
        for router_id in self.router_ids:
            sh("ip", "netns", "delete", f"qrouter-{router_id}", check=False)
        self.fixture.cleanUp()
        with contextlib.suppress(FileNotFoundError):
            for entry in self.ledger.iterdir():
                entry.unlink()
            self.ledger.rmdir()

    # -- model ------------------------------------------------------------------------

    def network(self, kind: str = "local", physnet: str | None = None, mtu: int = 1450) -> Network:
        net = Network(
            id=str(uuid.uuid4()),
            name="",
            network_type=NetworkType(kind),
            segmentation_id=None,
            physical_network=physnet,
            mtu=mtu,
        )
        self.networks[net.id] = net
        return net

    def set_mtu(self, net: Network, mtu: int) -> Network:
        """The network's MTU changes (Neutron: ``network_update``, then ``sync_routers``
        gives each router port on it the new ``mtu``)."""
        changed = dataclasses.replace(net, mtu=mtu)
        self.networks[net.id] = changed
        for rid, router in self.routers.items():
            ports = [
                dataclasses.replace(p, mtu=mtu) if p.network_id == net.id else p
                for p in router.ports
            ]
            gateway = ports[0] if router.gateway is not None else None
            interfaces = tuple(ports[1:] if gateway is not None else ports)
            self.routers[rid] = dataclasses.replace(router, gateway=gateway, interfaces=interfaces)
        return changed

    def set_extra_subnets(self, router: Router, *subnets: Subnet) -> None:
        """The other subnets of the external network, as ``sync_routers`` gives them on
        the router's gateway port (``extra_subnets``)."""
        current = self.routers[router.id]
        assert current.gateway is not None
        gateway = dataclasses.replace(current.gateway, extra_subnets=subnets)
        self.routers[router.id] = dataclasses.replace(current, gateway=gateway)

    def subnet(self, net: Network, cidr: str, gateway: str | None) -> Subnet:
        network = ipaddress.ip_network(cidr)
        sub = Subnet(
            id=str(uuid.uuid4()),
            network_id=net.id,
            cidr=network,
            ip_version=network.version,
            gateway_ip=ipaddress.ip_address(gateway) if gateway else None,
            enable_dhcp=False,
        )
        self.subnets[sub.id] = sub
        return sub

    def port(self, net: Network, *fixed: tuple[Subnet, str], owner: str, device_id: str) -> Port:
        p = Port(
            id=str(uuid.uuid4()),
            network_id=net.id,
            mac_address=mac(),
            fixed_ips=tuple(FixedIP(s.id, ipaddress.ip_address(a)) for s, a in fixed),
            host=HOST,
            device_owner=owner,
            port_security_enabled=owner.startswith("compute"),
            device_id=device_id,
        )
        self.ports[p.id] = p
        return p

    def vm(
        self, net: Network, subnet: Subnet, address: str, v6: tuple[Subnet, str] | None = None
    ) -> tuple[str, Port]:
        """A VM namespace with ``address`` on the subnet (and ``v6``: an IPv6 subnet and
        address), default routes via the subnets' gateways."""
        fixed = [(subnet, address)] + ([v6] if v6 else [])
        p = self.port(net, *fixed, owner="compute:nova", device_id="vm")
        # made by the fixture: its names carry our PID, so a parallel run's leftover
        # cleanup leaves them alone
        ns = self.make_netns("vm")
        vmctl.create_vm(
            vm_ns=ns,
            port_id=p.id,
            mac=p.mac_address,
            ips=[f"{a}/{s.cidr.prefixlen}" for s, a in fixed],
            host_ns=self.host,
            mtu=net.mtu,
            gateway=str(subnet.gateway_ip),
            gateway6=str(v6[0].gateway_ip) if v6 else None,
        )
        return ns, p

    def router(
        self,
        gateway: tuple[tuple[Subnet, str], ...] = (),
        interfaces: tuple[tuple[Network, Subnet], ...] = (),
        enable_snat: bool = True,
        routes: tuple[tuple[str, str], ...] = (),
    ) -> Router:
        router_id = str(uuid.uuid4())
        self.router_ids.add(router_id)
        gw = None
        if gateway:
            gp = self.port(self.ext, *gateway, owner="network:router_gateway", device_id=router_id)
            gw = RouterPort(gp, tuple(s for s, _ in gateway), self.ext.mtu)
        ifs = []
        for net, sub in interfaces:
            assert sub.gateway_ip is not None
            ip_ = str(sub.gateway_ip)
            rp = self.port(net, (sub, ip_), owner="network:router_interface", device_id=router_id)
            ifs.append(RouterPort(rp, (sub,), net.mtu))
        router = Router(
            id=router_id,
            enable_snat=enable_snat,
            gateway=gw,
            interfaces=tuple(ifs),
            routes=tuple(
                Route(ipaddress.ip_network(d), ipaddress.ip_address(n)) for d, n in routes
            ),
            external_network_id=self.ext.id,
        )
        self.routers[router.id] = router
        return router

    def router_routes(self, *routes: tuple[str, str]) -> tuple[Route, ...]:
        return tuple(Route(ipaddress.ip_network(d), ipaddress.ip_address(n)) for d, n in routes)

    def floating(self, router: Router, floating: str, port: Port | None) -> FloatingIP:
        fip = FloatingIP(
            id=str(uuid.uuid4()),
            floating_ip_address=ipaddress.ip_address(floating),
            fixed_ip_address=port.fixed_ips[0].ip_address if port else None,
            port_id=port.id if port else None,
            router_id=router.id,
            floating_network_id=self.ext.id,
        )
        self.fips[fip.id] = fip
        return fip

    def move(self, fip: FloatingIP, router: Router, port: Port) -> FloatingIP:
        moved = FloatingIP(
            id=fip.id,
            floating_ip_address=fip.floating_ip_address,
            fixed_ip_address=port.fixed_ips[0].ip_address,
            port_id=port.id,
            router_id=router.id,
            floating_network_id=fip.floating_network_id,
        )
        self.fips[fip.id] = moved
        return moved

    def state(self) -> DesiredState:
        routers = []
        for router in self.routers.values():
            fips = tuple(f for f in self.fips.values() if f.router_id == router.id)
            routers.append(Router(**{**_fields(router), "floating_ips": fips}))
        return DesiredState.build(
            networks=self.networks.values(),
            subnets=self.subnets.values(),
            ports=self.ports.values(),
            routers=routers,
            floatingips=self.fips.values(),
        )

    # -- apply ------------------------------------------------------------------------

    def apply(self) -> None:
        """Run both drivers as the agent would: routers, then networks and ports."""
        state = self.state()
        out = self.l3.apply_routers(list(state.routers.values()), state)
        assert not out.failed, out.failed
        self.l2.ensure_networks([NetworkPlan(n, {}) for n in self.networks.values()])
        present = {d["ifname"] for d in json.loads(ip(self.host, "-j", "link", "show") or "[]")}
        plans = [
            PortPlan(p, self.networks[p.network_id])
            for p in self.ports.values()
            if p.device_name in present
        ]
        out = self.l2.plug_ports(plans)
        assert not out.failed, out.failed


def _fields(router: Router) -> dict[str, Any]:
    return {f: getattr(router, f) for f in router.__dataclass_fields__}
