"""The iptables firewall driver (entry point ``iptables`` in ``netagent.firewall``).

Security groups in iptables ``filter`` (both families), remote groups in ipsets,
anti-spoofing in ebtables ``nat`` -- see :mod:`.compiler`, :mod:`.antispoof` and
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
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from netagent.common.exceptions import NetagentError
from netagent.drivers import base
from netagent.drivers.iptables_firewall import antispoof
from netagent.drivers.iptables_firewall import compiler as comp
from netagent.drivers.iptables_firewall import zones as ctzones
from netagent.linux import conntrack
from netagent.linux.ebtables import EbRule, EbtablesManager, EbtablesResult
from netagent.linux.ipset import IpsetManager, IpsetResult
from netagent.linux.iptables import IptablesManager
from netagent.linux.iptables.manager import ApplyResult
from netagent.model.port import Port
from netagent.model.secgroup import Direction, EtherType, SecurityGroup

if TYPE_CHECKING:
    from netagent.model import DesiredState

LOG = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
FAMILIES = (4, 6)
DIRECTIONS = (Direction.EGRESS, Direction.INGRESS)
#: Bucket kinds of the iptables layout: egress, ingress, neighbour advertisements.
_KINDS = ("e", "n", "d")


class FirewallError(NetagentError):
    """The driver cannot work at all (e.g. br_netfilter missing)."""


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
    nd_nets: tuple[ipaddress.IPv6Network, ...] | None = None

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
    if not port.port_security_enabled:
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
    return PortRecord(
        port,
        device,
        digit,
        secured=True,
        groups=groups,
        stateful=stateful,
        profiles=profiles,
        spoof_rules=tuple(antispoof.port_rules(port)),
        nd_nets=tuple(antispoof.own_v6_networks(port)),
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
        self._ipt: IptablesManager | None = None
        self._eb: EbtablesManager | None = None
        self._ipset: IpsetManager | None = None
        self._zones: ctzones.NetworkZones | None = None
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
            self._ipt = IptablesManager(
                self.netns, backend=self.backend, verify_interval=self.verify_interval
            )
            self._eb = EbtablesManager(self.netns)
            self._ipset = IpsetManager(self.netns)
            raw = IptablesManager(self.netns, self.backend, self.verify_interval)
            self._zones = ctzones.NetworkZones(raw, self._state_path)
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
        ipset in the namespace. Taps on netagent bridges then forward unfiltered."""
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
                ipt.set_chain(family, "filter", chain, comp.dispatch_rules(kind))
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

    def _declare_buckets(self) -> None:
        ipt, eb, _ = self._managers()
        for digit in sorted(self._dirty):
            records = [
                r
                for r in self._ports.values()
                if r.digit == digit and r.port.id not in self._excluded and self._usable(r)
            ]
            entries = {
                kind: [
                    (r.device, None if r.profiles is None else r.profiles[kind == "n"])
                    for r in records
                ]
                for kind in ("e", "n")
            }
            for family in FAMILIES:
                for kind in ("e", "n"):
                    rules = comp.bucket_rules(kind, entries[kind])
                    ipt.set_chain(family, "filter", comp.bucket_chain(kind, digit), rules)
            nd = [(r.device, r.nd_nets) for r in records]
            ipt.set_chain(6, "filter", comp.bucket_chain("d", digit), comp.nd_bucket_rules(nd))
            eb_entries = [(r.device, r.spoof_chain) for r in records]
            eb.set_chain(antispoof.eb_bucket_chain(digit), antispoof.bucket_rules(eb_entries))
        self._dirty.clear()

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
        # Zone rules go in before any filter allows traffic (fail closed).
        missing = self._ctz.prepare(r.port for r in self._ports.values() if r.secured)
        for record in [r for r in self._ports.values() if r.port.network_id in missing]:
            self._exclude(record.port.id, "conntrack zone rule not applied")
        failed: dict[str, str] = {}
        for attempt in range(2):
            self._declare_buckets()
            set_result = ipset.apply()
            eb_result, ipt_result = self._apply_tables(eb, ipt)
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
        self._ctz.finish(r.port for r in self._ports.values() if r.secured)
        self._delete_conntrack()
        result = dict(self._excluded)
        result.update(failed)
        return result

    @staticmethod
    def _apply_tables(
        eb: EbtablesManager, ipt: IptablesManager
    ) -> tuple[EbtablesResult, ApplyResult]:
        """ebtables and iptables restores run side by side (separate tools and tables);
        both are done before anything is reported, so fail-closed ordering holds."""
        box: dict[str, EbtablesResult | BaseException] = {}

        def run_eb() -> None:
            try:
                box["eb"] = eb.apply()
            except BaseException as exc:  # re-raised below, in the caller's thread
                box["eb"] = exc

        thread = threading.Thread(target=run_eb, name="ebtables-apply", daemon=True)
        thread.start()
        try:
            ipt_result = ipt.apply()
        finally:
            thread.join()
        eb_result = box["eb"]
        if isinstance(eb_result, BaseException):
            raise eb_result
        return eb_result, ipt_result

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
