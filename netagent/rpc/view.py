"""What the server has told this agent, and the desired-state snapshot built from it.

The Neutron source keeps the last good answer for each local port, security group and
tunnel endpoint here and rebuilds a complete :class:`~netagent.model.DesiredState` from
it after every pass. Only the worker thread touches a :class:`NeutronView`.

Two translations need explaining:

- Remote-group members. ``security_group_info_for_devices`` lists the member addresses of
  each remote group (on every host), while the file source lists the member ports. The
  members are handed to the core as an :class:`~netagent.model.AddressGroup` with the
  group's id, which :meth:`DesiredState.remote_group_members` consults first.
- Tunnel peers. The model derives a VXLAN network's peers from ports of other hosts on
  it. The server names peers without ports (``tunnel_sync``: every endpoint; l2population:
  endpoints per network). With l2population, each remote MAC of the FDB casts becomes a
  remote port (device owner :data:`REMOTE_OWNER`), which also gives the static FDB and
  ARP entries; a peer known only for flooding gets one stand-in remote port with a
  deterministic id and a locally administered MAC, and no addresses.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable

from netagent.model import (
    AddressGroup,
    Agent,
    DesiredState,
    DeviceDetails,
    FixedIP,
    MemberAddress,
    Network,
    NetworkType,
    Port,
    Router,
    SecurityGroup,
    SecurityGroupInfo,
)
from netagent.model.validate import IPAddress
from netagent.rpc.replies import FdbEntry, vtep_host

REMOTE_OWNER = "netagent:remote-endpoint"
#: Neutron's ``DEVICE_OWNER_NETWORK_PREFIX``: ports of its own services (DHCP, routers).
NETWORK_OWNER_PREFIX = "network:"
_REMOTE_NS = uuid.UUID("5d0e7c1e-8a43-4a53-9d0c-6f1b2f8e6c11")


def remote_port(network_id: str, host: str) -> Port:
    """The stand-in port that makes ``host`` a tunnel peer on ``network_id``."""
    port_id = str(uuid.uuid5(_REMOTE_NS, f"{network_id}/{host}"))
    digest = uuid.uuid5(_REMOTE_NS, port_id).bytes
    mac = "02:" + ":".join(f"{b:02x}" for b in digest[:5])
    return Port(
        id=port_id,
        network_id=network_id,
        mac_address=mac,
        host=host,
        device_owner=REMOTE_OWNER,
        port_security_enabled=False,
    )


@dataclasses.dataclass
class NeutronView:
    """The server's answers, by port id.

    :ivar details: device details of local bound ports.
    :ivar sg_ports: the SG view of local ports (security groups); a port with details but
        no entry here is held back from the snapshot until its filter is known.
    :ivar trusted: local ports the SG call left out (the server leaves out ``network:*``
        owners); see :meth:`ready_ports` for what that earns them.
    :ivar groups: security groups by id.
    :ivar members: remote group / address group id → member addresses.
    :ivar tunnels: host → tunnel endpoint, from ``tunnel_sync``.
    :ivar fdb: network → endpoint → l2population entries.
    """

    host: str
    local_ip: IPAddress | None = None
    l2_population: bool = False
    details: dict[str, DeviceDetails] = dataclasses.field(default_factory=dict)
    sg_ports: dict[str, Port] = dataclasses.field(default_factory=dict)
    trusted: set[str] = dataclasses.field(default_factory=set)
    groups: dict[str, SecurityGroup] = dataclasses.field(default_factory=dict)
    members: dict[str, tuple[MemberAddress, ...]] = dataclasses.field(default_factory=dict)
    tunnels: dict[str, IPAddress] = dataclasses.field(default_factory=dict)
    fdb: dict[str, dict[IPAddress, set[FdbEntry]]] = dataclasses.field(default_factory=dict)
    #: routers scheduled to this host, from ``sync_routers`` (L3 identity only)
    routers: dict[str, Router] = dataclasses.field(default_factory=dict)

    def forget_port(self, port_id: str) -> None:
        """Drop everything known about a local port."""
        self.details.pop(port_id, None)
        self.sg_ports.pop(port_id, None)
        self.trusted.discard(port_id)

    def merge_sg_info(self, info: SecurityGroupInfo, asked: Iterable[str]) -> None:
        """Record an SG reply for the ports in ``asked`` (full port ids)."""
        for port_id in asked:
            port = info.devices.get(port_id)
            if port is None:
                self.sg_ports.pop(port_id, None)
                self.trusted.add(port_id)
            else:
                self.sg_ports[port_id] = port
                self.trusted.discard(port_id)
        self.groups.update(info.security_groups)
        for group_id, per_family in info.member_ips.items():
            self.members[group_id] = tuple(m for ms in per_family.values() for m in ms)

    def apply_tunnel_event(self, operation: str, address: IPAddress) -> None:
        """Add (``update``) or remove (``delete``) one tunnel endpoint."""
        if operation == "delete":
            self.tunnels = {h: ip for h, ip in self.tunnels.items() if ip != address}
        elif address not in self.tunnels.values():
            self.tunnels[vtep_host(address)] = address

    def apply_fdb(
        self, action: str, network_id: str, endpoint: IPAddress, entries: frozenset[FdbEntry]
    ) -> None:
        """Apply one validated l2population change."""
        per_network = self.fdb.setdefault(network_id, {})
        current = per_network.setdefault(endpoint, set())
        if action == "add":
            current |= entries
        else:
            current -= entries
        if not current:
            del per_network[endpoint]
        if not per_network:
            del self.fdb[network_id]

    def groups_of(self, port_id: str) -> tuple[str, ...]:
        """Security groups of a local port, as the SG call last reported them."""
        port = self.sg_ports.get(port_id)
        return port.security_groups if port is not None else ()

    def ports_affected_by(self, group_ids: Iterable[str]) -> set[str]:
        """Local ports in these groups, or whose groups use them as remote group or
        remote address group."""
        changed = set(group_ids)
        result = set()
        for port_id in self.details:
            for group_id in self.groups_of(port_id):
                group = self.groups.get(group_id)
                remotes = (
                    {r.remote_group_id for r in group.rules}
                    | {r.remote_address_group_id for r in group.rules}
                    if group
                    else set()
                )
                if group_id in changed or remotes & changed:
                    result.add(port_id)
                    break
        return result

    def ready_ports(self) -> list[Port]:
        """Local ports with details and a known filter, their groups filled in.

        A trusted port is unfiltered, as Neutron's own agents leave it (its firewall's
        ``process_trusted_ports``, no ARP protection): a DHCP server must send DHCP replies
        and answer for the metadata address. Trust needs both signals: the server left
        the port out of its SG reply *and* the port's current details name a
        ``network:*`` owner. A port the SG reply leaves out for another reason (an
        unknown port, a race) keeps port security with no groups, which passes nothing in.
        """
        result = []
        for port_id, details in sorted(self.details.items()):
            port = details.port
            if port is None or (port_id not in self.sg_ports and port_id not in self.trusted):
                continue
            if port_id in self.trusted and is_network_owned(port):
                port = dataclasses.replace(
                    port, port_security_enabled=False, allowed_address_pairs=()
                )
            groups = self.groups_of(port_id) if port.port_security_enabled else ()
            result.append(dataclasses.replace(port, security_groups=groups))
        return result

    def snapshot(self) -> DesiredState:
        """Build the complete desired state from what is known now."""
        ports = self.ready_ports()
        networks: dict[str, Network] = {}
        for port in ports:
            network = self.details[port.id].network
            if network is not None:
                networks.setdefault(network.id, network)
        group_ids = {g for p in ports for g in p.security_groups}
        groups = [self.groups[g] for g in sorted(group_ids) if g in self.groups]
        remote_ids = {
            rid
            for group in groups
            for rule in group.rules
            for rid in (rule.remote_group_id, rule.remote_address_group_id)
            if rid is not None
        }
        address_groups = [
            AddressGroup(id=rid, addresses=tuple(dict.fromkeys(m.ip_address for m in members)))
            for rid, members in sorted(self.members.items())
            if rid in remote_ids
        ]
        agents, remote_ports = self._peers(networks.values())
        return DesiredState.build(
            networks=networks.values(),
            ports=[*ports, *remote_ports],
            security_groups=groups,
            address_groups=address_groups,
            agents=agents,
            routers=self.routers.values(),
            floatingips=[f for r in self.routers.values() for f in r.floating_ips],
        )

    def _peers(self, networks: Iterable[Network]) -> tuple[list[Agent], list[Port]]:
        agents = {self.host: Agent(host=self.host, tunneling_ip=self.local_ip)}
        by_ip = {ip: host for host, ip in self.tunnels.items()}
        remote: list[Port] = []
        for network in networks:
            if network.network_type is not NetworkType.VXLAN:
                continue
            fdb = self.fdb.get(network.id, {}) if self.l2_population else {}
            if self.l2_population:
                endpoints = {by_ip.get(ip) or vtep_host(ip): ip for ip in fdb}
            else:
                endpoints = dict(self.tunnels)
            for peer_host, address in sorted(endpoints.items()):
                if peer_host == self.host or address == self.local_ip:
                    continue
                agents.setdefault(peer_host, Agent(host=peer_host, tunneling_ip=address))
                ports = fdb_ports(network.id, peer_host, fdb.get(address, set()))
                remote.extend(ports or [remote_port(network.id, peer_host)])
        return list(agents.values()), remote


def is_network_owned(port: Port) -> bool:
    """Whether Neutron counts ``port`` as its own (``device_owner`` ``network:*``)."""
    return port.device_owner.startswith(NETWORK_OWNER_PREFIX)


def fdb_ports(network_id: str, host: str, entries: Iterable[FdbEntry]) -> list[Port]:
    """Remote ports of one endpoint from its l2population entries (one per MAC)."""
    by_mac: dict[str, list[IPAddress]] = {}
    for mac, address in entries:
        if address is not None:
            by_mac.setdefault(mac, []).append(address)
    return [
        Port(
            id=str(uuid.uuid5(_REMOTE_NS, f"{network_id}/{host}/{mac}")),
            network_id=network_id,
            mac_address=mac,
            fixed_ips=tuple(FixedIP(None, a) for a in sorted(set(addresses), key=str)),
            host=host,
            device_owner=REMOTE_OWNER,
            port_security_enabled=False,
        )
        for mac, addresses in sorted(by_mac.items())
    ]
