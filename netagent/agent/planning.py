"""Pure functions from a desired-state snapshot to per-host driver plans.

Everything the reconciler sends to a driver is computed here from the snapshot and the
devices present on the host, together with the *fingerprint* of each plan: a value that
compares equal exactly when the driver would be asked to do the same thing again. No
threads, no I/O: the unit tests call these directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from netagent.agent.dirty import Key
from netagent.common import names
from netagent.drivers.base import NetworkPlan, PortPlan, RemotePort
from netagent.model import DesiredState, HostView, Network, NetworkType, Port, Router

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class HostPlan:
    """What this host should look like, computed from one snapshot.

    :param view: the snapshot cut down to this host.
    :param networks: networks with at least one local port -> their plan.
    :param ports: every port bound to this host, whether or not its device exists.
    :param port_plans: local ports whose device exists and that can be wired.
    :param port_errors: local ports that cannot be planned, with why (not retried: they
        wait for a new snapshot).
    :param routers: routers with a port on this host.
    :param refused_networks: local networks refused because a kernel name they derive is
        taken by another network, with why (their ports are in ``port_errors``).
    """

    view: HostView
    networks: Mapping[str, NetworkPlan]
    ports: Mapping[str, Port]
    port_plans: Mapping[str, PortPlan]
    port_errors: Mapping[str, str]
    routers: Mapping[str, Router]
    refused_networks: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def waiting_for_device(self, port_id: str) -> bool:
        """A local, plannable port whose device does not exist (yet)."""
        return (
            port_id in self.ports
            and port_id not in self.port_plans
            and port_id not in self.port_errors
        )


def compute(
    state: DesiredState,
    host: str,
    devices: Mapping[str, int],
    incumbents: Mapping[str, str] | None = None,
) -> HostPlan:
    """Plan ``host`` from ``state`` given the devices that exist (name -> ifindex).

    Kernel names derived from ids or segmentation ids (see :func:`network_claims` and
    :func:`port_claims`) must name one object each. When two local objects derive the
    same name, one keeps it and the other is refused with an error naming both: the
    incumbent (the object ``incumbents`` says holds the name, i.e. the one applied now),
    otherwise the object with the lowest id, so every pass and every restart with the
    same objects picks the same one. A name held by an object that is no longer wanted
    stays refused to others until that object is removed from the host.

    :param state: the complete desired state (all hosts: remote ports matter).
    :param host: this agent's host name.
    :param devices: the tap devices present on the host.
    :param incumbents: derived name -> id of the object currently applied under it.
    """
    view = state.for_host(host)
    held = incumbents or {}
    refused: dict[str, str] = {}
    # a name stays taken until what holds it is removed from the host (later this pass)
    owner = {c: i for c, i in held.items() if i not in view.networks and i not in view.ports}
    for network_id in _incumbents_first(view.networks, network_claims, held):
        for claim in network_claims(view.networks[network_id]):
            if owner.setdefault(claim, network_id) != network_id:
                refused[network_id] = f"{claim} is already used by network {owner[claim]}"
                break
    networks: dict[str, NetworkPlan] = {}
    for network_id, network in view.networks.items():
        if network_id in refused:
            continue
        peers = view.tunnel_peers(network_id)
        remote = tuple(
            RemotePort(p.mac_address, p.addresses, peers[p.host])
            for p in state.ports_on_network(network_id)
            if p.host is not None and p.host != host and p.host in peers
        )
        networks[network_id] = NetworkPlan(network, peers, remote)
    port_plans: dict[str, PortPlan] = {}
    errors: dict[str, str] = {}
    for port_id in _incumbents_first(view.ports, port_claims, held):
        port = view.ports[port_id]
        maybe_network = view.networks.get(port.network_id)
        if maybe_network is None or port.network_id in refused:
            why = refused.get(port.network_id, "is not in the desired state")
            errors[port_id] = f"network {port.network_id} {why}"
            continue
        taken = [c for c in port_claims(port) if owner.get(c, port_id) != port_id]
        if taken:
            errors[port_id] = f"{taken[0]} is already used by port {owner[taken[0]]}"
            continue
        owner.update((c, port_id) for c in port_claims(port))
        if port.device_name in devices:
            port_plans[port_id] = PortPlan(port, maybe_network)
    for network_id, why in refused.items():
        errors.update(
            (p.id, f"network {network_id} refused: {why}")
            for p in view.ports_on_network(network_id)
        )
    return HostPlan(view, networks, view.ports, port_plans, errors, view.routers, refused)


def network_claims(network: Network) -> tuple[str, ...]:
    """The kernel names a network's wiring derives: its bridge (``brq`` + 11 characters of
    the id, shared by the ``nvl-`` device) and, for VXLAN, ``nvx-<VNI>``."""
    claims = [f"bridge {names.network_bridge(network.id)}"]
    if network.network_type is NetworkType.VXLAN and network.segmentation_id is not None:
        claims.append(f"VXLAN device {names.vxlan_device(network.segmentation_id)}")
    elif network.network_type is NetworkType.VLAN:
        claims.append(f"VLAN {network.segmentation_id} on {network.physical_network}")
    return tuple(claims)


def port_claims(port: Port) -> tuple[str, ...]:
    """The kernel names a port derives: its tap (``tap`` + 11 characters of the id), which
    also names its filter chains (``na-i-``/``na-o-``/``na-s-`` + the same characters)."""
    return (f"device {port.device_name}",)


def incumbents_of(applied: Iterable[Network | Port]) -> dict[str, str]:
    """Derived name -> id for objects that are applied now (see :func:`compute`)."""
    held: dict[str, str] = {}
    for obj in applied:
        claims = network_claims(obj) if isinstance(obj, Network) else port_claims(obj)
        for claim in claims:
            held.setdefault(claim, obj.id)
    return held


def _incumbents_first(
    objects: Mapping[str, T], claims: Callable[[T], tuple[str, ...]], held: Mapping[str, str]
) -> list[str]:
    def rank(object_id: str) -> tuple[bool, str]:
        mine = any(held.get(c) == object_id for c in claims(objects[object_id]))
        return (not mine, object_id)

    return sorted(objects, key=rank)


def wire_fingerprint(plan: PortPlan, devices: Mapping[str, int]) -> object:
    """Fingerprint of wiring a port: the plan and the device's ifindex (a device deleted
    and recreated under the same name must be wired again)."""
    return (plan, devices.get(plan.port.device_name))


def filter_fingerprint(plan: PortPlan, view: HostView) -> object:
    """Fingerprint of a port's filter: the port, its groups' rules, and the addresses of
    every remote group those rules reference."""
    groups = tuple(view.security_groups.get(g) for g in plan.port.security_groups)
    remotes = sorted(
        {
            rid
            for group in groups
            if group is not None
            for rule in group.rules
            for rid in (rule.remote_group_id, rule.remote_address_group_id)
            if rid is not None
        }
    )
    members = tuple((rid, tuple(sorted(view.members.get(rid, {}).items()))) for rid in remotes)
    return (plan, groups, members)


def changed_keys(old: DesiredState, new: DesiredState, host: str) -> set[Key]:
    """Resources of ``host`` that may need work after the state went from ``old`` to
    ``new``.

    Over-approximates on purpose: the reconciler compares fingerprints before calling a
    driver, so a key marked here for nothing costs a comparison, while a key missed here
    would leave the host wrong until the next full resync.
    """
    keys: set[Key] = set()
    local_ports = {i for i, p in new.ports.items() if p.host == host}
    local_ports |= {i for i, p in old.ports.items() if p.host == host}
    port_wide = False
    for port_id in _changed(old.ports, new.ports):
        before, after = old.ports.get(port_id), new.ports.get(port_id)
        for port in (before, after):
            if port is not None:
                keys.add(("network", port.network_id))
        if port_id in local_ports:
            keys.add(("port", port_id))
        # a remote port's addresses or groups feed other ports' remote-group rules
        port_wide = port_wide or _firewall_relevant(before, after)
    for network_id in _changed(old.networks, new.networks):
        keys.add(("network", network_id))
        keys.update(
            ("port", p.id)
            for p in new.ports.values()
            if p.network_id == network_id and p.id in local_ports
        )
    if (
        port_wide
        or _changed(old.security_groups, new.security_groups)
        or _changed(old.address_groups, new.address_groups)
    ):
        keys.update(("port", port_id) for port_id in local_ports)
    if _changed(old.agents, new.agents):
        keys.update(("network", p.network_id) for p in new.ports.values() if p.host == host)
    if (
        _changed(old.routers, new.routers)
        or _changed(old.subnets, new.subnets)
        or _changed(old.floatingips, new.floatingips)
    ):
        keys.update(("router", r) for r in set(old.routers) | set(new.routers))
    return keys


def _changed(old: Mapping[str, object], new: Mapping[str, object]) -> set[str]:
    if old is new:
        return set()
    return {k for k in set(old) | set(new) if old.get(k) != new.get(k)}


def _firewall_relevant(before: Port | None, after: Port | None) -> bool:
    def key(port: Port | None) -> object:
        if port is None or not port.security_groups:
            return None
        return (port.security_groups, port.addresses, port.allowed_address_pairs)

    return key(before) != key(after)
