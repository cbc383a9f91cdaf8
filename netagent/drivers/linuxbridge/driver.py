"""The Linux bridge L2 driver: one bridge per network, taps enslaved to it.

Per network on this host:

* a bridge ``brq`` + 11 characters of the network id (the name Nova's bridge VIF expects),
  STP off, MAC ageing :data:`AGEING_SECONDS`, MTU of the network;
* its uplink: for VXLAN a device ``nvx-<vni>`` over ``[linuxbridge] local_ip`` (learning
  off, destination port ``vxlan_udp_port``, MTU of the network; the underlay must carry
  50 bytes more) whose FDB is converged by :mod:`.fdb`, with ARP for remote ports answered
  by the bridge (:mod:`.neighbours`); for flat networks the interface
  mapped in ``physical_interface_mappings`` (enslaved, nothing else on it is changed); for
  VLAN networks a sub-interface ``nvl-`` + 11 characters of the network id on that
  interface; local networks have none;
* each local port's tap, with the network's MTU, up or down as its admin state says.

The host guard (ebtables ``filter`` chain ``na-INPUT``, first in ``INPUT``) drops every
frame a bridge would hand to the host's own stack when it came from a tap or a
``nvx-``/``nvl-`` uplink: a VM, or a remote VM through the tunnel, reaches neither the
host's services nor its VXLAN socket (where a datagram for another VNI would be
decapsulated into another tenant's network). The host serves nothing to VMs on these
bridges. No port is plugged until the guard is in place.

Every method works from one dump of the namespace's links and changes only what differs,
so running it again on a wired host sends nothing to the kernel, and an agent restart adopts
the devices in place (same ifindexes, no flap). What netagent owns is recognised by name:
``brq`` bridges, ``nvx-``/``nvl-`` devices. A bridge with a member that is none of
netagent's (tap, ``nvx-``/``nvl-``, a mapped physical interface) is never deleted.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from netagent.common import constants as c
from netagent.common import names
from netagent.common.exceptions import NetagentError
from netagent.drivers import base
from netagent.drivers.common import ResourceError
from netagent.drivers.common import parse_mappings as parse_physnets
from netagent.drivers.hostguard import DESCRIPTION, HostGuard
from netagent.drivers.linuxbridge import drift, fdb, neighbours, takeover
from netagent.drivers.linuxbridge import sweep as sweep_mod
from netagent.drivers.linuxbridge.kernel import ZERO_MAC, FdbEntry, Kernel, Link, VxlanSpec
from netagent.drivers.linuxbridge.links import Links
from netagent.linux.errors import DeviceNotFound, EntryNotFound, KernelError
from netagent.linux.ip_lib import (
    AdoptVxlan,
    CreateBridge,
    CreateVlan,
    CreateVxlan,
    DeleteFdb,
    DeleteLink,
    DeleteNeighbour,
    Op,
    SetLink,
)
from netagent.model.network import Network, NetworkType

LOG = logging.getLogger(__name__)

#: Seconds a learned MAC stays in a bridge's table (the kernel's default too).
AGEING_SECONDS = 300
_OWN_UPLINK_PREFIXES = sweep_mod.OWN_UPLINK_PREFIXES
#: Bridge ports whose frames never go to the host's stack (VMs, overlay and VLAN uplinks).
GUARDED_PORTS = [
    c.TAP_PREFIX + "+",
    c.VXLAN_DEVICE_PREFIX + "+",
    c.VLAN_DEVICE_PREFIX + "+",
]


class LinuxBridgeError(ResourceError):
    """A network or port cannot be wired on a Linux bridge."""


def parse_mappings(entries: Iterable[str]) -> dict[str, str]:
    """``physical_interface_mappings`` (``["physnet1:eth1", ...]``) as a dict.

    :raises ValueError: malformed entry, duplicate physical network or interface.
    """
    return parse_physnets(entries, "physical_interface_mappings", c.MAX_DEVICE_NAME_LEN)


class LinuxBridgeDriver(base.L2Driver):
    """Linux bridge L2 driver (entry point ``linuxbridge`` in ``netagent.l2``).

    :param conf: oslo.config object; only ``[linuxbridge]`` is read.
    :param kernel: kernel layer to use (tests pass a fake); default: ip_lib.
    :param netns: network namespace to work in; ``None`` (the agent's case) is the
        namespace the process runs in. Functional tests pass a test namespace.
    """

    def __init__(self, conf: Any, kernel: Kernel | None = None, netns: str | None = None) -> None:
        super().__init__(conf)
        group = conf.linuxbridge
        self.mappings = parse_mappings(group.physical_interface_mappings)
        self.local_ip: str | None = str(group.local_ip) if group.local_ip else None
        self.vxlan_port: int = group.vxlan_udp_port
        self.arp_responder: bool = group.arp_responder
        #: rename a stopped Neutron Linux bridge agent's vxlan-<VNI> devices (.takeover)
        self.take_over: bool = bool(
            getattr(getattr(conf, "agent", None), "take_over_neutron_linuxbridge", False)
        )
        self.netns = netns
        self._kernel = kernel
        self._networks: dict[str, dict[str, Any]] = {}
        self._ports: dict[str, dict[str, Any]] = {}
        #: what was applied, for :meth:`find_drift`
        self._applied_networks: dict[str, drift.AppliedNetwork] = {}
        #: networks whose VXLAN device was taken over and whose desired state has named
        #: no tunnel peer yet: their FDB entries are kept (see :meth:`_plan_entries`)
        self._fdb_pending: set[str] = set()
        self._applied_ports: dict[str, drift.AppliedPort] = {}
        self._guard = HostGuard(GUARDED_PORTS, netns)
        self._in_pass = False
        self._snapshot: Links | None = None

    @property
    def kernel(self) -> Kernel:
        """The kernel layer, created on first use (``__init__`` has no side effects)."""
        if self._kernel is None:
            from netagent.drivers.linuxbridge.iplib_kernel import (  # noqa: PLC0415
                IpLibKernel,
            )

            self._kernel = IpLibKernel(self.netns)
        return self._kernel

    # -- networks -----------------------------------------------------------------------

    def begin_pass(self) -> None:
        self._in_pass = True
        self._snapshot = None

    def _links(self, refresh: bool = False) -> Links:
        """The namespace's devices: one dump per pass (every call outside a pass)."""
        if refresh or self._snapshot is None or not self._in_pass:
            self._snapshot = Links(self.kernel.links())
        return self._snapshot

    def _apply(self, changes: list[tuple[str, Op]], links: Links) -> dict[str, KernelError]:
        """Send ``(owner, operation)`` pairs as one batch and keep ``links`` true: link
        changes are recorded, deleted devices dropped, created ones read back (by name).

        :returns: the first failure of each owner that had one.
        """
        if not changes:
            return {}
        failures = self.kernel.apply([op for _owner, op in changes])
        created: list[str] = []
        failed: dict[str, KernelError] = {}
        for index, (owner, op) in enumerate(changes):
            error = failures.get(index)
            if error is not None and not _gone_already(op, error):
                failed.setdefault(owner, error)
            elif isinstance(op, SetLink):
                links.applied(op)
            elif isinstance(op, DeleteLink):
                links.deleted(op.name)
            elif op.invalidates:
                created.append(op.target)
                if isinstance(op, AdoptVxlan):
                    links.deleted(op.name)
        if created:
            links.update(self.kernel.links_named(created))
        return failed

    def ensure_networks(self, plans: Sequence[base.NetworkPlan]) -> base.Outcome:
        outcome = base.Outcome()
        if not self._ensure_guard():
            for plan in plans:
                outcome.failed[plan.network.id] = f"host guard missing: {self._guard.error}"
            return outcome
        links = self._links()
        creations: list[tuple[str, Op]] = []
        created: dict[str, list[str]] = {}
        for plan in plans:
            try:
                created[plan.network.id] = self._plan_creation(plan.network, links, creations)
            except (NetagentError, ValueError) as exc:
                self._fail(outcome, plan.network.id, exc)
        if creations:
            for network_id, error in self._apply(creations, links).items():
                self._fail(outcome, network_id, error)
            self._disable_ipv6(created, outcome)
        live = [plan for plan in plans if plan.network.id not in outcome.failed]
        fixes: list[tuple[str, Op]] = []
        for plan in live:
            try:
                self._plan_fixes(plan.network, links, fixes)
            except (NetagentError, ValueError) as exc:
                self._fail(outcome, plan.network.id, exc)
        for network_id, error in self._apply(fixes, links).items():
            self._fail(outcome, network_id, error)
        entries: list[tuple[str, Op]] = []
        records: dict[str, tuple[dict[str, Any], drift.AppliedNetwork]] = {}
        for plan in live:
            nid = plan.network.id
            if nid in outcome.failed:
                continue
            try:
                fresh = self._uplink_name(plan.network) in created[nid]
                records[nid] = self._plan_entries(plan, links, fresh, entries)
            except (NetagentError, ValueError) as exc:
                self._fail(outcome, nid, exc)
        for network_id, error in self._apply(entries, links).items():
            self._fail(outcome, network_id, error)
        for nid, (record, applied) in records.items():
            if nid not in outcome.failed:
                self._networks[nid] = record
                self._applied_networks[nid] = applied
                outcome.succeeded.add(nid)
        for network_id in outcome.failed:
            self._applied_networks.pop(network_id, None)
        return outcome

    def _disable_ipv6(self, created: dict[str, list[str]], outcome: base.Outcome) -> None:
        # The host has no business on tenant networks: no link-local address, no router
        # solicitations, DAD or MLD reports from the bridge or the uplink into the network.
        devices = [
            device
            for network_id, names_ in created.items()
            if network_id not in outcome.failed
            for device in names_
        ]
        if not devices:
            return
        try:
            self.kernel.disable_ipv6(devices)
        except (NetagentError, OSError):
            for network_id, names_ in created.items():  # find the culprits one by one
                if network_id in outcome.failed or not names_:
                    continue
                try:
                    self.kernel.disable_ipv6(names_)
                except (NetagentError, OSError) as exc:
                    self._fail(outcome, network_id, exc)

    def _uplink_name(self, network: Network) -> str | None:
        kind = network.network_type
        if kind is NetworkType.VXLAN:
            assert network.segmentation_id is not None
            return names.vxlan_device(network.segmentation_id)
        if kind is NetworkType.VLAN:
            return names.vlan_device(network.id)
        if kind is NetworkType.FLAT:
            return self._physical_interface(network)
        return None

    def _physical_interface(self, network: Network) -> str:
        interface = self.mappings.get(network.physical_network or "")
        if interface is None:
            raise LinuxBridgeError(
                network.id,
                f"physical network {network.physical_network!r} is not in "
                "[linuxbridge] physical_interface_mappings",
            )
        return interface

    def _vxlan_spec(self, network: Network) -> VxlanSpec:
        if not self.local_ip:
            raise LinuxBridgeError(network.id, "VXLAN network but [linuxbridge] local_ip unset")
        assert network.segmentation_id is not None
        return VxlanSpec(vni=network.segmentation_id, local=self.local_ip, port=self.vxlan_port)

    def _plan_creation(
        self, network: Network, links: Links, changes: list[tuple[str, Op]]
    ) -> list[str]:
        """Queue the creation of the bridge and the netagent uplink device if absent (or
        unusable), and the deletion of stale uplinks.

        :returns: the names of the devices queued for creation.
        """
        nid = network.id
        created: list[str] = []
        bridge = names.network_bridge(nid)
        existing = links.get(bridge)
        if existing is None:
            LOG.info("Network %s: creating bridge %s", nid, bridge)
            mac = self._bridge_mac(network)
            changes.append(
                (
                    nid,
                    CreateBridge(
                        name=bridge, mtu=network.mtu, ageing_time=AGEING_SECONDS, mac=mac
                    ),
                )
            )
            created.append(bridge)
        elif existing.kind != "bridge":
            raise LinuxBridgeError(nid, f"{bridge} exists and is not a bridge")
        uplink = self._uplink_name(network)
        if existing is not None:
            self._remove_stale_uplinks(nid, existing, uplink, links, changes)
        if uplink is None:
            return created
        current = links.get(uplink)
        if network.network_type is NetworkType.VXLAN:
            spec = self._vxlan_spec(network)
            if current is not None and not _vxlan_matches(current, spec):
                LOG.info("Network %s: %s has other VNI/address/port, recreating", nid, uplink)
                changes.append((nid, DeleteLink(name=uplink)))
                current = None
            if current is None and self.take_over:
                adoption = takeover.vxlan_adoption(links, spec)
                if isinstance(adoption, str):
                    raise LinuxBridgeError(nid, adoption)
                if adoption is not None:
                    LOG.info(
                        "Network %s: taking over %s as %s (renamed in place, learning off)",
                        nid,
                        adoption.name,
                        uplink,
                    )
                    changes.append((nid, adoption))
                    self._fdb_pending.add(nid)
                    return created
            if current is None:
                LOG.info(
                    "Network %s: creating %s (VNI %d, local %s, port %d)",
                    nid,
                    uplink,
                    spec.vni,
                    spec.local,
                    spec.port,
                )
                vxlan = CreateVxlan(
                    name=uplink,
                    vni=spec.vni,
                    local=spec.local,
                    port=spec.port,
                    learning=False,
                    mtu=network.mtu,
                )
                changes.append((nid, vxlan))
                created.append(uplink)
        elif network.network_type is NetworkType.VLAN:
            parent_name = self._physical_interface(network)
            parent = links.get(parent_name)
            if parent is None:
                raise LinuxBridgeError(nid, f"physical interface {parent_name} is absent")
            if current is not None and (
                current.kind != "vlan"
                or current.vni != network.segmentation_id
                or current.parent != parent.index
            ):
                LOG.info("Network %s: %s has other VLAN/parent, recreating", nid, uplink)
                changes.append((nid, DeleteLink(name=uplink)))
                current = None
            if current is None:
                assert network.segmentation_id is not None
                LOG.info(
                    "Network %s: creating %s (VLAN %d on %s)",
                    nid,
                    uplink,
                    network.segmentation_id,
                    parent_name,
                )
                vlan = CreateVlan(
                    name=uplink,
                    link=parent_name,
                    vlan_id=network.segmentation_id,
                    mtu=network.mtu,
                )
                changes.append((nid, vlan))
                created.append(uplink)
        elif current is None:
            raise LinuxBridgeError(nid, f"physical interface {uplink} is absent")
        return created

    def _remove_stale_uplinks(
        self,
        network_id: str,
        bridge: Link,
        uplink: str | None,
        links: Links,
        changes: list[tuple[str, Op]],
    ) -> None:
        """Delete netagent's VXLAN devices on the bridge other than ``uplink``: after a VNI
        change the old one would keep flooding the network's broadcasts on the old VNI."""
        for link in links.members(bridge.index):
            if link.name != uplink and link.name.startswith(c.VXLAN_DEVICE_PREFIX):
                LOG.info("Network %s: removing %s (no longer its uplink)", network_id, link.name)
                changes.append((network_id, DeleteLink(name=link.name)))

    def _bridge_mac(self, network: Network) -> str | None:
        """The fixed MAC of a VXLAN network's bridge (see :func:`.neighbours.bridge_mac`)."""
        if network.network_type is not NetworkType.VXLAN or not self.local_ip:
            return None
        return neighbours.bridge_mac(network.id, self.local_ip)

    def _plan_fixes(self, network: Network, links: Links, changes: list[tuple[str, Op]]) -> None:
        """Queue the changes that make the bridge and its uplink match ``network``."""
        bridge_name = names.network_bridge(network.id)
        bridge = links[bridge_name]
        mac = self._bridge_mac(network)
        self._fix_link(network.id, bridge, changes, mtu=network.mtu, mac=mac, up=True)
        if bridge.stp:
            LOG.warning(
                "Network %s: %s has STP on (not changed by netagent)", network.id, bridge_name
            )
        uplink_name = self._uplink_name(network)
        if uplink_name is None:
            return
        uplink = links[uplink_name]
        if uplink_name.startswith(_OWN_UPLINK_PREFIXES):
            self._fix_link(network.id, uplink, changes, mtu=network.mtu, up=True, master=bridge)
        else:
            self._enslave_physical(network, uplink, bridge, links, changes)

    def _plan_entries(
        self,
        plan: base.NetworkPlan,
        links: Links,
        fresh: bool,
        changes: list[tuple[str, Op]],
    ) -> tuple[dict[str, Any], drift.AppliedNetwork]:
        """Queue the ARP suppression and VXLAN forwarding entries the network needs.

        :param fresh: the uplink was created in this pass: it has no entries yet (and its
            bridge none either), so the kernel's tables are not read.
        :returns: the network's record for the status document, and what the drift check
            compares the kernel with once the entries are applied.
        """
        network = plan.network
        bridge_name = names.network_bridge(network.id)
        uplink_name = self._uplink_name(network)
        record: dict[str, Any] = {
            "bridge": bridge_name,
            "type": network.network_type.value,
            "mtu": network.mtu,
            "uplink": uplink_name,
        }
        applied = drift.AppliedNetwork(
            bridge=bridge_name,
            bridge_index=links[bridge_name].index,
            uplink=uplink_name,
            own_uplink=bool(uplink_name and uplink_name.startswith(_OWN_UPLINK_PREFIXES)),
        )
        if network.network_type is not NetworkType.VXLAN or uplink_name is None:
            return record, applied
        uplink = links[uplink_name]
        suppress = self.arp_responder
        want = neighbours.wanted(plan, self.local_ip) if suppress else neighbours.NOTHING
        ops = neighbours.changes(
            self.kernel, network.id, bridge_name, uplink, want, enabled=suppress, fresh=fresh
        )
        record.update(neighbours.summary(want))
        wanted = fdb.wanted_entries(plan, self.local_ip)
        change = fdb.diff(wanted, set() if fresh else self.kernel.fdb_entries(uplink_name))
        kept: tuple[FdbEntry, ...] = ()
        if network.id in self._fdb_pending:
            if wanted:
                self._fdb_pending.discard(network.id)
            elif change.delete:
                # A taken-over device keeps the old agent's l2population entries until the
                # server's own arrive: with l2pop they come in a cast after the agent's
                # first report, and the first pass runs before it (removing them first
                # cost 0.3 s of traffic against a real neutron-server 25.2.3).
                LOG.info(
                    "Network %s: %s keeping FDB %s until the server names its tunnel peers",
                    network.id,
                    uplink_name,
                    _show(change.delete),
                )
                kept, change = change.delete, dataclasses.replace(change, delete=())
        if change.add:
            LOG.info("Network %s: %s adding FDB %s", network.id, uplink_name, _show(change.add))
        if change.delete:
            LOG.info(
                "Network %s: %s removing FDB %s", network.id, uplink_name, _show(change.delete)
            )
        ops += fdb.operations(uplink_name, change)
        changes += [(network.id, op) for op in ops]
        record["flood_to"] = sorted({e.dst for e in wanted if e.mac == ZERO_MAC})
        record["static_fdb"] = len([e for e in wanted if e.mac != ZERO_MAC])
        applied = dataclasses.replace(
            applied, fdb=frozenset(wanted | set(kept)), suppress=want if suppress else None
        )
        return record, applied

    def _enslave_physical(
        self,
        network: Network,
        uplink: Link,
        bridge: Link,
        links: Links,
        changes: list[tuple[str, Op]],
    ) -> None:
        """Put the mapped interface in the bridge; touch nothing else on it."""
        if uplink.master == bridge.index:
            return
        if uplink.master is not None:
            other = links.name_of(uplink.master)
            raise LinuxBridgeError(
                network.id, f"physical interface {uplink.name} is already enslaved to {other}"
            )
        LOG.info("Network %s: enslaving %s to %s", network.id, uplink.name, bridge.name)
        changes.append((network.id, SetLink(name=uplink.name, master=bridge.name)))

    @staticmethod
    def _fix_link(
        resource_id: str,
        link: Link,
        queue: list[tuple[str, Op]],
        *,
        mtu: int | None = None,
        mac: str | None = None,
        up: bool | None = None,
        master: Link | None = None,
    ) -> None:
        """Queue one request with exactly the attributes of ``link`` that differ."""
        changes: dict[str, Any] = {}
        if master is not None and link.master != master.index:
            changes["master"] = master.name
        if mac is not None and (link.mac or "").lower() != mac:
            changes["mac"] = mac
        if mtu is not None and link.mtu != mtu:
            changes["mtu"] = mtu
        if up is not None and link.up != up:
            changes["up"] = up
        if not changes:
            return
        LOG.info(
            "%s: %s set %s",
            resource_id,
            link.name,
            ", ".join(f"{key}={value}" for key, value in changes.items()),
        )
        queue.append((resource_id, SetLink(name=link.name, **changes)))

    def _ensure_guard(self) -> bool:
        return self._guard.ensure(self.kernel)

    def check_integrity(self) -> int:
        return self._guard.check(self.kernel)

    def find_drift(self) -> base.Drift:
        """One link dump, and the forwarding entries of each VXLAN network, compared
        with what was applied (:mod:`.drift`)."""
        if not (self._applied_networks or self._applied_ports):
            return base.Drift()
        links = Links(self.kernel.links())
        found: list[str] = []
        networks: set[str] = set()
        for network_id, applied_network in sorted(self._applied_networks.items()):
            problem = drift.network_drift(applied_network, links, self.kernel)
            if problem is not None:
                networks.add(network_id)
                found.append(f"network {network_id}: {problem}")
        ports: set[str] = set()
        for port_id, applied_port in sorted(self._applied_ports.items()):
            problem = drift.port_drift(applied_port, links)
            if problem is not None:
                ports.add(port_id)
                found.append(f"port {port_id}: {problem}")
        where = self.netns or "(the agent's own)"
        for line in found:
            LOG.warning(
                "Linux bridge %s in namespace %s changed behind netagent's back; converging "
                "it again",
                line,
                where,
            )
        for network_id in networks:
            del self._applied_networks[network_id]
        for port_id in ports:
            del self._applied_ports[port_id]
        return base.Drift(frozenset(networks), frozenset(ports), tuple(found))

    # -- ports --------------------------------------------------------------------------

    def plug_ports(self, plans: Sequence[base.PortPlan]) -> base.Outcome:
        outcome = base.Outcome()
        links = self._links()
        changes: list[tuple[str, Op]] = []
        records: dict[str, dict[str, Any]] = {}
        applied: dict[str, drift.AppliedPort] = {}
        for plan in plans:
            port, network = plan.port, plan.network
            self._applied_ports.pop(port.id, None)
            try:
                if self._guard.error is not None:
                    raise LinuxBridgeError(port.id, f"host guard missing: {self._guard.error}")
                tap = links.get(port.device_name)
                if tap is None:
                    raise LinuxBridgeError(port.id, f"device {port.device_name} not found")
                bridge = links.get(names.network_bridge(network.id))
                if bridge is None or bridge.kind != "bridge":
                    raise LinuxBridgeError(port.id, f"network {network.id} has no bridge")
                if tap.master is not None and tap.master != bridge.index:
                    LOG.info(
                        "Port %s: moving %s from %s", port.id, tap.name, links.name_of(tap.master)
                    )
                self._fix_link(
                    port.id, tap, changes, mtu=network.mtu, master=bridge, up=port.admin_state_up
                )
                applied[port.id] = drift.AppliedPort(
                    tap.name, tap.index, bridge.name, port.admin_state_up
                )
                records[port.id] = {
                    "device": tap.name,
                    "bridge": bridge.name,
                    "network_id": network.id,
                    "admin_state_up": port.admin_state_up,
                }
            except (NetagentError, ValueError) as exc:
                self._fail(outcome, port.id, exc)
        failures = self._apply(changes, links)
        for port_id, record in records.items():
            if port_id in failures:
                self._fail(outcome, port_id, failures[port_id])
            else:
                self._ports[port_id] = record
                self._applied_ports[port_id] = applied[port_id]
                outcome.succeeded.add(port_id)
        return outcome

    def unplug_ports(self, plans: Sequence[base.PortPlan]) -> base.Outcome:
        outcome = base.Outcome()
        links = self._links()
        changes: list[tuple[str, Op]] = []
        for plan in plans:
            port = plan.port
            self._ports.pop(port.id, None)
            self._applied_ports.pop(port.id, None)
            tap = links.get(port.device_name)
            if tap is not None and tap.master is not None:
                master = links.name_of(tap.master)
                if master.startswith(c.NETWORK_BRIDGE_PREFIX):
                    LOG.info("Port %s: detaching %s from %s", port.id, tap.name, master)
                    changes.append((port.id, SetLink(name=tap.name, nomaster=True)))
        failures = self._apply(changes, links)
        for plan in plans:
            error = failures.get(plan.port.id)
            if error is None or isinstance(error, DeviceNotFound):
                outcome.succeeded.add(plan.port.id)
            else:
                self._fail(outcome, plan.port.id, error)
        return outcome

    # -- sweeping -----------------------------------------------------------------------

    def sweep(
        self,
        wanted: Sequence[base.NetworkPlan],
        dry_run: bool = False,
        wanted_devices: AbstractSet[str] | None = None,
    ) -> list[str]:
        if not dry_run:
            wanted_ids = {plan.network.id for plan in wanted}
            for network_id in set(self._applied_networks) - wanted_ids:
                del self._applied_networks[network_id]
        keep: set[str] = set()
        for plan in wanted:
            keep.add(names.network_bridge(plan.network.id))
            if plan.network.network_type is NetworkType.VXLAN:
                assert plan.network.segmentation_id is not None
                keep.add(names.vxlan_device(plan.network.segmentation_id))
            elif plan.network.network_type is NetworkType.VLAN:
                keep.add(names.vlan_device(plan.network.id))
        actions: list[str] = []
        links = self._links()
        if wanted_devices is not None:
            actions += sweep_mod.detach_stray_ports(self.kernel, links, wanted_devices, dry_run)
        actions += self._remove_owned(links, keep, dry_run)
        if actions and not dry_run:
            self._snapshot = None
        return actions

    def cleanup(self, dry_run: bool = False) -> list[str]:
        """Remove every netagent device; taps of bridges kept for a foreign member are
        detached and set down first, so none stays bridged once filters go.

        :raises NetagentError: a tap could not be detached from a kept bridge (the
            firewall's cleanup must then not run: that tap would forward unfiltered).
        """
        links = Links(self.kernel.links())
        removed = sweep_mod.remove_owned(
            self.kernel, links, set(), set(self.mappings.values()), dry_run
        )
        self._forget_deleted(removed.deleted)
        actions = removed.actions
        if removed.exposed:
            for line in actions:
                LOG.warning("cleanup: %s", line)
            raise NetagentError(
                f"taps {', '.join(removed.exposed)} could not be detached from their kept "
                "bridges; they would forward unfiltered without the firewall's chains"
            )
        kept = sorted(
            link.name
            for link in self.kernel.links().values()
            if link.kind == "bridge" and link.name.startswith(c.NETWORK_BRIDGE_PREFIX)
        )
        guard = DESCRIPTION
        if kept:
            actions.append(f"keep {guard}: bridges {', '.join(kept)} remain")
        else:
            if not dry_run:
                self.kernel.remove_host_guard()
            actions.append(f"remove {guard}")
        return actions

    def _remove_owned(self, links: Links, keep: set[str], dry_run: bool) -> list[str]:
        physical = set(self.mappings.values())
        removed = sweep_mod.remove_owned(self.kernel, links, keep, physical, dry_run)
        self._forget_deleted(removed.deleted)
        return removed.actions

    def _forget_deleted(self, deleted: set[str]) -> None:
        self._networks = {
            k: v for k, v in self._networks.items() if v.get("bridge") not in deleted
        }
        self._applied_networks = {
            k: v for k, v in self._applied_networks.items() if v.bridge not in deleted
        }

    # -- status -------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "driver": "linuxbridge",
            "local_ip": self.local_ip,
            "host_guard": "written" if self._guard.error is None else self._guard.error,
            "networks": dict(sorted(self._networks.items())),
            "ports": dict(sorted(self._ports.items())),
        }

    @staticmethod
    def _fail(outcome: base.Outcome, resource_id: str, exc: Exception) -> None:
        LOG.warning("%s: %s", resource_id, exc)
        outcome.failed[resource_id] = str(exc)
        outcome.succeeded.discard(resource_id)


def _gone_already(op: Op, error: KernelError) -> bool:
    """A deletion of what is not there: the wanted state already."""
    if isinstance(op, DeleteLink):
        return isinstance(error, DeviceNotFound)
    return isinstance(op, DeleteFdb | DeleteNeighbour) and isinstance(error, EntryNotFound)


def _vxlan_matches(link: Link, spec: VxlanSpec) -> bool:
    return (
        link.kind == "vxlan"
        and link.vni == spec.vni
        and link.vxlan_local == spec.local
        and link.vxlan_port == spec.port
        and link.vxlan_learning is False
    )


def _show(entries: Iterable[FdbEntry]) -> str:
    return ", ".join(f"{e.mac}->{e.dst}" for e in entries)
