"""The part of the desired state ``explain`` needs, as carried by the status document.

The agent adds it under ``"explain"`` (:func:`document`): for every network with a local
port, the ports on it on every host the agent knows of (so that a destination on another
host can be named and its ingress predicted), their security groups with every rule
field, the members of each remote (address) group those rules reference, and the
network's segment and tunnel peers, and the routers with an interface on one of those
networks (in the shape ``sync_routers`` returns, so the router model parses them back).
:func:`parse` turns it back into model objects, checking every field: the document is
read from a socket, so it is input like any other.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from netagent.model import validate as v
from netagent.model.errors import ModelError
from netagent.model.port import AllowedAddressPair, FixedIP, Port
from netagent.model.router import Router, RouterPort
from netagent.model.secgroup import Direction, EtherType, SecurityGroup, SecurityGroupRule
from netagent.model.state import DesiredState
from netagent.model.validate import IPAddress, IPNetwork

VERSION = 1
_RULE_INTS = (
    "protocol",
    "port_range_min",
    "port_range_max",
    "icmp_type",
    "icmp_code",
    "source_port_range_min",
    "source_port_range_max",
)


@dataclasses.dataclass(frozen=True)
class NetworkInfo:
    """A network with local ports: its segment and the other hosts' VTEPs."""

    id: str
    network_type: str
    segmentation_id: int | None
    tunnel_peers: Mapping[str, IPAddress]


@dataclasses.dataclass(frozen=True)
class OvsInfo:
    """The Open vSwitch L2 driver's bridges and each network's local VLAN on br-int."""

    integration_bridge: str
    tunnel_bridge: str
    local_vlans: Mapping[str, int]


def parse_ovs(l2: object) -> OvsInfo | None:
    """The part of the L2 driver's ``describe()`` explain needs (None: not Open vSwitch).

    :raises ValueError: a field is missing or invalid
    """
    doc = _obj(l2 or {}, "l2 driver")
    if doc.get("driver") != "openvswitch":
        return None
    try:
        return OvsInfo(
            integration_bridge=v.label(doc.get("integration_bridge")),
            tunnel_bridge=v.label(doc.get("tunnel_bridge")),
            local_vlans={
                v.uuid(nid): v.integer(_obj(net, "network").get("local_vlan"), 0, 4095)
                for nid, net in _obj(doc.get("networks"), "networks").items()
            },
        )
    except (v.FieldError, TypeError, AttributeError) as exc:
        raise ValueError(f"invalid l2 driver description: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What one agent knows that ``explain`` needs (see module docstring).

    :ivar firewall: the firewall driver's ``describe()`` (``backend``, ``mark``,
        ``excluded`` ports, ``bad_groups``); empty for the noop driver
    """

    host: str
    ports: Mapping[str, Port]
    networks: Mapping[str, NetworkInfo]
    security_groups: Mapping[str, SecurityGroup]
    members: Mapping[tuple[str, int], frozenset[IPNetwork]]
    firewall: Mapping[str, Any]
    #: local ports whose device exists (the driver filters only those)
    planned: frozenset[str] = frozenset()
    #: routers with an interface on one of ``networks``
    routers: Mapping[str, Router] = dataclasses.field(default_factory=dict)
    #: the L2 driver's switch when it is Open vSwitch (None: Linux bridges)
    ovs: OvsInfo | None = None

    def local_ports(self, host: str | None = None) -> list[Port]:
        """Ports bound to ``host`` (default: this agent's host), by id."""
        want = self.host if host is None else host
        return sorted((p for p in self.ports.values() if p.host == want), key=lambda p: p.id)

    def state(self) -> DesiredState:
        """A :class:`DesiredState` of these ports and groups (for the driver's records)."""
        return DesiredState.build(
            ports=self.ports.values(), security_groups=self.security_groups.values()
        )


# -- building (agent side) ------------------------------------------------------------


def _rule_doc(rule: SecurityGroupRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "security_group_id": rule.security_group_id,
        "direction": str(rule.direction),
        "ethertype": str(rule.ethertype),
        **{key: getattr(rule, key) for key in _RULE_INTS},
        "remote_ip_prefix": _text(rule.remote_ip_prefix),
        "remote_group_id": rule.remote_group_id,
        "remote_address_group_id": rule.remote_address_group_id,
        "local_ip_prefix": _text(rule.local_ip_prefix),
    }


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _port_doc(port: Port) -> dict[str, Any]:
    return {
        "id": port.id,
        "network_id": port.network_id,
        "mac_address": port.mac_address,
        "fixed_ips": [str(a) for a in port.addresses],
        "host": port.host,
        "device_owner": port.device_owner,
        "port_security_enabled": port.port_security_enabled,
        "security_groups": list(port.security_groups),
        "allowed_address_pairs": [
            {"ip_address": str(p.ip_address), "mac_address": p.mac_address}
            for p in port.allowed_address_pairs
        ],
    }


def _router_port_doc(rp: RouterPort) -> dict[str, Any]:
    return {
        "id": rp.port.id,
        "network_id": rp.port.network_id,
        "mac_address": rp.port.mac_address,
        "fixed_ips": [
            {"subnet_id": f.subnet_id, "ip_address": str(f.ip_address)} for f in rp.port.fixed_ips
        ],
        "binding:host_id": rp.port.host,
        "subnets": [
            {"id": s.id, "cidr": str(s.cidr), "gateway_ip": _text(s.gateway_ip)}
            for s in rp.subnets
        ],
    }


def _router_doc(router: Router) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": router.id,
        "enable_snat": router.enable_snat,
        "_interfaces": [_router_port_doc(rp) for rp in router.interfaces],
        "routes": [
            {"destination": str(r.destination), "nexthop": str(r.nexthop)} for r in router.routes
        ],
        "_floatingips": [
            {
                "id": f.id,
                "floating_ip_address": str(f.floating_ip_address),
                "fixed_ip_address": _text(f.fixed_ip_address),
                "port_id": f.port_id,
                "router_id": f.router_id,
                "floating_network_id": f.floating_network_id,
            }
            for f in router.floating_ips
        ],
        "distributed": router.distributed,
        "ha": router.ha,
    }
    if router.gateway is not None:
        doc["gw_port"] = _router_port_doc(router.gateway)
    return doc


def document(
    host: str,
    networks: Iterable[tuple[str, str, int | None, Mapping[str, IPAddress]]],
    state: DesiredState,
    planned: Iterable[str] = (),
) -> dict[str, Any]:
    """The ``"explain"`` part of the status document (one pass over the ports).

    :param networks: ``(id, type, segmentation id, tunnel peers)`` of the networks with
        local ports
    :param state: the complete desired state the agent holds (all hosts)
    :param planned: local ports whose device exists
    """
    nets = sorted(networks, key=lambda n: n[0])
    wanted = {n[0] for n in nets}
    ports = sorted(
        (p for p in state.ports.values() if p.network_id in wanted),
        key=lambda p: (p.network_id, p.id),
    )
    group_ids = sorted({g for p in ports for g in p.security_groups})
    groups = [state.security_groups[g] for g in group_ids if g in state.security_groups]
    remotes = sorted(
        {
            rid
            for g in groups
            for r in g.rules
            for rid in (r.remote_group_id, r.remote_address_group_id)
            if rid is not None
        }
    )
    routers = sorted(
        (r for r in state.routers.values() if any(rp.network_id in wanted for rp in r.interfaces)),
        key=lambda r: r.id,
    )
    return {
        "version": VERSION,
        "host": host,
        "planned": sorted(planned),
        "routers": [_router_doc(r) for r in routers],
        "networks": [
            {
                "id": nid,
                "type": kind,
                "segmentation_id": seg,
                "tunnel_peers": {h: str(a) for h, a in sorted(peers.items())},
            }
            for nid, kind, seg, peers in nets
        ],
        "ports": [_port_doc(p) for p in ports],
        "security_groups": [
            {"id": g.id, "stateful": g.stateful, "rules": [_rule_doc(r) for r in g.rules]}
            for g in groups
        ],
        "members": {
            rid: {
                str(e.version): sorted(str(n) for n in state.remote_group_members(rid, e))
                for e in EtherType
            }
            for rid in remotes
        },
    }


# -- parsing (client side) ------------------------------------------------------------


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what}: not an object")
    return value


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what}: not a list")
    return value


def _opt(value: object, convert: Any) -> Any:
    return None if value is None else convert(value)


def _net(value: object) -> IPNetwork:
    return v.ip_network(value, strict=False)


def _port(doc: Mapping[str, Any]) -> Port:
    pairs = tuple(
        AllowedAddressPair(_net(p.get("ip_address")), _opt(p.get("mac_address"), v.mac))
        for p in (
            _obj(x, "address pair") for x in _list(doc.get("allowed_address_pairs"), "pairs")
        )
    )
    return Port(
        id=v.uuid(doc.get("id")),
        network_id=v.uuid(doc.get("network_id")),
        mac_address=v.mac(doc.get("mac_address")),
        fixed_ips=tuple(
            FixedIP(None, v.ip_address(a)) for a in _list(doc.get("fixed_ips"), "ips")
        ),
        host=_opt(doc.get("host"), v.hostname),
        device_owner=v.device_owner(doc.get("device_owner", "")),
        port_security_enabled=v.boolean(doc.get("port_security_enabled")),
        security_groups=tuple(v.uuid(g) for g in _list(doc.get("security_groups"), "groups")),
        allowed_address_pairs=pairs,
    )


def _rule(doc: Mapping[str, Any]) -> SecurityGroupRule:
    ints = {key: _opt(doc.get(key), lambda x: v.integer(x, 0, 65535)) for key in _RULE_INTS}
    return SecurityGroupRule(
        id=_opt(doc.get("id"), v.uuid),
        security_group_id=_opt(doc.get("security_group_id"), v.uuid),
        direction=Direction(v.string(doc.get("direction"))),
        ethertype=EtherType(v.string(doc.get("ethertype"))),
        remote_ip_prefix=_opt(doc.get("remote_ip_prefix"), _net),
        remote_group_id=_opt(doc.get("remote_group_id"), v.uuid),
        remote_address_group_id=_opt(doc.get("remote_address_group_id"), v.uuid),
        local_ip_prefix=_opt(doc.get("local_ip_prefix"), _net),
        **ints,
    )


def parse(doc: object, firewall: object = None, l2: object = None) -> Snapshot:
    """Model objects from the ``"explain"`` part of a status document.

    :param firewall: the document's ``drivers.firewall`` entry
    :param l2: the document's ``drivers.l2`` entry
    :raises ValueError: a missing or invalid field (the agent is too old, or not ours)
    """
    try:
        return dataclasses.replace(_parse(doc, firewall), ovs=parse_ovs(l2))
    except (v.FieldError, ModelError, TypeError, AttributeError) as exc:
        raise ValueError(f"invalid explain document: {exc}") from exc


def _parse(doc: object, firewall: object) -> Snapshot:
    root = _obj(doc, "explain")
    if root.get("version") != VERSION:
        raise ValueError(f"explain document version {root.get('version')!r} is not {VERSION}")
    ports = [_port(_obj(p, "port")) for p in _list(root.get("ports"), "ports")]
    groups = [
        SecurityGroup(
            id=v.uuid(g.get("id")),
            stateful=v.boolean(g.get("stateful")),
            rules=tuple(_rule(_obj(r, "rule")) for r in _list(g.get("rules"), "rules")),
        )
        for g in (_obj(x, "group") for x in _list(root.get("security_groups"), "groups"))
    ]
    networks = [
        NetworkInfo(
            id=v.uuid(n.get("id")),
            network_type=v.token(n.get("type")),
            segmentation_id=_opt(n.get("segmentation_id"), lambda x: v.integer(x, 0, 2**24)),
            tunnel_peers={
                v.hostname(h): v.ip_address(a)
                for h, a in _obj(n.get("tunnel_peers"), "peers").items()
            },
        )
        for n in (_obj(x, "network") for x in _list(root.get("networks"), "networks"))
    ]
    members: dict[tuple[str, int], frozenset[IPNetwork]] = {}
    for rid, by_family in _obj(root.get("members"), "members").items():
        for family, nets in _obj(by_family, "members").items():
            members[(v.uuid(rid), int(family))] = frozenset(_net(n) for n in _list(nets, "m"))
    routers = [Router.from_sync(r) for r in _list(root.get("routers", []), "routers")]
    return Snapshot(
        host=v.hostname(root.get("host")),
        ports={p.id: p for p in ports},
        networks={n.id: n for n in networks},
        security_groups={g.id: g for g in groups},
        members=members,
        firewall=dict(_obj(firewall or {}, "firewall")),
        planned=frozenset(v.uuid(p) for p in _list(root.get("planned"), "planned")),
        routers={r.id: r for r in routers},
    )


def address_of(value: str) -> IPAddress:
    """An IP address from text.

    :raises ValueError: not an address
    """
    return ipaddress.ip_address(value)
