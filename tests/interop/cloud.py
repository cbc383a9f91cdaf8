"""Two simulated hosts running the real netagent-agent against the interop neutron-server.

Built on the fullstack harness (:mod:`tests.fullstack.harness`): an underlay namespace
with a bridge, host namespaces with ``eth-ul`` on 198.18.0.0/15, VM namespaces made by
``tools/vmctl.py`` exactly as Nova would leave them (``tap<port[:11]>`` in the host
namespace, the port's MAC on the VM side). Differences from fullstack: namespaces are
named ``naio-*`` (so that the two tiers never remove each other's), each agent runs with
``[agent] source = neutron`` and reaches RabbitMQ through a relay listening on
127.0.0.1:5672 inside its host namespace, and ports come from the Neutron API.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from tests.common.relay import Relay
from tests.fullstack import harness
from tests.interop import neutron_server

NETNS_PREFIX = "naio-"
RABBIT_PORT = 5672


class InteropFabric(harness.Fabric):
    """The fullstack fabric with ``naio-`` namespaces and Neutron-driven agents."""

    def __init__(
        self,
        workdir: Path,
        server: neutron_server.NeutronServer,
        firewall_driver: str | None = None,
        physical_interface: str | None = None,
        l3_driver: str | None = None,
        broker_port: int = RABBIT_PORT,
    ) -> None:
        """:param firewall_driver: ``[agent] firewall_driver`` of every agent (e.g.
        ``iptables``, with the nft backend); None keeps the agent's default.
        :param physical_interface: if set, every host gets a device of that name (one end
        of a veth pair whose peer stays unused; no dummy module here), mapped to
        ``physnet1`` (``physical_interface_mappings``).
        :param l3_driver: ``[agent] l3_driver`` of every agent (``namespace``: the hosts
        build routers and register as L3 agents); such agents run in the machine's mount
        namespace (:attr:`harness.Host.host_mounts`), and the router namespaces their logs
        name are deleted by :meth:`close`.
        :param broker_port: the port of the server's broker on 127.0.0.1 (a private node's
        for outage tests); each host's relay listens on the same port in its namespace."""
        super().__init__(workdir)
        self.server = server
        self.firewall_driver = firewall_driver
        self.physical_interface = physical_interface
        self.l3_driver = l3_driver
        self.relays: list[Relay] = []
        self.broker_port = broker_port

    def _netns(self, role: str) -> str:
        name = f"{NETNS_PREFIX}{self.tag}-{role}"
        harness.run("ip", "netns", "add", name)
        self.namespaces.append(name)
        harness.ip(name, "link", "set", "lo", "up")
        return name

    def add_host(self, name: str, tunnel_ip: str) -> harness.Host:
        host = super().add_host(name, tunnel_ip)
        host.host_mounts = self.l3_driver is not None
        if self.physical_interface is not None:
            peer = f"{self.physical_interface}-p"
            harness.ip(
                host.netns, "link", "add", self.physical_interface, "type", "veth", "peer", peer
            )
            for device in (self.physical_interface, peer):
                harness.ip(host.netns, "link", "set", device, "up")
        target = ("127.0.0.1", self.broker_port)
        self.relays.append(Relay(target, listen_port=self.broker_port, netns=host.netns).start())
        return host

    def write_agent_config(self, host: harness.Host) -> None:
        """``[agent] source = neutron`` with the server's vhost, through the relay."""
        firewall = iptables = mappings = l3 = ""
        if self.l3_driver is not None:
            l3 = f"l3_driver = {self.l3_driver}\n"
        if self.physical_interface is not None:
            mappings = (
                "physical_interface_mappings = "
                f"{neutron_server.PHYSNET}:{self.physical_interface}\n"
            )
        if self.firewall_driver is not None:
            firewall = f"firewall_driver = {self.firewall_driver}\n"
            iptables = "[iptables]\nbackend = nft\n"
        host.state_path.mkdir(exist_ok=True)
        host.config_file.write_text(
            "[DEFAULT]\n"
            f"host = {host.name}\n"
            f"state_path = {host.state_path}\n"
            "debug = true\n"
            f"log_file = {host.log_file}\n"
            f"transport_url = {self.server.transport_url}\n"
            "rpc_response_timeout = 20\n"
            "[agent]\n"
            "source = neutron\n"
            "l2_driver = linuxbridge\n"
            f"{l3}"
            f"{firewall}"
            f"{iptables}"
            "[neutron]\n"
            f"report_interval = {neutron_server.AGENT_REPORT_INTERVAL}\n"
            "[linuxbridge]\n"
            f"local_ip = {host.tunnel_ip}\n"
            f"{mappings}"
        )

    def start_neutron_agents(self) -> None:
        for host in self.hosts.values():
            self.write_agent_config(host)
            host.start_agent()

    def add_neutron_vm(
        self, name: str, host: harness.Host, port: dict[str, Any], mtu: int
    ) -> harness.Vm:
        """A VM namespace whose tap carries ``port``'s id and MAC (as Nova would make it)."""
        address = port["fixed_ips"][0]["ip_address"]
        netns = f"{NETNS_PREFIX}{self.tag}-{name}"
        self.namespaces.append(netns)
        harness.vmctl.create_vm(
            vm_ns=netns,
            port_id=port["id"],
            mac=port["mac_address"],
            ips=[f"{address}/24"],
            host_ns=host.netns,
            mtu=mtu,
        )
        vm = harness.Vm(
            name, netns, host, port["id"], port["mac_address"], f"{address}/24", port["network_id"]
        )
        self.vms[name] = vm
        return vm

    def router_namespaces(self) -> list[str]:
        """Router namespaces the agents said they created and that still exist."""
        named: set[str] = set()
        for host in self.hosts.values():
            if host.log_file.exists():
                named |= set(_ROUTER_NAMESPACE.findall(host.log_file.read_text(errors="replace")))
        return sorted(n for n in named if os.path.exists(f"/run/netns/{n}"))

    def close(self) -> None:
        super().close()
        # after the agents stopped: none of them creates another one meanwhile
        for name in self.router_namespaces():
            harness.run("ip", "netns", "delete", name, check=False)
        for relay in self.relays:
            with contextlib.suppress(Exception):
                relay.stop()


#: The L3 driver's log line for a router namespace it made (drivers/l3namespace/driver.py).
_ROUTER_NAMESPACE = re.compile(r"Router [0-9a-f-]{36}: namespace (qrouter-[0-9a-f-]{36}) created")


def leftover_namespaces() -> list[str]:
    """``naio-*`` namespaces of an earlier, crashed interop run.

    Names are ``naio-<pid>-<hex>-<role>`` (the fabric's tag): only those whose creating
    process is gone are leftovers, so that a run never deletes the namespaces of another
    run going on at the same time (one with its own ``NETAGENT_INTEROP_CACHE``).
    """
    found = []
    with contextlib.suppress(FileNotFoundError):
        for name in sorted(os.listdir("/run/netns")):
            if not name.startswith(NETNS_PREFIX):
                continue
            owner = name[len(NETNS_PREFIX) :].split("-", 1)[0]
            if not owner.isdigit() or not _pid_alive(int(owner)):
                found.append(name)
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


FabricT = TypeVar("FabricT", bound=InteropFabric)


@contextlib.contextmanager
def running_fabric(
    neutron: neutron_server.NeutronServer,
    workdir: Path,
    hosts: Mapping[str, str],
    fabric_class: type[FabricT] = InteropFabric,  # type: ignore[assignment]
    **fabric_options: Any,
) -> Iterator[FabricT]:
    """Simulated hosts (name -> tunnel address) running real agents against ``neutron``;
    leftovers of earlier runs removed first, everything removed after, diagnostics printed.
    """
    for name in leftover_namespaces():
        harness.run("ip", "netns", "delete", name, check=False)
    fab = fabric_class(workdir, neutron, **fabric_options)
    try:
        fab.start()
        for name, tunnel_ip in hosts.items():
            fab.add_host(name, tunnel_ip)
        fab.start_neutron_agents()
        yield fab
    finally:
        print(fab.diagnostics())
        fab.close()
