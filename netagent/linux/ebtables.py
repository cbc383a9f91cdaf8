"""ebtables for netagent: typed bridge-level rules and a chain manager per table.

Used for what iptables cannot see or cannot match: Ethernet source addresses of every
frame (also non-IP), ARP sender addresses, and dropping spoofed frames in ``PREROUTING``
*before* the bridge learns their source MAC (so a VM cannot poison the bridge's FDB).

Like :mod:`netagent.linux.iptables`: callers declare netagent chains whole
(:meth:`EbtablesManager.set_chain`) and the rules netagent wants first in ``PREROUTING``
(:meth:`EbtablesManager.set_hook`, kept in chain ``na-PREROUTING``, jumped to from
position 1). Table ``filter`` serves the L2 driver's host guard: its hook chain
``na-INPUT`` is jumped to from position 1 of ``INPUT``, which sees the frames a bridge
delivers to the host's own stack. :meth:`EbtablesManager.apply` writes only chains
whose rendered text changed since the last successful apply, in one
``ebtables-nft-restore --noflush`` (one nf_tables transaction). ebtables has no
comments, so nothing can be verified cheaply after a restart: the first apply of a
manager rewrites every desired chain, atomically, and adopts (without deleting) netagent
chains it finds; ``sweep=True`` deletes the ones nobody declared. A failed restore is
:meth:`EbtablesManager.check` compares the kernel with what was last
applied (rules in canonical form, :mod:`netagent.linux.ebtables_saved`) and marks what
someone else changed for the next apply. A failed restore is retried without the chain
owning the failing line, then that chain alone, so one bad chain never blocks the others.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from netagent.common.memo import pass_memo
from netagent.linux import ebtables_saved
from netagent.linux.iptables import validate as v
from netagent.linux.iptables.plan import ForeignRemoval, foreign_removal
from netagent.privileged import ebtables as priv

LOG = logging.getLogger(__name__)

#: table -> the built-in chain netagent's hook chain (``na-`` + its name) is first in
HOOKS = priv.HOOKS
VERDICTS = ("ACCEPT", "DROP", "RETURN")
_CHAIN_RE = re.compile(r"na-[A-Za-z0-9_-]{1,28}")
_PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp"}

_NEUTRON_LB_CHAIN_RE = re.compile(priv.NEUTRON_LB_CHAIN)
_NEUTRON_LB_JUMP_RE = re.compile(
    rf"-A PREROUTING(?: -p ARP)? -i tap[0-9a-f-]{{11}} -j {priv.NEUTRON_LB_CHAIN}"
)

IPv4Network = ipaddress.IPv4Network
IPv6Network = ipaddress.IPv6Network


def chain_name(value: str) -> str:
    """A netagent ebtables chain name (``na-`` prefix, at most 31 characters)."""
    if not isinstance(value, str) or not _chain_ok(str(value)):
        raise ValueError(f"invalid netagent ebtables chain name {value!r}")
    return value


@pass_memo
def _chain_ok(value: str) -> bool:
    return _CHAIN_RE.fullmatch(value) is not None


@pass_memo
def _net(net: IPv4Network | IPv6Network) -> str:
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return str(net)


def _mac(value: object, field: str) -> str:
    """A MAC address, lower-case (memoised through :func:`validate.mac_address`)."""
    return _lower(v.mac_address(value, field))


@pass_memo
def _lower(mac: str) -> str:
    return mac.lower()


@dataclass(frozen=True)
class EbRule:
    """One ebtables rule; every field typed and checked when built.

    :ivar ethertype: ``ARP``, ``IPv4``, ``IPv6`` or None (any frame)
    :ivar in_iface: ``-i`` bridge port (``tap+`` wildcard allowed)
    :ivar src_mac: Ethernet source
    :ivar arp_mac_src: ARP sender hardware address (needs ``ARP``)
    :ivar arp_ip_src: ARP sender protocol address or prefix (needs ``ARP``)
    :ivar ip_src: IP source prefix (family of ``ethertype``)
    :ivar ip_dst: IP destination prefix
    :ivar ip_proto: IP protocol number (tcp/udp/icmp/ipv6-icmp rendered by name)
    :ivar sport: UDP/TCP source port; ``dport``: destination port
    :ivar icmp_type: ICMP (IPv4) or ICMPv6 (IPv6) type
    :ivar target: ``ACCEPT``, ``DROP``, ``RETURN`` or a netagent chain to jump to
    """

    target: str
    ethertype: str | None = None
    in_iface: str | None = None
    src_mac: str | None = None
    arp_mac_src: str | None = None
    arp_ip_src: IPv4Network | None = None
    ip_src: IPv4Network | IPv6Network | None = None
    ip_dst: IPv4Network | IPv6Network | None = None
    ip_proto: int | None = None
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None

    def __post_init__(self) -> None:
        if self.target not in VERDICTS:
            chain_name(self.target)
        if self.ethertype not in (None, "ARP", "IPv4", "IPv6"):
            raise ValueError(f"ethertype must be ARP, IPv4 or IPv6, got {self.ethertype!r}")
        if self.in_iface is not None:
            v.interface_name(self.in_iface, "in_iface")
        if self.src_mac is not None:
            object.__setattr__(self, "src_mac", _mac(self.src_mac, "src_mac"))
        if self.arp_mac_src is not None:
            object.__setattr__(self, "arp_mac_src", _mac(self.arp_mac_src, "arp_mac_src"))
        if (
            self.arp_mac_src is not None or self.arp_ip_src is not None
        ) and self.ethertype != "ARP":
            raise ValueError("ARP matches need ethertype ARP")
        if self.arp_ip_src is not None and not isinstance(self.arp_ip_src, IPv4Network):
            raise ValueError(f"arp_ip_src must be an IPv4Network, got {self.arp_ip_src!r}")
        if (
            self.ip_src is not None
            or self.ip_dst is not None
            or self.ip_proto is not None
            or self.sport is not None
            or self.dport is not None
            or self.icmp_type is not None
        ):
            if self.ethertype not in ("IPv4", "IPv6"):
                raise ValueError("IP matches need ethertype IPv4 or IPv6")
            version = 4 if self.ethertype == "IPv4" else 6
            for net in (self.ip_src, self.ip_dst):
                if net is not None and (
                    not isinstance(net, IPv4Network | IPv6Network) or net.version != version
                ):
                    raise ValueError(f"{net!r} is not an IPv{version} network")
        if self.ip_proto is not None:
            v.integer(self.ip_proto, "ip_proto", 0, 255)
        for name, port in (("sport", self.sport), ("dport", self.dport)):
            if port is not None:
                v.integer(port, name, 1, 65535)
                if self.ip_proto not in (6, 17):
                    raise ValueError(f"{name} needs ip_proto tcp or udp")
        if self.icmp_type is not None:
            v.integer(self.icmp_type, "icmp_type", 0, 255)
            if self.ip_proto != (1 if self.ethertype == "IPv4" else 58):
                raise ValueError("icmp_type needs ip_proto icmp (IPv4) or ipv6-icmp (IPv6)")

    def rendered(self) -> str:
        """:meth:`render`, memoised on this (immutable) rule."""
        text: str | None = self.__dict__.get("_rendered")
        if text is None:
            text = self.__dict__["_rendered"] = self.render()
        return text

    def render(self) -> str:
        """The rule body after ``-A CHAIN`` (deterministic)."""
        out: list[str] = []
        if self.ethertype is not None:
            out += ["-p", self.ethertype]
        if self.in_iface is not None:
            out += ["-i", self.in_iface]
        if self.src_mac is not None:
            out += ["-s", self.src_mac]
        if self.arp_mac_src is not None:
            out += ["--arp-mac-src", self.arp_mac_src]
        if self.arp_ip_src is not None:
            out += ["--arp-ip-src", _net(self.arp_ip_src)]
        p = "--ip" if self.ethertype == "IPv4" else "--ip6"
        if self.ip_src is not None:
            out += [f"{p}-src", _net(self.ip_src)]
        if self.ip_dst is not None:
            out += [f"{p}-dst", _net(self.ip_dst)]
        if self.ip_proto is not None:
            out += [f"{p}-proto", _PROTO_NAMES.get(self.ip_proto, str(self.ip_proto))]
        if self.sport is not None:
            out += [f"{p}-sport", str(self.sport)]
        if self.dport is not None:
            out += [f"{p}-dport", str(self.dport)]
        if self.icmp_type is not None:
            out += [f"{p}-icmp-type", str(self.icmp_type)]
        out += ["-j", self.target]
        return " ".join(out)


@dataclass
class EbtablesResult:
    """Outcome of :meth:`EbtablesManager.apply`.

    :ivar applied: chain -> ``"written"`` or ``"deleted"``
    :ivar failed: chain -> reason (still pending, retried by the next apply)
    :ivar inputs: restore inputs that succeeded
    """

    applied: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)


@dataclass
class _Item:
    chain: str
    delete: bool
    body: tuple[str, ...] = ()


def neutron_lb_removal(text: str) -> ForeignRemoval:
    """The removal of the Neutron Linux bridge agent's ARP/MAC spoofing chains from
    ``ebtables-nft-save -t nat`` output: unhook, flush, delete. A jump netagent does not
    recognise whole blocks the removal (the chain could not be deleted)."""
    return foreign_removal(
        text,
        lambda chain: _NEUTRON_LB_CHAIN_RE.fullmatch(chain) is not None,
        lambda line: "-D " + line[3:] if _NEUTRON_LB_JUMP_RE.fullmatch(line) else None,
        unhook_first=True,
    )


class EbtablesManager:
    """netagent's ebtables chains of one table in one network namespace.

    :param namespace: network namespace name; None is the agent's own namespace
    :param table: ``nat`` (anti-spoofing, hook in ``PREROUTING``) or ``filter`` (hook
        in ``INPUT``)
    :param take_over_neutron_lb: (``nat``) remove the Neutron Linux bridge agent's
        spoofing chains found by the scan in the restore that writes netagent's
        (doc/migration.md)
    """

    def __init__(
        self, namespace: str | None, table: str = "nat", take_over_neutron_lb: bool = False
    ) -> None:
        if table not in HOOKS:
            raise ValueError(f"ebtables table must be one of {sorted(HOOKS)}, got {table!r}")
        self.namespace = namespace
        self.table = table
        self.builtin = HOOKS[table]
        self.hook_chain = "na-" + self.builtin
        self._desired: dict[str, tuple[str, ...]] = {}
        self._kernel: dict[str, tuple[str, ...] | None] = {}
        self._hook_kernel = False
        # The hook jump is in PREROUTING but not rule 1 (found by a check or the scan).
        self._hook_misplaced = False
        # chain -> (body last applied, its rules in canonical form), for check()
        self._expected: dict[str, tuple[tuple[str, ...], list[ebtables_saved.Canonical]]] = {}
        # the kernel's chains as check() read them last (canonical forms reused)
        self._saved_memo: ebtables_saved.Memo = {}
        self._scanned = False
        self._prefetched: str | None = None
        self._lock = threading.RLock()
        self.take_over_neutron_lb = take_over_neutron_lb and table == "nat"
        self._retire = ForeignRemoval()

    def __repr__(self) -> str:
        return f"EbtablesManager(namespace={self.namespace!r}, table={self.table!r})"

    def set_chain(self, chain: str, rules: Sequence[EbRule]) -> None:
        """Declare the whole content of netagent chain ``chain``."""
        if chain_name(chain) == self.hook_chain:
            raise ValueError(f"{self.hook_chain} is reserved for set_hook")
        self._set(chain, rules)

    def set_hook(self, rules: Sequence[EbRule]) -> None:
        """Declare the rules netagent evaluates first in the table's built-in chain."""
        self._set(self.hook_chain, rules)

    def _set(self, chain: str, rules: Sequence[EbRule]) -> None:
        body = tuple(f"-A {chain} {rule.rendered()}" for rule in rules)
        with self._lock:
            self._desired[chain] = body

    def remove_chain(self, chain: str) -> None:
        """Stop wanting ``chain`` (deleted by the next apply). Idempotent."""
        with self._lock:
            self._desired.pop(chain_name(chain), None)

    def chains(self) -> list[str]:
        """Names of the desired chains."""
        with self._lock:
            return sorted(self._desired)

    def prefetch(self) -> None:
        """Read the kernel's netagent chains ahead of the first :meth:`apply`, without
        holding the manager's lock (callers overlap the save with building their chains).
        A no-op once scanned; on any error the apply simply reads them itself."""
        with self._lock:
            if self._scanned or self._prefetched is not None:
                return
        text = priv.save(self.namespace, self.table)
        with self._lock:
            if not self._scanned:
                self._prefetched = text

    def _scan(self) -> None:
        text, self._prefetched = self._prefetched, None
        if text is None:
            text = priv.save(self.namespace, self.table)
        found: dict[str, tuple[str, ...] | None] = {}
        for line in text.splitlines():
            if line.startswith(":na-"):
                found[line[1:].split(" ", 1)[0]] = None
        hook = ebtables_saved.parse_save(text, self.builtin, self.hook_chain).hook
        self._hook_kernel = hook is True
        self._hook_misplaced = hook is False
        # Content is unknown (no comments in ebtables): every desired chain is rewritten.
        self._kernel = found
        self._scanned = True
        if self.take_over_neutron_lb:
            self._retire = neutron_lb_removal(text)
            if self._retire.blocked:
                LOG.error(
                    "Neutron Linux bridge agent ebtables chains in namespace %s not removed: "
                    "rules netagent does not remove jump to them: %s",
                    self.namespace,
                    "; ".join(self._retire.blocked),
                )

    def inspect_neutron_lb(self) -> ForeignRemoval:
        """What a takeover would remove of the Neutron Linux bridge agent (one save)."""
        return neutron_lb_removal(priv.save(self.namespace, self.table))

    def neutron_lb_chains(self) -> ForeignRemoval:
        """What the last scan found of the Neutron Linux bridge agent."""
        with self._lock:
            return self._retire

    def check(self) -> list[str]:
        """Compare the kernel with what this manager last applied (one save).

        Every chain written by an earlier :meth:`apply` must still exist with policy
        ``RETURN`` and exactly the rules written, and the hook jump must be rule 1 of
        the table's built-in chain. The reference is what was *applied*, never a newer declaration
        not applied yet, so a chain netagent is about to change is not reported. Chains
        that differ are marked unknown: the next :meth:`apply` rewrites them (and puts
        the hook back first). Nothing is checked before the first apply.

        :returns: names of the chains found changed (the hook chain for a hook that is
            missing or not first), sorted
        :raises EbtablesRestoreError: the save failed
        """
        with self._lock:
            if not self._scanned:
                return []
            saved = ebtables_saved.parse_save(
                priv.save(self.namespace, self.table),
                self.builtin,
                self.hook_chain,
                memo=self._saved_memo,
            )
            tampered: set[str] = set()
            for name, body in list(self._kernel.items()):
                if body is None:
                    continue  # content unknown already: the next apply rewrites it
                rules = saved.chains.get(name)
                if rules is None:
                    del self._kernel[name]
                    tampered.add(name)
                elif saved.policies.get(name) != "RETURN" or rules != self._canonical(name, body):
                    self._kernel[name] = None
                    tampered.add(name)
            if self._hook_kernel and saved.hook is not True:
                self._hook_kernel = False
                self._hook_misplaced = saved.hook is False
                if self.hook_chain in self._kernel:
                    self._kernel[self.hook_chain] = None
                tampered.add(self.hook_chain)
            for stale in set(self._expected) - set(self._kernel):
                del self._expected[stale]
            return sorted(tampered)

    def _canonical(self, name: str, body: tuple[str, ...]) -> list[ebtables_saved.Canonical]:
        cached = self._expected.get(name)
        if cached is not None and cached[0] is body:
            return cached[1]
        rules = [ebtables_saved.canonical_line(line)[1] for line in body]
        self._expected[name] = (body, rules)
        return rules

    def apply(self, sweep: bool = False) -> EbtablesResult:
        """Write changed chains, delete unwanted ones, in one atomic restore.

        :param sweep: also delete netagent chains found in the kernel that nobody declared
        """
        with self._lock:
            if not self._scanned:
                self._scan()
            items = [
                _Item(name, False, body)
                for name, body in sorted(self._desired.items())
                if self._kernel.get(name, ()) != body or name not in self._kernel
            ]
            items += [
                _Item(name, True)
                for name in sorted(self._kernel)
                if name not in self._desired and (sweep or self._kernel[name] is not None)
            ]
            result = EbtablesResult()
            queue = [items] if items or self._retire.lines else []
            while queue:
                batch = queue.pop(0)
                # a takeover's removal goes with the whole first batch (see iptables)
                tail = self._retire.lines if batch is items else ()
                text, owners = self._build(batch, tail)
                try:
                    priv.restore(self.namespace, text, table=self.table)
                except priv.EbtablesRestoreError as exc:
                    self._scanned = False
                    if tail:
                        LOG.error(
                            "Neutron Linux bridge agent ebtables chains in %s not removed "
                            "(retried after the next scan): %s",
                            self.namespace,
                            exc,
                        )
                        queue[:0] = [list(batch)]
                        continue
                    bad = owners[exc.line] if exc.line and exc.line < len(owners) else None
                    LOG.warning(
                        "ebtables %s restore in %s failed: %s", self.table, self.namespace, exc
                    )
                    if len(batch) == 1:
                        result.failed[batch[0].chain] = str(exc)
                    elif bad is not None:
                        queue[:0] = [[i for i in batch if i is not bad], [bad]]
                    else:
                        half = len(batch) // 2
                        queue[:0] = [batch[:half], batch[half:]]
                    continue
                result.inputs.append(text)
                if tail:
                    LOG.info(
                        "Neutron Linux bridge agent ebtables chains removed in namespace %s "
                        "with netagent's in place, in one restore: %s",
                        self.namespace,
                        ", ".join(self._retire.chains),
                    )
                    self._retire = ForeignRemoval()
                for item in batch:
                    if item.delete:
                        self._kernel.pop(item.chain, None)
                        if item.chain == self.hook_chain:
                            self._hook_kernel = False
                            self._hook_misplaced = False
                        result.applied[item.chain] = "deleted"
                    else:
                        self._kernel[item.chain] = item.body
                        if item.chain == self.hook_chain:
                            self._hook_kernel = True
                            self._hook_misplaced = False
                        result.applied[item.chain] = "written"
            if result.applied:
                LOG.debug(
                    "ebtables in namespace %s: %d chains written/deleted",
                    self.namespace,
                    len(result.applied),
                )
            return result

    def _build(
        self, batch: list[_Item], tail: Sequence[str] = ()
    ) -> tuple[str, list[_Item | None]]:
        lines = [f"*{self.table}"]
        owners: list[_Item | None] = [None, None]

        def add(line: str, item: _Item | None) -> None:
            lines.append(line)
            owners.append(item)

        # Writes: declare (create or flush) all, then fill, so jumps find their targets.
        # Jumps into a chain being deleted are gone once its referrers were rewritten.
        # Chains that jump into new chains are ordered after them (sorted names + the
        # hook last suffice for netagent's layout, where referrers sort after targets
        # or are rewritten in the same transaction).
        for item in batch:
            if not item.delete:
                add(f":{item.chain} RETURN", item)
        for item in batch:
            for line in item.body:
                add(line, item)
        for item in batch:
            if item.chain == self.hook_chain and not item.delete and not self._hook_kernel:
                if self._hook_misplaced:
                    add(f"-D {self.builtin} -j {self.hook_chain}", item)
                add(f"-I {self.builtin} 1 -j {self.hook_chain}", item)
        for item in batch:
            if item.delete:
                if item.chain == self.hook_chain and (self._hook_kernel or self._hook_misplaced):
                    add(f"-D {self.builtin} -j {self.hook_chain}", item)
                add(f"-F {item.chain}", item)
        for item in batch:
            if item.delete:
                add(f"-X {item.chain}", item)
        for line in tail:
            add(line, None)
        lines.append("COMMIT")
        owners.append(None)
        return "\n".join(lines) + "\n", owners
