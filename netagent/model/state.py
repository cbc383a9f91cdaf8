"""The desired state: an immutable snapshot of everything a source delivered.

:class:`DesiredState` holds every valid object keyed by id (agents by host) and answers
the questions the agent asks across objects: which ports sit on a network, which hosts are
tunnel peers of a VXLAN network, which addresses a remote group stands for.
:meth:`DesiredState.for_host` cuts out what one host has to implement as a
:class:`HostView`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import types
from collections.abc import Iterable, Mapping
from typing import TypeVar

from netagent.model.agent import Agent
from netagent.model.network import Network, NetworkType, Subnet
from netagent.model.port import Port
from netagent.model.router import FloatingIP, Router
from netagent.model.secgroup import AddressGroup, EtherType, SecurityGroup
from netagent.model.validate import IPAddress, IPNetwork

K = TypeVar("K")
T = TypeVar("T")

Members = Mapping[EtherType, frozenset[IPNetwork]]


def frozen_map(items: Mapping[K, T] | Iterable[tuple[K, T]] = ()) -> Mapping[K, T]:
    """A read-only mapping (a :class:`types.MappingProxyType` over a private dict)."""
    return types.MappingProxyType(dict(items))


def _members_of(ports: Iterable[Port], version: int) -> frozenset[IPNetwork]:
    result: set[IPNetwork] = set()
    for port in ports:
        for address in port.addresses:
            if address.version == version:
                result.add(ipaddress_network(address))
        for pair in port.allowed_address_pairs:
            if pair.ip_address.version == version:
                result.add(pair.ip_address)
    return frozenset(result)


def ipaddress_network(address: IPAddress) -> IPNetwork:
    """The ``/32`` or ``/128`` network of an address (built from its integer value, not
    parsed back from text: this runs once per member per pass)."""
    if isinstance(address, ipaddress.IPv4Address):
        return ipaddress.IPv4Network((int(address), 32))
    return ipaddress.IPv6Network((int(address), 128))


@dataclasses.dataclass(frozen=True, slots=True)
class DesiredState:
    """Every valid object a source delivered, keyed by id (``agents`` by host).

    Build it with :meth:`build`; the mappings are read-only.
    """

    networks: Mapping[str, Network] = dataclasses.field(default_factory=frozen_map)
    subnets: Mapping[str, Subnet] = dataclasses.field(default_factory=frozen_map)
    ports: Mapping[str, Port] = dataclasses.field(default_factory=frozen_map)
    security_groups: Mapping[str, SecurityGroup] = dataclasses.field(default_factory=frozen_map)
    address_groups: Mapping[str, AddressGroup] = dataclasses.field(default_factory=frozen_map)
    routers: Mapping[str, Router] = dataclasses.field(default_factory=frozen_map)
    floatingips: Mapping[str, FloatingIP] = dataclasses.field(default_factory=frozen_map)
    agents: Mapping[str, Agent] = dataclasses.field(default_factory=frozen_map)

    @classmethod
    def build(
        cls,
        *,
        networks: Iterable[Network] = (),
        subnets: Iterable[Subnet] = (),
        ports: Iterable[Port] = (),
        security_groups: Iterable[SecurityGroup] = (),
        address_groups: Iterable[AddressGroup] = (),
        routers: Iterable[Router] = (),
        floatingips: Iterable[FloatingIP] = (),
        agents: Iterable[Agent] = (),
    ) -> DesiredState:
        """Key already validated objects by id. Cross-references are not checked here
        (the sources do that and report what they drop).
        """
        return cls(
            networks=frozen_map((o.id, o) for o in networks),
            subnets=frozen_map((o.id, o) for o in subnets),
            ports=frozen_map((o.id, o) for o in ports),
            security_groups=frozen_map((o.id, o) for o in security_groups),
            address_groups=frozen_map((o.id, o) for o in address_groups),
            routers=frozen_map((o.id, o) for o in routers),
            floatingips=frozen_map((o.id, o) for o in floatingips),
            agents=frozen_map((o.host, o) for o in agents),
        )

    def ports_on_network(self, network_id: str) -> tuple[Port, ...]:
        """All ports (any host) on a network, ordered by id."""
        return tuple(
            sorted((p for p in self.ports.values() if p.network_id == network_id), key=_by_id)
        )

    def tunnel_peers(
        self, network_id: str, exclude_host: str | None = None
    ) -> Mapping[str, IPAddress]:
        """Hosts with a port on the network and a tunnel endpoint: ``{host: tunneling_ip}``.

        :param exclude_host: usually the asking host itself.
        """
        peers: dict[str, IPAddress] = {}
        for port in self.ports_on_network(network_id):
            agent = self.agents.get(port.host) if port.host else None
            if agent and agent.tunneling_ip is not None and agent.host != exclude_host:
                peers[agent.host] = agent.tunneling_ip
        return frozen_map(sorted(peers.items()))

    def remote_group_members(self, group_id: str, ethertype: EtherType) -> frozenset[IPNetwork]:
        """The addresses a rule's remote group or remote address group stands for.

        For a security group: the fixed IPs (as ``/32``/``/128``) and allowed address
        pairs of every port in it, on any host, of the given family. For an address group:
        its prefixes of that family. Unknown ids give an empty set.
        """
        if group_id in self.address_groups:
            addresses = self.address_groups[group_id].addresses
            return frozenset(a for a in addresses if a.version == ethertype.version)
        members = (p for p in self.ports.values() if group_id in p.security_groups)
        return _members_of(members, ethertype.version)

    def pair_macs_of_other_ports(self) -> frozenset[tuple[str, str, str]]:
        """Allowed address pairs that name the MAC of another port on the same network.

        Neutron accepts them (a VM may take over a failed peer's MAC), so they are kept;
        the agent warns about them.

        :returns: ``(port id, MAC, id of the port whose MAC it is)`` triples.
        """
        owner = {(p.network_id, p.mac_address): p.id for p in self.ports.values()}
        return frozenset(
            (port.id, pair.mac_address, other)
            for port in self.ports.values()
            for pair in port.allowed_address_pairs
            if pair.mac_address is not None
            and (other := owner.get((port.network_id, pair.mac_address), port.id)) != port.id
        )

    def for_host(self, host: str) -> HostView:
        """What ``host`` has to implement.

        Keeps the ports bound to ``host`` (router ports included) and what they need: their
        networks and all subnets of those networks, their security groups, the member
        addresses of every remote (address) group those groups reference, the tunnel peers
        of their VXLAN networks, and the routers with a port bound to ``host`` (with their
        floating IPs).
        """
        ports = {i: p for i, p in self.ports.items() if p.host == host}
        networks = {
            p.network_id: self.networks[p.network_id]
            for p in ports.values()
            if p.network_id in self.networks
        }
        subnets = {i: s for i, s in self.subnets.items() if s.network_id in networks}
        group_ids = {g for p in ports.values() for g in p.security_groups}
        groups = {
            g: self.security_groups[g] for g in sorted(group_ids) if g in self.security_groups
        }
        remotes = {
            rid
            for group in groups.values()
            for rule in group.rules
            for rid in (rule.remote_group_id, rule.remote_address_group_id)
            if rid is not None
        }
        members = {
            rid: frozen_map((e, self.remote_group_members(rid, e)) for e in EtherType)
            for rid in sorted(remotes)
        }
        routers = {
            i: r for i, r in self.routers.items() if any(rp.port.host == host for rp in r.ports)
        }
        peers = {
            n: self.tunnel_peers(n, exclude_host=host)
            for n, network in networks.items()
            if network.network_type is NetworkType.VXLAN
        }
        return HostView(
            host=host,
            agent=self.agents.get(host),
            ports=frozen_map(ports),
            networks=frozen_map(networks),
            subnets=frozen_map(subnets),
            security_groups=frozen_map(groups),
            address_groups=frozen_map(
                (i, self.address_groups[i]) for i in remotes if i in self.address_groups
            ),
            routers=frozen_map(routers),
            floatingips=frozen_map((f.id, f) for r in routers.values() for f in r.floating_ips),
            members=frozen_map(members),
            peers=frozen_map(peers),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class HostView:
    """The part of a :class:`DesiredState` one host implements (see
    :meth:`DesiredState.for_host`).

    :ivar ports: ports bound to :attr:`host` only.
    :ivar members: for each remote group / address group referenced by the local ports'
        security groups, its addresses per ethertype.
    :ivar peers: for each local VXLAN network, the other hosts' tunnel endpoints.
    """

    host: str
    agent: Agent | None
    ports: Mapping[str, Port]
    networks: Mapping[str, Network]
    subnets: Mapping[str, Subnet]
    security_groups: Mapping[str, SecurityGroup]
    address_groups: Mapping[str, AddressGroup]
    routers: Mapping[str, Router]
    floatingips: Mapping[str, FloatingIP]
    members: Mapping[str, Members]
    peers: Mapping[str, Mapping[str, IPAddress]]

    def ports_on_network(self, network_id: str) -> tuple[Port, ...]:
        """Local ports on a network, ordered by id."""
        return tuple(
            sorted((p for p in self.ports.values() if p.network_id == network_id), key=_by_id)
        )

    def tunnel_peers(self, network_id: str) -> Mapping[str, IPAddress]:
        """``{host: tunneling_ip}`` of the other hosts with ports on a local VXLAN network."""
        return self.peers.get(network_id, frozen_map())

    def remote_group_members(self, group_id: str, ethertype: EtherType) -> frozenset[IPNetwork]:
        """Addresses of a referenced remote group or address group (empty if unknown)."""
        return self.members.get(group_id, {}).get(ethertype, frozenset())


def _by_id(port: Port) -> str:
    return port.id
