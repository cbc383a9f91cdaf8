"""The Open vSwitch L2 driver: Neutron's br-int / br-tun / physical bridge layout.

Nova's os-vif plugs a VM port into the integration bridge with
``external_ids:iface-id`` = the Neutron port id; this driver finds the port by that id,
gives it its network's local VLAN tag (recorded in the port's ``other_config:net_uuid``,
Neutron's key) and admits its frames in br-int's table 0. It never creates or deletes a VM
port: unplugging moves the port to the dead VLAN 4095 and drops its flow. With the hybrid
plug (``ovs_hybrid_plug`` in vif_details, for the iptables firewall) the port on br-int
is os-vif's veth end ``qvo<port>`` (the tap sits in the Linux bridge ``qbr<port>``); it
carries the same ``iface-id`` and is wired the same way; qbr and qvb are never touched.

Writes per pass of the agent (:meth:`begin_pass` .. :meth:`end_pass`): one OVSDB
transaction for the ports it wires and the ones it isolates (unplugging, when the pass
has removals, is a second), and one OpenFlow bundle per bridge whose flows change, the
bridges' bundles sent at the same time; the flows of :meth:`ensure_networks` go out with
the port flows. Outside a pass, each call writes its own. (See :mod:`netagent.ovs.flows`
for the cookies that make a second run with nothing to change send nothing.) Bridges and
ports netagent creates carry ``external_ids:netagent=owned``; :meth:`cleanup` removes only
those and flows with netagent's cookie. The flow layout is in :mod:`.layout`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from netagent.common.exceptions import NetagentError
from netagent.drivers import base
from netagent.drivers.common import ResourceError
from netagent.drivers.hostguard import DESCRIPTION, EbtablesGuard, HostGuard
from netagent.drivers.openvswitch import layout, plumbing
from netagent.drivers.openvswitch.hostplug import OvsHostPlug
from netagent.drivers.openvswitch.plumbing import mgmt_target, parse_bridge_mappings
from netagent.model.network import Network, NetworkType
from netagent.ovs import ovsdb as db
from netagent.ovs.flows import Flow, FlowStats, FlowTable, StagedSync

LOG = logging.getLogger(__name__)

OWNED = {"netagent": "owned"}
NET_KEY = plumbing.NET_KEY
PATCH_TUN = "patch-tun"
PATCH_INT = "patch-int"
VXLAN_PORT = "na-vxlan"
MAX_LOCAL_VLAN = 4094


class OvsDriverError(ResourceError):
    """A network or port cannot be wired on Open vSwitch."""


@dataclasses.dataclass(frozen=True)
class PortRecord:
    port: str
    ofport: int
    network_id: str
    local_vlan: int
    admin_state_up: bool


class OpenvswitchDriver(base.L2Driver):
    """Open vSwitch L2 driver (entry point ``openvswitch`` in ``netagent.l2``).

    :param conf: oslo.config object; ``[ovs]`` is read, and ``[agent] firewall_driver``
        (the hybrid plug: :func:`.plumbing.hybrid_plug`).
    :param ovsdb: OVSDB access to use (default: from ``[ovs] ovsdb_connection``).
    """

    def __init__(self, conf: Any, ovsdb: db.Ovsdb | None = None) -> None:
        super().__init__(conf)
        group = conf.ovs
        self.int_br: str = group.integration_bridge
        self.tun_br: str = group.tunnel_bridge
        self.mappings = parse_bridge_mappings(group.bridge_mappings)
        self.datapath_type: str = group.datapath_type
        self.connection: str = group.ovsdb_connection
        self.local_ip: str | None = str(group.local_ip) if group.local_ip else None
        self.vxlan_port: int = group.vxlan_udp_port
        self._ovsdb = ovsdb or db.Ovsdb(self.connection, group.ovsdb_timeout)
        self._ovsdb.on_interface = self._interface_changed
        self._agent_callback: Callable[[str], None] | None = None
        #: iface-ids the OVSDB monitor reported since the last isolation (any thread adds)
        self._seen: set[str] = set()
        self._seen_lock = threading.Lock()
        self._tables: dict[str, FlowTable] = {}
        self._vlans: dict[str, int] = {}
        self._networks: dict[str, layout.NetworkFlows] = {}
        self._ports: dict[str, PortRecord] = {}
        self._snap: db.OvsdbState | None = None
        #: tag and key operations committed since the snapshot was taken
        self._snap_changes: list[db.Op] = []
        #: the snapshot is shared with the host plug, which the L3 driver's router
        #: workers call at the same time
        self._snap_lock = threading.Lock()
        self._in_pass = False
        #: flows of ensure_networks not written yet (or a failed bundle to write again)
        self._flows_pending = False
        self._initialized = False
        self.ovsdb_transactions = 0
        self.flow_changes = 0
        #: with the hybrid plug VM taps sit in Linux bridges: they get Linux bridge's guard
        self._guard = (
            HostGuard(plumbing.HYBRID_GUARDED_PORTS) if plumbing.hybrid_plug(conf) else None
        )
        self._guard_kernel: EbtablesGuard | None = None

    # -- setup --------------------------------------------------------------------------

    def _owned_if_new(self, bridge: str, state: db.OvsdbState) -> dict[str, str]:
        """Mark a bridge netagent's only when netagent creates it (os-vif may have made
        br-int, an operator br-ex: cleanup must leave those)."""
        return {} if bridge in state.bridges else dict(OWNED)

    def _patch(self, bridge: str, name: str, peer: str) -> db.EnsurePort:
        return db.EnsurePort(bridge, name, "patch", {"peer": peer}, dict(OWNED))

    def initialize(self) -> None:
        """Create or adopt the bridges, patch ports and the VXLAN port, learn the local
        VLANs earlier runs gave (from the ports' ``other_config``), and adopt or write the
        bridges' base flows.

        :raises OvsdbError, OpenFlowError: OVS is not usable (the agent retries).
        """
        state = self._ovsdb.snapshot()
        ops: list[db.Op] = [
            db.EnsureBridge(
                self.int_br,
                self.datapath_type,
                external_ids=self._owned_if_new(self.int_br, state),
            )
        ]
        if self.local_ip:
            ops += [
                db.EnsureBridge(self.tun_br, self.datapath_type, external_ids=dict(OWNED)),
                self._patch(self.int_br, PATCH_TUN, PATCH_INT),
                self._patch(self.tun_br, PATCH_INT, PATCH_TUN),
                db.EnsurePort(self.tun_br, VXLAN_PORT, "vxlan", self._vxlan_options(), OWNED),
            ]
        for bridge in self.mappings.values():
            ops += [
                db.EnsureBridge(
                    bridge, self.datapath_type, external_ids=self._owned_if_new(bridge, state)
                ),
                self._patch(self.int_br, plumbing.int_patch(bridge), plumbing.phy_patch(bridge)),
                self._patch(bridge, plumbing.phy_patch(bridge), plumbing.int_patch(bridge)),
            ]
        if self._needs(ops, state):
            self._commit(ops)
            state = self._ovsdb.snapshot()
        self._snap, self._snap_changes = state, []
        self._tables = {
            bridge: FlowTable(bridge, mgmt_target(self.connection, bridge))
            for bridge in self._bridges()
        }
        for iface in state.interfaces.values():
            network_id = iface.port_other_config.get(NET_KEY)
            if (
                iface.bridge == self.int_br
                and network_id
                and iface.tag not in (None, db.DEAD_VLAN)
            ):
                assert iface.tag is not None
                self._vlans.setdefault(network_id, iface.tag)
        self._isolate(state, None)
        self._sync_flows(sweep=False)
        self._initialized = True

    def _vxlan_options(self) -> dict[str, str]:
        options = {"remote_ip": "flow", "key": "flow", "local_ip": self.local_ip or ""}
        if self.vxlan_port != 4789:
            options["dst_port"] = str(self.vxlan_port)
        return options

    def _bridges(self) -> list[str]:
        found = [self.int_br]
        if self.local_ip:
            found.append(self.tun_br)
        return found + sorted(self.mappings.values())

    def _needs(self, ops: Sequence[db.Op], state: db.OvsdbState) -> bool:
        """Whether any setup operation would change something (a restart writes nothing)."""
        for op in ops:
            if isinstance(op, db.EnsureBridge):
                ids = state.bridges.get(op.name)
                if ids is None or any(ids.get(k) != v for k, v in op.external_ids.items()):
                    return True
                if state.fail_modes.get(op.name) != op.fail_mode:
                    # OVS flushes the flows of a bridge whose fail mode changes: only a
                    # bridge that is not secure yet (new, or os-vif's) sees this
                    return True
            elif isinstance(op, db.EnsurePort):
                iface = state.interfaces.get(op.name)
                if (
                    iface is None
                    or iface.bridge != op.bridge
                    or iface.type != op.type
                    or any(iface.options.get(k) != v for k, v in op.options.items())
                    or any(iface.port_external_ids.get(k) != v for k, v in op.external_ids.items())
                ):
                    return True
        return False

    def watch_ports(self, callback: Callable[[str], None]) -> None:
        """Report ports whose OVSDB Interface row appears, vanishes or changes its
        ``iface-id`` or ofport (os-vif may set ``iface-id`` after the tap exists)."""
        self._agent_callback = callback

    def _interface_changed(self, iface_id: str) -> None:
        """From ovsdbapp's connection thread: remember, then tell the agent."""
        with self._seen_lock:
            self._seen.add(iface_id)
        callback = self._agent_callback
        if callback is not None:
            callback(iface_id)

    def _isolate(self, state: db.OvsdbState, iface_ids: AbstractSet[str] | None) -> None:
        """Put untagged VM ports that netagent has not wired into the dead VLAN now."""
        self._commit(self._isolation(state, iface_ids))

    def _isolation(self, state: db.OvsdbState, iface_ids: AbstractSet[str] | None) -> list[db.Op]:
        """The operations putting untagged VM ports netagent has not wired into the dead
        VLAN.

        OVS makes a port without a tag a trunk of *every* VLAN: a port os-vif just added
        (or one no desired state wants) would receive the flooded frames of all networks
        on br-int. Its own frames are dropped by table 0 already.

        :param iface_ids: only these (``None``: every port on the integration bridge).
        """
        wired = {record.port for record in self._ports.values()}
        ops: list[db.Op] = []
        for iface_id, iface in state.by_iface_id(self.int_br).items():
            if iface_ids is not None and iface_id not in iface_ids:
                continue
            if iface.tag is None and iface.port not in wired:
                LOG.info("Port %s: %s isolated (dead VLAN) until wired", iface_id, iface.port)
                ops.append(db.SetPortTag(iface.port, db.DEAD_VLAN))
        return ops

    def _take_seen(self) -> set[str]:
        with self._seen_lock:
            seen, self._seen = self._seen, set()
        return seen

    def _put_back_seen(self, seen: AbstractSet[str]) -> None:
        with self._seen_lock:
            self._seen |= seen

    # -- passes -------------------------------------------------------------------------

    def begin_pass(self) -> None:
        self._in_pass = True
        self._snap = None

    def end_pass(self) -> None:
        """Isolate the ports the Interface monitor reported that this pass did not wire
        (:meth:`plug_ports` isolates them in its own transaction when it runs; the agent
        runs a pass after every report), and write the flows :meth:`ensure_networks`
        left for the pass's bundles if no :meth:`plug_ports` took them.

        :raises NetagentError: either failed (both are tried again: the reports are kept,
            and :meth:`check_integrity` writes pending flows).
        """
        try:
            error: NetagentError | None = None
            seen = self._take_seen()
            if seen and self._initialized:
                try:
                    self._isolate(self._state(), seen)
                except NetagentError as exc:
                    self._put_back_seen(seen)
                    error = exc
            if self._flows_pending:
                self._sync_flows(sweep=False)
            if error is not None:
                raise error
        finally:
            self._in_pass = False
            self._snap = None

    def _state(self) -> db.OvsdbState:
        with self._snap_lock:
            if self._snap is None or not self._in_pass:
                self._snap, self._snap_changes = self._ovsdb.snapshot(), []
            elif self._snap_changes:
                self._snap = plumbing.with_port_changes(self._snap, self._snap_changes)
                self._snap_changes = []
            return self._snap

    def _commit(self, ops: Sequence[db.Op]) -> None:
        if not ops:
            return
        self._ovsdb.apply(ops)
        with self._snap_lock:
            self.ovsdb_transactions += 1
            if self._snap is not None and all(
                isinstance(op, db.SetPortTag | db.RemovePortKeys) for op in ops
            ):
                # tags and keys change no ofport: the pass's snapshot is kept, updated
                # when it is read next (most passes do not read it again)
                self._snap_changes += ops
            else:
                self._snap = None

    def host_plug(self, netns: str | None = None) -> base.HostPlug:
        """Router ports go on the integration bridge through this driver's OVSDB
        connection and pass snapshot (:mod:`.hostplug`)."""
        return OvsHostPlug(self.int_br, self._state, self._commit, netns)

    # -- networks -----------------------------------------------------------------------

    def ensure_networks(self, plans: Sequence[base.NetworkPlan]) -> base.Outcome:
        outcome = base.Outcome()
        for plan in plans:
            try:
                self._networks[plan.network.id] = self._network_flows(plan)
                outcome.succeeded.add(plan.network.id)
            except (NetagentError, ValueError) as exc:
                self._fail(outcome, plan.network.id, exc)
        if self._in_pass and outcome.succeeded:
            # written with the pass's port flows (plug_ports) or at end_pass: the
            # bridges' bundles then go out together
            self._flows_pending = True
        else:
            self._flows_or_fail(outcome, outcome.succeeded)
        return outcome

    def _network_flows(self, plan: base.NetworkPlan) -> layout.NetworkFlows:
        network = plan.network
        kind = network.network_type
        physical = None
        if kind is NetworkType.VXLAN and not self.local_ip:
            raise OvsDriverError(network.id, "VXLAN network but [ovs] local_ip unset")
        if kind in (NetworkType.FLAT, NetworkType.VLAN):
            bridge = self.mappings.get(network.physical_network or "")
            if bridge is None:
                raise OvsDriverError(
                    network.id,
                    f"physical network {network.physical_network!r} is not in "
                    "[ovs] bridge_mappings",
                )
            state = self._state()
            int_side, phy_side = (
                state.ofport(plumbing.int_patch(bridge)),
                state.ofport(plumbing.phy_patch(bridge)),
            )
            if int_side is None or phy_side is None:
                raise OvsDriverError(network.id, f"patch ports of {bridge} have no ofport")
            physical = (bridge, int_side, phy_side)
        return layout.NetworkFlows(
            local_vlan=self._local_vlan(network),
            kind=kind.value,
            segmentation_id=network.segmentation_id,
            physical=physical,
            peers=layout.peers_of(plan.tunnel_peers, self.local_ip),
        )

    def _local_vlan(self, network: Network) -> int:
        vlan = self._vlans.get(network.id)
        if vlan is None:
            used = set(self._vlans.values())
            vlan = next((v for v in range(1, MAX_LOCAL_VLAN + 1) if v not in used), None)
            if vlan is None:
                raise OvsDriverError(network.id, "no free local VLAN on the integration bridge")
            self._vlans[network.id] = vlan
            LOG.info("Network %s: local VLAN %d", network.id, vlan)
        return vlan

    # -- ports --------------------------------------------------------------------------

    def _guarded(self) -> bool:
        """The host guard is in place, or not needed (no hybrid plug)."""
        if self._guard is None:
            return True
        if self._guard_kernel is None:
            self._guard_kernel = EbtablesGuard()
        return self._guard.ensure(self._guard_kernel)

    def plug_ports(self, plans: Sequence[base.PortPlan]) -> base.Outcome:
        outcome = base.Outcome()
        if not self._guarded():
            assert self._guard is not None
            for plan in plans:
                outcome.failed[plan.port.id] = f"host guard missing: {self._guard.error}"
            return outcome
        found = self._state().by_iface_id(self.int_br)
        ops: list[db.Op] = []
        records: dict[str, PortRecord] = {}
        for plan in plans:
            port, network = plan.port, plan.network
            try:
                iface = found.get(port.id)
                if iface is None:
                    raise OvsDriverError(
                        port.id, f"no interface with iface-id {port.id} on {self.int_br}"
                    )
                if iface.ofport is None:
                    raise OvsDriverError(port.id, f"{iface.name} has no ofport (yet)")
                vlan = self._vlans.get(network.id)
                if vlan is None:
                    raise OvsDriverError(port.id, f"network {network.id} has no local VLAN")
                tag = vlan if port.admin_state_up else db.DEAD_VLAN
                if iface.tag != tag or iface.port_other_config.get(NET_KEY) != network.id:
                    LOG.info(
                        "Port %s: %s tag %d (network %s)", port.id, iface.port, tag, network.id
                    )
                    ops.append(db.SetPortTag(iface.port, tag, {NET_KEY: network.id}))
                records[port.id] = PortRecord(
                    iface.port, iface.ofport, network.id, vlan, port.admin_state_up
                )
            except (NetagentError, ValueError) as exc:
                self._fail(outcome, port.id, exc)
        # ports the monitor reported that this call does not wire: isolated in the same
        # transaction (os-vif adding many ports makes one write, not two)
        seen = self._take_seen() if self._initialized else set()
        wiring = {record.port for record in records.values()}
        ops += [
            op
            for op in self._isolation(self._state(), seen - set(records))
            if op.name not in wiring
        ]
        # the flows are staged while the transaction runs, applied once it is
        staging = self._stage_in_background({**self._ports, **records}) if ops else None
        try:
            self._commit(ops)
        except NetagentError as exc:
            self._put_back_seen(seen)
            if staging is not None:
                self._discard(staging)
            for port_id in records:
                self._fail(outcome, port_id, exc)
            return outcome
        self._ports.update(records)
        outcome.succeeded |= set(records)
        if staging is None:
            self._flows_or_fail(outcome, set(records))
        else:
            try:
                self._commit_flows(self._collect_staged(staging))
            except (NetagentError, ValueError) as exc:
                for port_id in records:
                    self._fail(outcome, port_id, exc)
        return outcome

    def unplug_ports(self, plans: Sequence[base.PortPlan]) -> base.Outcome:
        outcome = base.Outcome()
        found = self._state().by_iface_id(self.int_br)
        ops: list[db.Op] = []
        for plan in plans:
            self._ports.pop(plan.port.id, None)
            iface = found.get(plan.port.id)
            if iface is not None and NET_KEY in iface.port_other_config:
                LOG.info("Port %s: %s to the dead VLAN", plan.port.id, iface.port)
                ops += plumbing.detach(iface)
            outcome.succeeded.add(plan.port.id)
        try:
            self._commit(ops)
        except NetagentError as exc:
            for plan in plans:
                self._fail(outcome, plan.port.id, exc)
            return outcome
        self._flows_or_fail(outcome, set(outcome.succeeded))
        return outcome

    # -- flows --------------------------------------------------------------------------

    def _wanted_flows(
        self, ports: Mapping[str, PortRecord] | None = None
    ) -> dict[str, list[Flow]]:
        """Every bridge's flows, for the wired ``ports`` (default: the ports wired now)."""
        state = self._state()
        nets = list(self._networks.values())
        records = self._ports if ports is None else ports
        wired = [r.ofport for r in records.values() if r.admin_state_up]
        wanted: dict[str, list[Flow]] = {
            self.int_br: layout.integration_flows(
                wired, state.ofport(PATCH_TUN) if self.local_ip else None, nets
            )
        }
        if self.local_ip:
            patch_int, vxlan = state.ofport(PATCH_INT), state.ofport(VXLAN_PORT)
            if patch_int is None or vxlan is None:
                raise OvsDriverError(self.tun_br, f"{PATCH_INT}/{VXLAN_PORT} have no ofport")
            wanted[self.tun_br] = layout.tunnel_flows(patch_int, vxlan, nets)
        for bridge in self.mappings.values():
            phy_side = state.ofport(plumbing.phy_patch(bridge))
            if phy_side is None:
                raise OvsDriverError(bridge, f"{plumbing.phy_patch(bridge)} has no ofport")
            wanted[bridge] = layout.physical_flows(bridge, phy_side, nets)
        return wanted

    def _sync_flows(self, sweep: bool) -> int:
        """One bundle per bridge whose flows differ, the bridges' bundles at the same
        time (one OpenFlow connection each); :returns: flows added + removed.

        :raises OpenFlowError: a bridge's bundle failed (the others are applied).
        """
        return self._commit_flows(self._stage_flows(self._wanted_flows(), sweep))

    def _stage_flows(self, wanted: Mapping[str, list[Flow]], sweep: bool) -> list[StagedSync]:
        """Every bridge's bundle staged (:meth:`FlowTable.stage`), the bridges at once.

        :raises OpenFlowError: a bridge refused its bundle (none is staged then).
        """
        return self._collect_staged(self._start_staging(wanted, sweep))

    def _start_staging(
        self, wanted: Mapping[str, list[Flow]], sweep: bool
    ) -> list[Future[StagedSync]]:
        """Each bridge's bundle prepared here (:meth:`FlowTable.prepare`: the CPU work,
        done before the threads start so they never hold the interpreter lock for long),
        then sent in a thread of its own.

        :raises ValueError: two flows of a bridge share their match (nothing sent).
        :raises OpenFlowError: a bridge's installed flows could not be read (nothing sent).
        """
        self._flows_pending = True  # until committed
        prepared = [self._tables[bridge].prepare(flows, sweep) for bridge, flows in wanted.items()]
        pool = ThreadPoolExecutor(max_workers=len(prepared))
        try:
            return [pool.submit(sync.send) for sync in prepared]
        finally:
            pool.shutdown(wait=False)

    @staticmethod
    def _collect_staged(futures: Sequence[Future[StagedSync]]) -> list[StagedSync]:
        """The staged bundles; if one bridge failed, the others are discarded and its
        error raised."""
        staged: list[StagedSync] = []
        error: BaseException | None = None
        for future in futures:
            try:
                staged.append(future.result())
            except Exception as exc:  # every future is collected, so nothing stays open
                error = error or exc
        if error is not None:
            for sync in staged:
                sync.discard()
            raise error
        return staged

    def _commit_flows(self, staged: Sequence[StagedSync]) -> int:
        """Apply staged bundles; :returns: flows added + removed.

        :raises OpenFlowError: a bridge's commit failed (the others are applied).
        """
        error: BaseException | None = None
        changed = 0
        for sync in staged:
            try:
                result = sync.commit()
                changed += result.added + result.deleted
            except Exception as exc:
                error = error or exc
        self.flow_changes += changed
        if error is not None:
            raise error
        self._flows_pending = False
        return changed

    def _stage_in_background(
        self, ports: Mapping[str, PortRecord]
    ) -> list[Future[StagedSync]] | None:
        """:meth:`_start_staging` for the wired ``ports`` (None: the flows cannot be
        computed now; the caller's plain sync reports why)."""
        try:
            return self._start_staging(self._wanted_flows(ports), sweep=False)
        except (NetagentError, ValueError):
            return None

    @classmethod
    def _discard(cls, staging: Sequence[Future[StagedSync]]) -> None:
        try:
            staged = cls._collect_staged(staging)
        except Exception:  # a bridge failed: the others are discarded already
            return
        for sync in staged:
            sync.discard()

    def _flows_or_fail(self, outcome: base.Outcome, ids: AbstractSet[str]) -> None:
        if not ids:
            return
        try:
            self._sync_flows(sweep=False)
        except (NetagentError, ValueError) as exc:
            for resource_id in set(ids):
                self._fail(outcome, resource_id, exc)

    def check_integrity(self) -> int:
        """Reprogram every bridge whose canary flow vanished (ovs-vswitchd restarted, or
        someone deleted the flows).

        :returns: flows rewritten.
        """
        if not self._initialized:
            return 0
        if self._guard is not None and self._guard_kernel is not None:
            self._guard.check(self._guard_kernel)
        if self._flows_pending and not self._in_pass:
            LOG.info("Writing flows a failed bundle left out")
            return self._sync_flows(sweep=False)
        missing = FlowTable.missing(list(self._tables.values()), layout.CANARY)
        gone = [b for b, table in self._tables.items() if table in missing]
        if not gone:
            return 0
        LOG.warning(
            "Flows of %s are gone (ovs-vswitchd restarted?); reprogramming", ", ".join(gone)
        )
        for bridge in gone:
            self._tables[bridge].forget()
        self._snap = None
        return self._sync_flows(sweep=False)

    # -- sweeping -----------------------------------------------------------------------

    def sweep(
        self,
        wanted: Sequence[base.NetworkPlan],
        dry_run: bool = False,
        wanted_devices: AbstractSet[str] | None = None,
    ) -> list[str]:
        keep = {plan.network.id for plan in wanted}
        actions: list[str] = []
        for network_id in sorted(set(self._networks) - keep):
            actions.append(
                f"forget network {network_id} (local VLAN {self._vlans.get(network_id)})"
            )
            if not dry_run:
                self._networks.pop(network_id, None)
                self._vlans.pop(network_id, None)
        ops: list[db.Op] = []
        if wanted_devices is not None:
            for iface_id, iface in self._state().by_iface_id(self.int_br).items():
                owner = iface.port_other_config.get(NET_KEY)
                device = plumbing.vm_device(iface.name)
                if owner is None or device in wanted_devices or iface_id in self._ports:
                    continue
                actions.append(f"detach {iface.port} (network {owner}) to the dead VLAN")
                ops += plumbing.detach(iface)
        if not dry_run:
            self._commit(ops)
        for bridge, wanted_flows in self._wanted_flows().items():
            table = self._tables[bridge]
            if dry_run:
                stale = len(table.installed() - {flow.cookie for flow in wanted_flows})
                if stale:
                    actions.append(f"remove {stale} stale flows from {bridge}")
                continue
            result = table.sync(wanted_flows, sweep=True)
            self.flow_changes += result.added + result.deleted
            if result.deleted:
                actions.append(f"removed {result.deleted} stale flows from {bridge}")
        return actions

    def cleanup(self, dry_run: bool = False) -> list[str]:
        """Remove netagent's flows (by cookie), then the ports it created and the bridges
        it created (``external_ids:netagent=owned``); VM ports go to the dead VLAN. A
        bridge netagent created that holds a port of someone else's (os-vif's VM ports
        on a br-int netagent made) is kept: deleting it would delete those ports."""
        state = self._ovsdb.snapshot()
        actions: list[str] = []
        for bridge in state.bridges:
            if bridge in self._bridges():
                table = self._tables.get(bridge) or FlowTable(
                    bridge, mgmt_target(self.connection, bridge)
                )
                count = table.remove_all(dry_run)
                actions.append(f"remove {count} netagent flows from {bridge}")
        ops: list[db.Op] = []
        foreign: dict[str, set[str]] = {}
        for iface in state.interfaces.values():
            if iface.bridge is None:
                continue
            owned = iface.port_external_ids.get("netagent") == "owned"
            if not owned and iface.port != iface.bridge:  # not the bridge's own port
                foreign.setdefault(iface.bridge, set()).add(iface.port)
            if iface.bridge not in self._bridges() and not owned:
                continue
            if owned:
                actions.append(f"delete port {iface.port} of {iface.bridge}")
                ops.append(db.DeletePort(iface.bridge, iface.port))
            elif NET_KEY in iface.port_other_config:
                actions.append(f"detach {iface.port} to the dead VLAN")
                ops += plumbing.detach(iface)
        for bridge, ids in sorted(state.bridges.items()):
            if ids.get("netagent") != "owned":
                continue
            if foreign.get(bridge):
                others = ", ".join(sorted(foreign[bridge]))
                actions.append(f"keep bridge {bridge}: it holds ports of others ({others})")
                continue
            actions.append(f"delete bridge {bridge}")
            ops.append(db.DeleteBridge(bridge))
        if not dry_run:
            self._ovsdb.apply(ops)
        if self._guard is not None:
            actions.append(f"remove {DESCRIPTION}")
            if not dry_run:
                EbtablesGuard().remove_host_guard()
        return actions

    # -- status -------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "driver": "openvswitch",
            "integration_bridge": self.int_br,
            "tunnel_bridge": self.tun_br,
            "local_ip": self.local_ip,
            "datapath_type": self.datapath_type,
            "networks": {
                nid: dataclasses.asdict(net) for nid, net in sorted(self._networks.items())
            },
            "ports": self._describe_ports(),
            "flow_targets": {bridge: table.target for bridge, table in self._tables.items()},
            "ovsdb_transactions": self.ovsdb_transactions,
            "flow_changes": self.flow_changes,
            "host_guard": None if self._guard is None else (self._guard.error or "written"),
        }

    def _describe_ports(self) -> dict[str, dict[str, Any]]:
        """Each wired port with its flows as ovs-vswitchd has them now (one flow-stats
        read of br-int's table 0: ``installed`` and the counters are the switch's, not
        netagent's record)."""
        live: dict[int, FlowStats] | None = None
        error = None
        table = self._tables.get(self.int_br)
        if table is not None and self._ports:
            try:
                live = table.stats(0)
            except (NetagentError, ValueError) as exc:
                error = str(exc)
        ports: dict[str, dict[str, Any]] = {}
        for pid, record in sorted(self._ports.items()):
            entry: dict[str, Any] = dataclasses.asdict(record)
            entry["bridge"] = self.int_br
            flows = layout.port_flows(record.ofport) if record.admin_state_up else []
            entry["flows"] = [_flow_status(self.int_br, flow, live) for flow in flows]
            if error is not None:
                entry["flows_error"] = error
            ports[pid] = entry
        return ports

    @staticmethod
    def _fail(outcome: base.Outcome, resource_id: str, exc: Exception) -> None:
        LOG.warning("%s: %s", resource_id, exc)
        outcome.failed[resource_id] = str(exc)
        outcome.succeeded.discard(resource_id)


def _flow_status(bridge: str, flow: Flow, live: dict[int, FlowStats] | None) -> dict[str, Any]:
    """A flow for the status: what netagent writes, and whether and how it is used."""
    stats = live.get(flow.cookie) if live is not None else None
    return {
        "bridge": bridge,
        "flow": str(flow),
        "cookie": f"0x{flow.cookie:x}",
        "installed": None if live is None else stats is not None,
        "packets": stats.packets if stats is not None else None,
        "bytes": stats.bytes if stats is not None else None,
    }
