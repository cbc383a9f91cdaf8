"""The iptables firewall driver (entry point ``iptables`` in ``netagent.firewall``).

Security groups in iptables ``filter`` (both families), remote groups in ipsets,
anti-spoofing in ebtables ``nat`` -- see :mod:`.compiler`, :mod:`.nd`, :mod:`.antispoof` and
doc/firewall.md for the layout and the reasons.

How a pass works. The driver keeps, in memory, one record per filtered port (what its
filter is built from) and what it last declared for shared objects: group chains, profile
chains, ipset members. :meth:`IptablesFirewallDriver.apply_ports` updates the records of
the given ports (a port whose record is unchanged costs nothing), re-derives the shared
objects in use from the desired state, declares only what changed to the managers, and
applies: ipsets first (rules need their sets), then ebtables and iptables, each in one
restore per table. Failures are mapped back to ports: a port whose group or chain could
not be built or was refused by the kernel is left out of its bucket (so it forwards
nothing) and the rest is applied again in a second pass; only that port is reported
failed. Conntrack entries of connections that removed rules or members had allowed are
deleted last.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from netagent.common import constants as c
from netagent.common.exceptions import NetagentError
from netagent.drivers import base
from netagent.drivers.iptables_firewall import antispoof, nd
from netagent.drivers.iptables_firewall import compiler as comp
from netagent.drivers.iptables_firewall import zones as ctzones
from netagent.linux import conntrack
from netagent.linux import ipset as ipset_mod
from netagent.linux.ebtables import EbRule, EbtablesManager, EbtablesResult
from netagent.linux.ipset import IpsetManager, IpsetResult
from netagent.linux.iptables import IptablesManager, Rule
from netagent.linux.iptables import backend as iptables_backend
from netagent.linux.iptables.manager import ApplyResult
from netagent.model.port import Port
from netagent.model.secgroup import Direction, EtherType, SecurityGroup

if TYPE_CHECKING:
    from netagent.model import DesiredState

LOG = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
FAMILIES = (4, 6)
DIRECTIONS = (Direction.EGRESS, Direction.INGRESS)
#: Bucket kinds of the iptables layout: egress, ingress, neighbour discovery.
_KINDS = ("e", "n", "d")


class FirewallError(NetagentError):
    """The driver cannot work at all (e.g. br_netfilter missing)."""


_T = TypeVar("_T")


class _Background(Generic[_T]):
    """One call run in a thread; :meth:`result` waits for it and re-raises its error."""

    def __init__(self, call: Callable[[], _T], name: str) -> None:
        self._call = call
        self._box: list[_T] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._box.append(self._call())
        except BaseException as exc:  # re-raised by result(), in the caller's thread
            self._error = exc

    def result(self) -> _T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._box[0]


@dataclasses.dataclass(frozen=True)
class PortRecord:
    """What one port's filter is built from (compared to skip unchanged ports)."""

    port: Port
    device: str
    digit: str
    secured: bool
    groups: tuple[str, ...] = ()
    stateful: bool = True
    profiles: tuple[str, str] | None = None
    spoof_rules: tuple[EbRule, ...] = ()
    #: IPv6 (MAC, prefix) pairs and MACs for the neighbour discovery checks (:mod:`.nd`)
    nd_pairs: tuple[tuple[str, ipaddress.IPv6Network], ...] | None = None
    nd_macs: tuple[str, ...] = ()
    #: The port's rules in its iptables buckets (egress, ingress, neighbour discovery) and
    #: its ebtables bucket, derived from the fields above: built once per record (on
    #: first use), not once per pass.
    ipt_rules: tuple[Rule, Rule, tuple[Rule, ...]] | None = dataclasses.field(
        default=None, compare=False, repr=False
    )
    eb_rules: tuple[EbRule, ...] | None = dataclasses.field(
        default=None, compare=False, repr=False
    )

    def ipt_entries(self) -> tuple[Rule, Rule, tuple[Rule, ...]]:
        """The port's rules in its ``na-e-``, ``na-n-`` and ``na-d-`` buckets."""
        if self.ipt_rules is None:
            profiles = self.profiles or (None, None)
            rules = (
                comp.bucket_entry("e", self.device, profiles[0]),
                comp.bucket_entry("n", self.device, profiles[1]),
                tuple(nd.port_rules(self.device, self.nd_pairs, self.nd_macs)),
            )
            object.__setattr__(self, "ipt_rules", rules)
            return rules
        return self.ipt_rules

    def eb_entries(self) -> tuple[EbRule, ...]:
        """The port's rules in its ebtables bucket ``na-b-``."""
        if self.eb_rules is None:
            macs = antispoof.macs(self.port)
            rules = tuple(antispoof.bucket_entries(self.device, self.spoof_chain, macs))
            object.__setattr__(self, "eb_rules", rules)
            return rules
        return self.eb_rules

    @property
    def spoof_chain(self) -> str | None:
        """``na-s-X`` when port security is on."""
        return antispoof.port_chain(self.port) if self.secured else None


def build_record(port: Port, state: DesiredState, old: PortRecord | None = None) -> PortRecord:
    """The record of ``port`` (``old`` is reused when nothing it depends on changed).

    :raises FirewallBuildError: the port cannot be filtered (e.g. a bad address pair)
    """
    try:
        return _build_record(port, state, old)
    except (ValueError, TypeError, AttributeError) as exc:
        raise comp.FirewallBuildError(port.id, str(exc)) from exc


def _build_record(port: Port, state: DesiredState, old: PortRecord | None) -> PortRecord:
    device = port.device_name
    digit = comp.bucket(device)
    if not port.port_security_enabled or port.device_owner in c.ROUTER_PORT_OWNERS:
        return PortRecord(port, device, digit, secured=False)
    groups = tuple(port.security_groups)
    known = [g for g in (state.security_groups.get(i) for i in groups) if g is not None]
    stateful = not known or any(g.stateful for g in known)
    if old is not None and old.port == port and old.stateful == stateful and old.secured:
        return old
    profiles = (
        comp.profile_chain(Direction.EGRESS, stateful, groups),
        comp.profile_chain(Direction.INGRESS, stateful, groups),
    )
    pairs = antispoof.address_pairs(port)
    return PortRecord(
        port,
        device,
        digit,
        secured=True,
        groups=groups,
        stateful=stateful,
        profiles=profiles,
        spoof_rules=tuple(antispoof.port_rules(port, pairs)),
        nd_pairs=tuple(antispoof.own_v6_pairs(port, pairs)),
        nd_macs=tuple(antispoof.macs(port)),
    )


class IptablesFirewallDriver(base.FirewallDriver):
    """Security groups with shared per-group chains, ipsets and ebtables anti-spoofing.

    :param conf: oslo.config object; ``[iptables]`` is read.
    :param netns: network namespace of the bridges; ``None`` (the agent's case) is the
        namespace the process runs in. Functional tests pass a test namespace.
    """

    def __init__(self, conf: Any, netns: str | None = None) -> None:
        super().__init__(conf)
        group = conf.iptables
        self.backend: str = group.backend
        self.verify_interval: float | None = getattr(group, "verify_interval", 60.0)
        self.mark: int = getattr(group, "firewall_mark", 0x1000000)
        if self.mark & (self.mark - 1):
            raise ValueError(f"[iptables] firewall_mark must be one bit, got {self.mark:#x}")
        self.netns = netns
        #: remove a stopped Neutron Linux bridge agent's filters as netagent's go in
        self.take_over: bool = bool(
            getattr(getattr(conf, "agent", None), "take_over_neutron_linuxbridge", False)
        )
        self._take_over_pending = self.take_over
        #: ports are hybrid-plugged (Open vSwitch): each tap on its own ``qbr`` bridge
        self.hybrid: bool = getattr(getattr(conf, "agent", None), "l2_driver", "") == "openvswitch"
        self._ipt: IptablesManager | None = None
        self._eb: EbtablesManager | None = None
        self._ipset: IpsetManager | None = None
        self._zones: ctzones.NetworkZones | None = None
        self._raw_ipt: IptablesManager | None = None
        self._state_path: str | None = getattr(conf, "state_path", None)
        self._lock = threading.RLock()
        self._ports: dict[str, PortRecord] = {}
        self._excluded: dict[str, str] = {}
        self._groups: dict[str, SecurityGroup] = {}
        self._bad_groups: dict[str, str] = {}
        self._group_chains: dict[str, str] = {}
        self._profiles: set[str] = set()
        self._sets: dict[tuple[str, int], frozenset[IPNetwork]] = {}
        self._set_names: dict[str, str] = {}
        self._dirty: set[str] = set(comp.HEX_DIGITS)
        self._static_done = False
        self._pending_ct: list[conntrack.ConntrackFilter] = []
        #: ebtables restore started ahead of the rest of a pass, and the bucket members
        #: (port ids per digit) it was declared with
        self._eb_job: _Background[EbtablesResult] | None = None
        self._set_job: _Background[IpsetResult] | None = None
        self._eb_declared: dict[str, list[str]] = {}
        self._state: DesiredState | None = None
        #: remote-group members per (group, family), for the state object they came from
        self._members: tuple[DesiredState | None, dict[tuple[str, int], frozenset[IPNetwork]]]
        self._members = (None, {})
        #: Restore inputs of the last pass, for benchmarks and diagnostics.
        self.last_inputs: list[str] = []

    # -- lifecycle ----------------------------------------------------------------------

    def initialize(self) -> None:
        """Make bridged IPv4/IPv6 traverse iptables (br_netfilter) and create managers.

        Nothing is written to iptables/ebtables here: filters a previous agent left keep
        working until the first :meth:`apply_ports` replaces them atomically.

        :raises FirewallError: br_netfilter is not loaded.
        """
        from netagent.linux import sysctl  # noqa: PLC0415 - kernel layer, first use only

        try:
            sysctl.set_bridge_nf_call(self.netns, iptables=True, ip6tables=True)
        except FileNotFoundError as exc:
            raise FirewallError("br_netfilter is not loaded (modprobe br_netfilter)") from exc
        self._managers()

    def _managers(self) -> tuple[IptablesManager, EbtablesManager, IpsetManager]:
        if self._ipt is None:
            # decided once per process, from the kernel and the record (never flips)
            self.backend = iptables_backend.resolve(self.backend, self.netns, self._state_path)
            self._ipt = IptablesManager(
                self.netns,
                backend=self.backend,
                verify_interval=self.verify_interval,
                take_over_neutron_lb=self.take_over,
            )
            if self.take_over:
                self._ipt.take_over_tables(
                    [(family, table) for family in FAMILIES for table in ("nat", "mangle")]
                )
            self._eb = EbtablesManager(self.netns, take_over_neutron_lb=self.take_over)
            self._ipset = IpsetManager(self.netns)
            raw = IptablesManager(
                self.netns, self.backend, self.verify_interval, take_over_neutron_lb=self.take_over
            )
            self._raw_ipt = raw
            self._zones = ctzones.NetworkZones(raw, self._state_path, hybrid=self.hybrid)
        assert self._eb is not None and self._ipset is not None
        return self._ipt, self._eb, self._ipset

    @property
    def _ctz(self) -> ctzones.NetworkZones:
        """Conntrack zones of the networks (raw table, own manager: applied first)."""
        self._managers()
        assert self._zones is not None
        return self._zones

    # -- interface ----------------------------------------------------------------------

    def apply_ports(self, plans: Sequence[base.PortPlan], state: DesiredState) -> base.Outcome:
        """Install or update the filters of ``plans``; shared chains follow ``state``.

        :returns: port ids filtered / failed (a failed port forwards nothing).
        """
        with self._lock:
            self._managers()
            self._state = state
            outcome = base.Outcome()
            changed: list[str] = []
            prefetch = self._prefetch()
            for plan in plans:
                port = plan.port
                old = self._ports.get(port.id)
                try:
                    record = build_record(port, state, old)
                except NetagentError as exc:
                    self._forget(port.id)
                    outcome.failed[port.id] = f"filter not built: {exc}"
                    LOG.error("Port %s filter not built: %s", port.id, exc)
                    continue
                if self._excluded.pop(port.id, None) is not None:
                    self._dirty.add(record.digit)
                if record != old:
                    if old is not None and old.digit != record.digit:
                        self._dirty.add(old.digit)
                    if old is not None and set(old.groups) - set(record.groups):
                        self._pending_ct += self._ctz.for_port(old.port)
                    self._set_port(record, old)
                    changed.append(port.id)
            self._sync_shared(state)
            if prefetch is not None:
                prefetch.result()
            self._start_eb()
            failed = self._apply()
            for plan in plans:
                pid = plan.port.id
                if pid in outcome.failed:
                    continue
                if pid in failed:
                    outcome.failed[pid] = failed[pid]
                else:
                    outcome.succeeded.add(pid)
            for pid in changed:
                if pid in outcome.succeeded:
                    record = self._ports[pid]
                    LOG.info(
                        "Port %s filter applied on %s (%s)",
                        pid,
                        record.device,
                        f"groups {', '.join(record.groups) or 'none'}"
                        if record.secured
                        else "port security off: unfiltered",
                    )
            return outcome

    def remove_ports(self, port_ids: Sequence[str]) -> base.Outcome:
        """Remove the filters of ports that left this host (their taps then drop)."""
        with self._lock:
            self._managers()
            removed = []
            for pid in port_ids:
                record = self._ports.get(pid)
                if record is not None:
                    self._pending_ct += self._ctz.for_port(record.port)
                    removed.append(pid)
                self._forget(pid)
            if self._state is not None:
                self._sync_shared(self._state)
            self._start_eb()
            failed = self._apply()
            outcome = base.Outcome()
            for pid in port_ids:
                if pid in failed:
                    outcome.failed[pid] = failed[pid]
                else:
                    outcome.succeeded.add(pid)
            for pid in removed:
                LOG.info("Port %s filter removed", pid)
            return outcome

    def check_integrity(self) -> int:
        """Check every netagent chain and ipset in the kernel against what was last
        applied (one ebtables-nft-save, one iptables-save per table in use, one ipset
        save) and rewrite the chains, hooks and sets found changed, through the normal
        apply (under the driver's lock, so never while a pass of this driver is writing).

        :returns: how many chains (hooks counted as their hook chain) and sets were changed
        """
        with self._lock:
            if not self._static_done:
                return 0  # nothing applied yet
            ipt, eb, ipset = self._managers()
            eb_bad = eb.check()
            ipt_bad = ipt.check()
            if self._raw_ipt is not None:
                ipt_bad |= self._raw_ipt.check()
            sets_bad = ipset.check()
            if not eb_bad and not ipt_bad and not sets_bad:
                return 0
            failed = self._apply()
            where = self.netns or "(the agent's own)"
            for name in sorted(sets_bad):
                LOG.warning(
                    "ipset %s in namespace %s changed behind netagent's back; rewritten",
                    name,
                    where,
                )
            for chain in eb_bad:
                LOG.warning(
                    "ebtables chain %s in namespace %s changed behind netagent's back; rewritten",
                    chain,
                    where,
                )
            for key in sorted(ipt_bad):
                LOG.warning(
                    "iptables IPv%d %s chain %s in namespace %s changed behind netagent's "
                    "back; rewritten",
                    key.family,
                    key.table,
                    key.chain,
                    where,
                )
            if failed:
                LOG.error("Integrity repair left %d ports out: %s", len(failed), failed)
            return len(eb_bad) + len(ipt_bad) + len(sets_bad)

    def sweep(self, wanted_port_ids: set[str], dry_run: bool = False) -> list[str]:
        """Drop filters of unwanted ports and every netagent chain/set nobody declared."""
        with self._lock:
            gone = sorted(set(self._ports) - set(wanted_port_ids))
            lines = [f"remove filter of port {pid}" for pid in gone]
            if dry_run:
                return lines
            if gone:
                self.remove_ports(gone)
            ipt, eb, ipset = self._managers()
            if self._static_done:
                for key in ipt.apply(sweep=True).applied:
                    lines.append(f"iptables IPv{key.family} {key.table} {key.chain}")
                lines += [f"ebtables {c}" for c in eb.apply(sweep=True).applied]
                lines += [f"ipset {s}" for s in sorted(ipset.destroy_unreferenced(True).applied)]
                lines += self._ctz.sweep(r.port for r in self._ports.values() if r.secured)
            return lines

    def cleanup(self, dry_run: bool = False) -> list[str]:
        """Remove every netagent chain (filter table, both families), ebtables chain and
        ipset in the namespace. A tap still on a netagent bridge would then forward
        unfiltered: ``netagent-cleanup`` runs the L2 driver's cleanup first (it detaches and
        sets down the taps of every bridge it keeps) and skips this one if that failed."""
        with self._lock:
            ipt, eb, ipset = self._managers()
            if dry_run:
                return ["remove netagent iptables/ebtables chains and ipsets (dry run)"]
            for family in FAMILIES:
                for chain in ipt.chains(family, "filter"):
                    if chain != "na-FORWARD":
                        ipt.remove_chain(family, "filter", chain)
                ipt.clear_jumps(family, "filter", "FORWARD")
            for chain in eb.chains():
                eb.remove_chain(chain)
            eb.set_hook([])
            eb.apply(sweep=True)
            lines = [f"ebtables {c}" for c in eb.apply(sweep=True).applied]
            res = ipt.apply(sweep=True)
            lines += [f"iptables IPv{k.family} {k.table} {k.chain}" for k in res.applied]
            lines += [f"ipset {s}" for s in sorted(ipset.destroy_unreferenced(True).applied)]
            lines += self._ctz.cleanup()
            self._ports.clear()
            self._static_done = False
            return lines

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "backend": self._ipt.backend if self._ipt is not None else self.backend,
                "mark": self.mark,
                "ports": len(self._ports),
                "unfiltered_ports": sorted(p for p, r in self._ports.items() if not r.secured),
                "groups": sorted(self._groups),
                "profiles": len(self._profiles),
                "ipsets": len(self._sets),
                "excluded": dict(self._excluded),
                "bad_groups": dict(self._bad_groups),
            }

    # -- records and declarations -------------------------------------------------------

    def _forget(self, pid: str) -> None:
        record = self._ports.pop(pid, None)
        self._excluded.pop(pid, None)
        if record is not None:
            self._dirty.add(record.digit)
            if record.secured:
                assert self._eb is not None
                self._eb.remove_chain(antispoof.port_chain(record.port))

    def _set_port(self, record: PortRecord, old: PortRecord | None) -> None:
        assert self._eb is not None
        self._ports[record.port.id] = record
        self._dirty.add(record.digit)
        if record.secured:
            if old is None or old.spoof_rules != record.spoof_rules or not old.secured:
                self._eb.set_chain(antispoof.port_chain(record.port), record.spoof_rules)
        elif old is not None and old.secured:
            self._eb.remove_chain(antispoof.port_chain(old.port))

    def _declare_static(self) -> None:
        ipt, eb, _ = self._managers()
        for family in FAMILIES:
            ipt.set_chain(family, "filter", comp.ACCEPT_CHAIN, comp.accept_rules(self.mark))
            for kind, chain in (
                ("e", comp.EGRESS_DISPATCH),
                ("n", comp.INGRESS_DISPATCH),
                ("d", comp.ND_DISPATCH),
            ):
                if kind == "d" and family == 4:
                    continue
                rules = nd.dispatch_chain_rules() if kind == "d" else comp.dispatch_rules(kind)
                ipt.set_chain(family, "filter", chain, rules)
            ipt.set_jumps(family, "filter", "FORWARD", comp.hook_rules(family))
        eb.set_chain(antispoof.OK_CHAIN, antispoof.ok_rules())
        eb.set_chain(antispoof.TAIL_CHAIN, antispoof.tail_rules())
        eb.set_hook(antispoof.hook_rules())
        self._static_done = True

    def _sync_shared(self, state: DesiredState) -> None:
        """Declare group chains, profile chains and ipsets for the ports now known."""
        ipt, _, ipset = self._managers()
        if not self._static_done:
            self._declare_static()
        used = sorted({g for r in self._ports.values() for g in r.groups})
        for gid in used:
            group = state.security_groups.get(gid) or SecurityGroup(id=gid)
            if self._groups.get(gid) == group and gid not in self._bad_groups:
                continue
            try:
                chains = comp.compile_group(group, self.mark)
            except NetagentError as exc:
                self._bad_groups[gid] = str(exc)
                LOG.error("Security group %s cannot be compiled: %s", gid, exc)
                continue
            self._bad_groups.pop(gid, None)
            for (family, direction), rules in chains.items():
                name = comp.group_chain(direction, gid)
                self._group_chains[name] = gid
                ipt.set_chain(family, "filter", name, rules)
            old = self._groups.get(gid)
            if old is not None:
                removed = set(old.rules) - set(group.rules)
                members = [r.port for r in self._ports.values() if gid in r.groups]
                self._pending_ct += self._ctz.for_removed_rules(removed, members)
                if old.stateful != group.stateful:
                    self._pending_ct += [f for p in members for f in self._ctz.for_port(p)]
            self._groups[gid] = group
        for gid in sorted(set(self._groups) - set(used)):
            del self._groups[gid]
            self._bad_groups.pop(gid, None)
            for family in FAMILIES:
                for direction in DIRECTIONS:
                    name = comp.group_chain(direction, gid)
                    self._group_chains.pop(name, None)
                    ipt.remove_chain(family, "filter", name)
        for gid in list(self._bad_groups):
            if gid not in used:
                self._bad_groups.pop(gid)
        self._sync_profiles(ipt)
        self._sync_sets(state, ipset)

    def _usable(self, record: PortRecord) -> bool:
        return not any(g in self._bad_groups for g in record.groups)

    def _sync_profiles(self, ipt: IptablesManager) -> None:
        wanted: dict[str, tuple[Direction, bool, tuple[str, ...]]] = {}
        for record in self._ports.values():
            if record.profiles is None or not self._usable(record):
                continue
            egress, ingress = record.profiles
            wanted[egress] = (Direction.EGRESS, record.stateful, record.groups)
            wanted[ingress] = (Direction.INGRESS, record.stateful, record.groups)
        for name in sorted(set(wanted) - self._profiles):
            direction, stateful, groups = wanted[name]
            for family in FAMILIES:
                rules = comp.profile_rules(direction, family, stateful, groups, self.mark)
                ipt.set_chain(family, "filter", name, rules)
        for name in sorted(self._profiles - set(wanted)):
            for family in FAMILIES:
                ipt.remove_chain(family, "filter", name)
        self._profiles = set(wanted)

    def _sync_sets(self, state: DesiredState, ipset: IpsetManager) -> None:
        from netagent.common import names  # noqa: PLC0415

        wanted: set[tuple[str, int]] = set()
        for gid, group in self._groups.items():
            if gid in self._bad_groups:
                continue
            for rule in group.rules:
                rid = rule.remote_group_id or rule.remote_address_group_id
                if rid is not None:
                    wanted.add((rid, rule.ethertype.version))
        for rid, family in sorted(wanted):
            members = self._remote_members(state, rid, family)
            old = self._sets.get((rid, family))
            if old == members:
                continue
            set_name = names.ipset_name(4 if family == 4 else 6, rid)
            self._set_names[set_name] = rid
            ipset.set_members(set_name, family, members)
            if old is not None and old - members:
                referencing = [r.port for r in self._ports.values() if self._references(r, rid)]
                self._pending_ct += self._ctz.for_removed_members(old - members, referencing)
            self._sets[(rid, family)] = members
        for rid, family in sorted(set(self._sets) - wanted):
            del self._sets[(rid, family)]
            set_name = names.ipset_name(4 if family == 4 else 6, rid)
            self._set_names.pop(set_name, None)
            ipset.remove_set(set_name)

    def _remote_members(self, state: DesiredState, rid: str, family: int) -> frozenset[IPNetwork]:
        """``state.remote_group_members``, computed once per (immutable) state object."""
        if self._members[0] is not state:
            self._members = (state, {})
        cache = self._members[1]
        if (rid, family) not in cache:
            ethertype = EtherType.IPV4 if family == 4 else EtherType.IPV6
            cache[(rid, family)] = state.remote_group_members(rid, ethertype)
        return cache[(rid, family)]

    def _references(self, record: PortRecord, rid: str) -> bool:
        return any(
            rid in (rule.remote_group_id, rule.remote_address_group_id)
            for gid in record.groups
            if gid in self._groups
            for rule in self._groups[gid].rules
        )

    def _bucket_members(self) -> dict[str, list[PortRecord]]:
        """Records of the dirty buckets that go in their bucket, sorted by device."""
        members: dict[str, list[PortRecord]] = {digit: [] for digit in self._dirty}
        for r in self._ports.values():
            if r.digit in members and r.port.id not in self._excluded and self._usable(r):
                members[r.digit].append(r)
        for records in members.values():
            records.sort(key=lambda r: (r.device, r.spoof_chain or ""))
        return members

    def _declare_eb_buckets(self, members: dict[str, list[PortRecord]]) -> None:
        _, eb, _ = self._managers()
        for digit, records in sorted(members.items()):
            rules = [rule for r in records for rule in r.eb_entries()]
            rules.append(antispoof.BUCKET_END)
            eb.set_chain(antispoof.eb_bucket_chain(digit), rules)

    def _declare_ipt_buckets(self, members: dict[str, list[PortRecord]]) -> None:
        ipt, _, _ = self._managers()
        for digit, records in sorted(members.items()):
            entries = [r.ipt_entries() for r in records]
            for kind, rules in (("e", [e[0] for e in entries]), ("n", [e[1] for e in entries])):
                rules.append(comp.BUCKET_END)
                for family in FAMILIES:
                    ipt.set_chain(family, "filter", comp.bucket_chain(kind, digit), rules)
            nd = [rule for e in entries for rule in e[2]]
            nd.append(comp.BUCKET_END)
            ipt.set_chain(6, "filter", comp.bucket_chain("d", digit), nd)

    # -- applying -----------------------------------------------------------------------

    def _apply(self) -> dict[str, str]:
        """Apply everything declared; exclude failing ports and apply again once.

        :returns: port id -> reason for every port that is not filtered as desired.
        """
        ipt, eb, ipset = self._managers()
        self.last_inputs = []
        for record in self._ports.values():
            if not self._usable(record) and record.port.id not in self._excluded:
                reasons = [self._bad_groups[g] for g in record.groups if g in self._bad_groups]
                self._exclude(record.port.id, "; ".join(reasons))
        if self._take_over_pending and self._raw_ipt is not None:
            self._ctz.adopt(self._raw_ipt.neutron_lb_zones())
        # Zone rules go in before any filter allows traffic (fail closed).
        missing = self._ctz.prepare(r.port for r in self._ports.values() if r.secured)
        for record in [r for r in self._ports.values() if self._ctz.bridge_of(r.port) in missing]:
            self._exclude(record.port.id, "conntrack zone rule not applied")
        failed: dict[str, str] = {}
        for attempt in range(2):
            set_result, eb_result, ipt_result = self._apply_all(ipt, eb, ipset)
            self.last_inputs += set_result.inputs + eb_result.inputs
            self.last_inputs += [text for _, _, text in ipt_result.inputs]
            # First pass: blame only the chains a port owns (its groups, profiles and
            # spoof chain); buckets and dispatch chains that failed with them failed
            # because their jump targets were missing and are retried without them.
            failed = self._failures(set_result, eb_result, ipt_result, direct=attempt == 0)
            if not failed and not (attempt == 0 and (eb_result.failed or ipt_result.failed)):
                break
            for pid, reason in failed.items():
                if pid in self._ports:
                    self._exclude(pid, reason)
            if attempt == 0:
                LOG.warning("Firewall pass left %d ports out, applying the rest", len(failed))
        ipset.destroy_unreferenced()
        if self._take_over_pending:
            self._finish_take_over(ipt)
        self._ctz.finish(r.port for r in self._ports.values() if r.secured)
        self._delete_conntrack()
        result = dict(self._excluded)
        result.update(failed)
        return result

    def _finish_take_over(self, ipt: IptablesManager) -> None:
        """Destroy the Neutron Linux bridge agent's ipsets once none of its chains is left
        (they were removed with netagent's filters in place; see doc/migration.md)."""
        assert self._eb is not None and self._raw_ipt is not None
        left = [
            *ipt.neutron_lb_chains(),
            *self._raw_ipt.neutron_lb_chains(),
            *(["ebtables"] if self._eb.neutron_lb_chains().chains else []),
        ]
        if left:
            return  # the next pass retries (errors were logged by the managers)
        destroyed, failed = ipset_mod.destroy_neutron_lb_sets(self.netns)
        if destroyed:
            LOG.info("Neutron Linux bridge agent ipsets destroyed: %s", ", ".join(destroyed))
        for name, why in sorted(failed.items()):
            LOG.warning("Neutron Linux bridge agent ipset %s not destroyed: %s", name, why)
        self._take_over_pending = bool(failed)

    def _prefetch(self) -> _Background[None] | None:
        """On a pass with nothing applied yet, read the kernel's netagent chains (the
        managers' first check) in the background while the port records are built."""
        if self._static_done:
            return None
        ipt, eb, _ = self._managers()

        raw = self._raw_ipt

        def fetch() -> None:
            try:
                _Background(eb.prefetch, "ebtables-save").result()
                ipt.prefetch([(family, "filter") for family in FAMILIES])
                if raw is not None:  # the zones' table, written first by the pass
                    raw.prefetch([(family, "raw") for family in FAMILIES])
            except (NetagentError, OSError, ValueError) as exc:
                LOG.debug("prefetch failed, the apply reads the kernel itself: %s", exc)

        return _Background(fetch, "firewall-prefetch")

    def _start_eb(self) -> None:
        """Declare the dirty ebtables buckets and start the ebtables restore now.

        ebtables depends on nothing else a pass writes (its own tool, table and chains:
        no ipsets, no iptables chains), and it is the longest restore of a large pass, so
        it runs while the iptables buckets are built and the ipsets and iptables are
        restored. :meth:`_apply_all` waits for it; buckets that change meanwhile (a port
        excluded) are declared and applied again there.
        """
        if self._eb_job is not None:
            return
        _, eb, ipset = self._managers()
        members = self._bucket_members()
        self._declare_eb_buckets(members)
        self._eb_declared = {d: [r.port.id for r in rs] for d, rs in members.items()}
        self._eb_job = _Background(eb.apply, "ebtables-apply")
        # The sets are declared too (_sync_shared): restore them while the iptables
        # buckets are built; iptables, which needs them, waits for this in _apply_all.
        if self._set_job is None:
            self._set_job = _Background(ipset.apply, "ipset-apply")

    def _apply_all(
        self, ipt: IptablesManager, eb: EbtablesManager, ipset: IpsetManager
    ) -> tuple[IpsetResult, EbtablesResult, ApplyResult]:
        """Declare the dirty buckets and apply all three managers.

        ebtables is independent of ipsets and iptables (separate tool and table), so its
        restore (started by :meth:`_start_eb`, else here) runs in a thread while the
        iptables buckets are declared, the ipsets restored (before iptables: rules need
        their sets) and the iptables tables restored. All are done before anything is
        reported, so the fail-closed ordering holds (ports are wired only after the pass).
        """
        members = self._bucket_members()
        early, self._eb_job = self._eb_job, None
        declared, self._eb_declared = self._eb_declared, {}
        changed = {
            d: rs for d, rs in members.items() if [r.port.id for r in rs] != declared.get(d)
        }
        if changed:
            self._declare_eb_buckets(changed)

        def run_eb() -> EbtablesResult:
            first = None
            if early is not None:
                try:
                    first = early.result()
                except Exception as exc:  # the apply below retries everything pending
                    LOG.warning("early ebtables apply failed, applying again: %s", exc)
            second = eb.apply()
            if first is None:
                return second
            # The second apply retried whatever the first could not write.
            return EbtablesResult(
                {**first.applied, **second.applied},
                dict(second.failed),
                first.inputs + second.inputs,
            )

        job = _Background(run_eb, "ebtables-apply")
        early_sets, self._set_job = self._set_job, None
        try:
            self._declare_ipt_buckets(members)
            self._dirty.clear()
            set_result = ipset.apply()  # what the early restore could not write
            if early_sets is not None:
                first = early_sets.result()
                set_result = IpsetResult(
                    first.applied | set_result.applied,
                    dict(set_result.failed),
                    first.inputs + set_result.inputs,
                )
            ipt_result = ipt.apply()
        except BaseException:
            try:
                job.result()
            except Exception:  # the first error is the one raised
                LOG.exception("ebtables apply failed too")
            raise
        return set_result, job.result(), ipt_result

    def _exclude(self, pid: str, reason: str) -> None:
        record = self._ports.get(pid)
        if record is not None and pid not in self._excluded:
            self._excluded[pid] = reason
            self._dirty.add(record.digit)
            LOG.error("Port %s left unfiltered-closed (forwards nothing): %s", pid, reason)

    def _failures(
        self, sets: IpsetResult, eb: EbtablesResult, ipt: ApplyResult, direct: bool = False
    ) -> dict[str, str]:
        failed: dict[str, str] = {}

        def fail(records: Iterable[PortRecord], reason: str) -> None:
            for record in records:
                failed.setdefault(record.port.id, reason)

        for name, reason in sets.failed.items():
            rid = self._set_names.get(name)
            if rid is not None:
                fail((r for r in self._ports.values() if self._references(r, rid)), reason)
            LOG.error("ipset %s not applied: %s", name, reason)
        for key, reason in ipt.failed.items():
            fail(self._owners(key.chain, direct), f"iptables chain {key.chain}: {reason}")
        for chain, reason in eb.failed.items():
            fail(self._owners(chain, direct), f"ebtables chain {chain}: {reason}")
        return failed

    def _owners(self, chain: str, direct: bool = False) -> list[PortRecord]:
        """Ports a failed chain breaks (``direct``: only chains that belong to ports)."""
        records = list(self._ports.values())
        if chain in self._group_chains:
            gid = self._group_chains[chain]
            return [r for r in records if gid in r.groups]
        if chain in self._profiles:
            return [r for r in records if r.profiles is not None and chain in r.profiles]
        if chain.startswith("na-s-"):
            return [r for r in records if r.spoof_chain == chain]
        if direct:
            return []
        for kind in (*_KINDS, "b"):
            prefix = f"na-{kind}-"
            if chain.startswith(prefix) and len(chain) == len(prefix) + 1:
                return [r for r in records if r.digit == chain[-1]]
        return records

    def _delete_conntrack(self) -> None:
        if not self._pending_ct:
            return
        filters, self._pending_ct = self._pending_ct, []
        try:
            conntrack.delete_entries(self.netns, filters)
        except (NetagentError, OSError, ValueError) as exc:
            LOG.error("conntrack deletion failed, retried next pass: %s", exc)
            self._pending_ct = filters + self._pending_ct
