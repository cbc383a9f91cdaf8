"""Pure functions from a desired-state snapshot to per-host driver plans.

Everything the reconciler sends to a driver is computed here from the snapshot and the
devices present on the host, together with the *fingerprint* of each plan: a value that
compares equal exactly when the driver would be asked to do the same thing again. No
threads, no I/O: the unit tests call these directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from netagent.agent.dirty import Key
from netagent.drivers.base import NetworkPlan, PortPlan, RemotePort
from netagent.model import DesiredState, HostView, Port, Router


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
    """

    view: HostView
    networks: Mapping[str, NetworkPlan]
    ports: Mapping[str, Port]
    port_plans: Mapping[str, PortPlan]
    port_errors: Mapping[str, str]
    routers: Mapping[str, Router]

    def waiting_for_device(self, port_id: str) -> bool:
        """A local, plannable port whose device does not exist (yet)."""
        return (
            port_id in self.ports
            and port_id not in self.port_plans
            and port_id not in self.port_errors
        )


def compute(state: DesiredState, host: str, devices: Mapping[str, int]) -> HostPlan:
    """Plan ``host`` from ``state`` given the devices that exist (name -> ifindex).

    :param state: the complete desired state (all hosts: remote ports matter).
    :param host: this agent's host name.
    :param devices: the tap devices present on the host.
    """
    view = state.for_host(host)
    networks: dict[str, NetworkPlan] = {}
    for network_id, network in view.networks.items():
        peers = view.tunnel_peers(network_id)
        remote = tuple(
            RemotePort(p.mac_address, p.addresses, peers[p.host])
            for p in state.ports_on_network(network_id)
            if p.host is not None and p.host != host and p.host in peers
        )
        networks[network_id] = NetworkPlan(network, peers, remote)
    port_plans: dict[str, PortPlan] = {}
    errors: dict[str, str] = {}
    owner: dict[str, str] = {}
    for port_id in sorted(view.ports):
        port = view.ports[port_id]
        maybe_network = view.networks.get(port.network_id)
        if maybe_network is None:
            errors[port_id] = f"network {port.network_id} is not in the desired state"
            continue
        device = port.device_name
        if device in owner:
            errors[port_id] = f"device {device} is already the device of port {owner[device]}"
            continue
        owner[device] = port_id
        if device in devices:
            port_plans[port_id] = PortPlan(port, maybe_network)
    return HostPlan(view, networks, view.ports, port_plans, errors, view.routers)


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
