"""Abstract driver interfaces: L2, firewall and L3.

Lifecycle, the same for every kind:

* ``__init__(conf)`` stores its configuration and has no side effects;
* ``initialize()`` prepares shared state on the host (may touch the kernel);
* the per-kind methods converge the host towards the desired state they are given. They are
  idempotent, adopt what already exists instead of recreating it (an agent restart must not
  flap anything), and report per resource: one failing resource never stops the others;
* ``sweep(...)`` removes what netagent owns and the desired state no longer wants;
* ``cleanup(dry_run)`` removes everything this driver owns (the cleanup tool).

Methods returning :class:`Outcome` never raise for a single resource's failure; they raise
only when nothing at all could be done (e.g. the kernel layer is unusable).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from netagent.model import DesiredState, Network, Port, Router

IPAddress = IPv4Address | IPv6Address


@dataclasses.dataclass
class Outcome:
    """Per-resource result of a batch: ids that converged, and ids that failed with why."""

    succeeded: set[str] = dataclasses.field(default_factory=set)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)

    def merge(self, other: Outcome) -> None:
        self.succeeded |= other.succeeded - set(other.failed)
        self.failed.update(other.failed)
        self.succeeded -= set(self.failed)


@dataclasses.dataclass(frozen=True)
class Drift:
    """Resources whose kernel state someone else changed since the driver applied them.

    :ivar networks: network ids to converge again
    :ivar ports: port ids to wire again
    :ivar found: one line per change found (for the log and the status)
    """

    networks: frozenset[str] = frozenset()
    ports: frozenset[str] = frozenset()
    found: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.networks or self.ports)


@dataclasses.dataclass(frozen=True)
class RemotePort:
    """A port of the same network on another host: static FDB and ARP/ND entries."""

    mac_address: str
    ip_addresses: tuple[IPAddress, ...]
    tunnel_ip: IPAddress


@dataclasses.dataclass(frozen=True)
class NetworkPlan:
    """What one network needs on this host."""

    network: Network
    #: Other hosts with ports on this network -> their VXLAN underlay address.
    tunnel_peers: Mapping[str, IPAddress]
    remote_ports: tuple[RemotePort, ...] = ()


@dataclasses.dataclass(frozen=True)
class PortPlan:
    """One local port and the network it belongs to."""

    port: Port
    network: Network


class DriverBase(abc.ABC):
    """Common lifecycle of every driver kind."""

    #: Entry-point group the drivers of this kind are registered in.
    namespace: ClassVar[str]

    def __init__(self, conf: Any) -> None:
        """Store configuration only: no side effects on the host.

        :param conf: the oslo.config object (drivers read their own group only).
        """
        self.conf = conf

    def initialize(self) -> None:  # noqa: B027 - optional hook
        """Prepare shared host state. Called once before any other method."""

    def cleanup(self, dry_run: bool = False) -> list[str]:
        """Remove everything this driver owns on the host.

        :param dry_run: only report what would be removed.
        :returns: one human-readable line per action.
        """
        return []

    def describe(self) -> dict[str, Any]:
        """What this driver has applied, for ``netagent-status``. JSON-serialisable."""
        return {}

    def begin_pass(self) -> None:  # noqa: B027 - optional hook
        """The agent starts a pass: kernel state read during an earlier pass is stale.

        Between two calls the agent is the only caller of this driver's methods, so a
        driver may read the kernel once per pass and keep what it read (updated with its
        own changes) for the rest of the pass. A driver never told of passes (tests,
        ``netagent-cleanup``) must read the kernel in every call.
        """

    def end_pass(self) -> None:  # noqa: B027 - optional hook
        """The agent's pass is over (also when one of its calls failed): a driver may
        write here what it deferred to batch it with the pass's other writes.

        :raises NetagentError: the write failed (the agent logs it; the driver keeps
            what it deferred for the next pass).
        """

    def check_integrity(self) -> int:
        """Compare the kernel state this driver guards (filters, the host guard) with
        what it last applied and rewrite what someone else changed (logging each object
        found changed). Cheap: the agent calls it every few seconds. Never reports a
        change the driver itself is making.

        :returns: how many objects were found changed (and rewritten)
        """
        return 0

    def find_drift(self) -> Drift:
        """Compare the kernel objects of the networks and ports this driver applied with
        what it applied, cheaply (the agent calls it with :meth:`check_integrity`), and
        report those someone else changed. The driver forgets them as applied (a change
        is reported once) and logs each; the agent converges them again in its next pass,
        through the same calls as any change. Objects that vanish for a legitimate reason
        (a port device the hypervisor deleted or recreated) are not reported. Never
        reports a change the driver itself is making.
        """
        return Drift()


#: A device another driver made for a port, for :class:`HostPlug`: (port id, MAC, host
#: end, namespace of the other end, other end).
HostEnd = tuple[str, str, str, str, str]


class HostPlug:
    """How the host ends of devices another driver makes (router ports) reach the L2
    driver (:meth:`L2Driver.host_plug`). This one does nothing: the L2 driver finds a host
    end ``tap<port>`` by name (Linux bridge)."""

    def plug(self, ports: Sequence[HostEnd]) -> None:
        """Make the L2 driver able to find these ports (their devices exist)."""

    def unplug(self, host_ends: Sequence[str]) -> None:
        """Forget these host ends (their devices are deleted or about to be)."""


class L2Driver(DriverBase):
    """Wires port devices into networks."""

    namespace = "netagent.l2"

    def ensure_networks(self, plans: Sequence[NetworkPlan]) -> Outcome:
        """Create or adopt each network's devices (bridge, VXLAN/VLAN/physical uplink,
        flooding list, static FDB/ARP entries) and make them match the plan.

        :returns: network ids that converged / failed.
        """
        return Outcome(succeeded={p.network.id for p in plans})

    def plug_ports(self, plans: Sequence[PortPlan]) -> Outcome:
        """Wire each port's existing device (``tap`` + 11 chars, created by the hypervisor)
        into its network with the network's MTU and the port's admin state. The network
        has been ensured first. A port whose device is absent fails with that reason.

        :returns: port ids that converged / failed.
        """
        return Outcome(succeeded={p.port.id for p in plans})

    def watch_ports(self, callback: Callable[[str], None]) -> None:
        """Report switch-port changes the agent's device monitor cannot see.

        A driver whose switch keeps its own port table (OVSDB) calls ``callback(port_id)``
        from any thread when a port's entry appears, changes or vanishes; the agent then
        plugs that port again. Called once, before :meth:`initialize`. Default: nothing to
        report (the tap's appearance is all there is).
        """

    def host_plug(self, netns: str | None = None) -> HostPlug:
        """What other drivers call to hand this driver the host ends of the ports they
        make (:class:`HostPlug`); the agent gives it to the L3 driver.

        :param netns: the namespace of the host ends (``None``: the agent's own)
        """
        return HostPlug()

    def unplug_ports(self, plans: Sequence[PortPlan]) -> Outcome:
        """Detach the ports' devices from their networks (devices that are gone are fine).

        :returns: port ids that are unplugged / failed.
        """
        return Outcome(succeeded={p.port.id for p in plans})

    def sweep(
        self,
        wanted: Sequence[NetworkPlan],
        dry_run: bool = False,
        wanted_devices: AbstractSet[str] | None = None,
    ) -> list[str]:
        """Remove network devices netagent owns that no wanted network uses, and detach
        port devices that are wired into netagent's networks but belong to no wanted port
        (e.g. a port deleted while the agent was down). Port devices are detached, never
        deleted: they belong to the hypervisor.

        :param wanted_devices: device names of the ports that may stay wired; ``None``
            leaves port devices alone.
        :returns: one line per action taken (or planned, with ``dry_run``).
        """
        return []


class FirewallDriver(DriverBase):
    """Filters ports (security groups and anti-spoofing). Fail closed: the agent applies a
    port's filter before the L2 driver wires it."""

    namespace = "netagent.firewall"

    def apply_ports(self, plans: Sequence[PortPlan], state: DesiredState) -> Outcome:
        """Install or update the filters of ``plans`` (groups, members from ``state``).

        :returns: port ids filtered / failed.
        """
        return Outcome(succeeded={p.port.id for p in plans})

    def remove_ports(self, port_ids: Sequence[str]) -> Outcome:
        """Remove the filters of ports that left this host."""
        return Outcome(succeeded=set(port_ids))

    def sweep(self, wanted_port_ids: set[str], dry_run: bool = False) -> list[str]:
        """Remove filters netagent owns for ports not in ``wanted_port_ids``."""
        return []


class L3Driver(DriverBase):
    """Builds routers."""

    namespace = "netagent.l3"

    #: Whether this driver builds routers at all. When false (``noop``) the agent never
    #: calls it for routers and reports each router as not applied (neither ready nor
    #: failed, never retried).
    builds_routers: ClassVar[bool] = True

    def use_host_plug(self, plug: HostPlug) -> None:
        """The L2 driver's :meth:`L2Driver.host_plug`, for router ports (called by the
        agent before :meth:`initialize`)."""

    def apply_routers(self, routers: Sequence[Router], state: DesiredState) -> Outcome:
        """Create or update each router (namespace, interfaces, routes, NAT)."""
        return Outcome(succeeded={r.id for r in routers})

    def remove_routers(self, router_ids: Sequence[str]) -> Outcome:
        """Delete routers no longer wanted on this host."""
        return Outcome(succeeded=set(router_ids))

    def sweep(self, wanted_router_ids: set[str], dry_run: bool = False) -> list[str]:
        """Remove router namespaces netagent owns that are not wanted."""
        return []
