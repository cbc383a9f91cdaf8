"""The iptables manager: desired netagent chains in memory, written whole, per table.

How it works. Callers declare chains whole (:meth:`IptablesManager.set_chain`) and the
rules netagent wants first in a built-in chain (:meth:`IptablesManager.set_jumps`); the
latter live in a netagent *hook chain* (``na-FORWARD``...) to which netagent keeps exactly
one jump, at position 1 of the built-in chain. Each chain is rendered when declared (bad
rules fail there, before anything reaches the kernel) and hashed; the chain's first rule
carries the hash as ``-m comment --comment na:<hash>``.

:meth:`IptablesManager.apply` compares desired hashes with the hashes it believes the
kernel has and writes, per (family, table), one ``iptables-restore --noflush`` with only
the chains that differ (``:chain`` declaration, which creates or flushes it, then the
rules) and the deletion of chains no longer wanted. Rules are never parsed back to decide
what to change. The belief is checked cheaply (:meth:`IptablesManager.verify`): one
``iptables-save`` per table scanned only for netagent chain names, rule counts, the first
rule's hash comment, a digest of each chain's saved lines and the hook positions; a chain
that was deleted, flushed or edited by someone else no longer matches and is rewritten by
the same apply. The check runs at the first apply of a table
(adopting what a previous agent left in place without rewriting it), when asked, and
every ``verify_interval`` seconds.

On a failed restore (atomic per table: nothing was applied) the failing line reported by
the tool is logged with its context; the chain owning that line is set aside and the rest
is retried in one restore, then the chain alone. When no line can be attributed the batch
is split in halves. One bad chain therefore never blocks the others, and failures are
reported per chain in :class:`ApplyResult`. Model: Felix ``fiptables.py``, KEP-3453.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar, cast

from netagent.linux.iptables import backend as backend_mod
from netagent.linux.iptables import plan
from netagent.linux.iptables import validate as v
from netagent.linux.iptables.rules import Rule
from netagent.privileged import iptables as priv

LOG = logging.getLogger(__name__)

_LOCKS: dict[str | None, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _namespace_lock(namespace: str | None) -> threading.RLock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(namespace, threading.RLock())


class ChainKey(NamedTuple):
    """Identifies a chain: IP family (4/6), table and chain name."""

    family: int
    table: str
    chain: str


@dataclass
class ApplyResult:
    """Outcome of :meth:`IptablesManager.apply`.

    :ivar applied: chains written (``"written"``) or deleted (``"deleted"``)
    :ivar failed: chains that could not be applied, with the tool's reason; they stay
        pending and are retried by the next apply
    :ivar inputs: every successful restore input, as ``(family, table, text)``
    """

    applied: dict[ChainKey, str] = field(default_factory=dict)
    failed: dict[ChainKey, str] = field(default_factory=dict)
    inputs: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failed


@dataclass
class _Table:
    desired: dict[str, plan.DesiredChain] = field(default_factory=dict)
    kernel: dict[str, str] = field(default_factory=dict)
    # Digest of each chain's iptables-save lines at the last check that found it intact
    # (dropped when the chain is rewritten): catches edits keeping count and first rule.
    texts: dict[str, str] = field(default_factory=dict)
    # Sets matched by each chain's kernel content, where known (written or adopted).
    kernel_sets: dict[str, frozenset[str]] = field(default_factory=dict)
    # What netagent last wrote (or adopted) per chain: the reference of the check, so a
    # chain about to change (desired differs) is not mistaken for a tampered one.
    applied: dict[str, plan.DesiredChain] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)
    hooks_wanted: set[str] = field(default_factory=set)
    hooks_kernel: dict[str, bool] = field(default_factory=dict)
    scanned: bool = False
    # A takeover's removal of the Neutron Linux bridge agent's chains (found by the scan).
    retire: plan.ForeignRemoval = field(default_factory=plan.ForeignRemoval)


def _drops_sets(state: _Table, item: plan.Item) -> bool:
    """True when ``item`` may remove the last rule of its chain that matches some set.

    The kernel releases a set reference after the commit (with nf_tables, when the
    restore tool exits); callers destroy unreferenced sets right after an apply, so such
    a restore is waited for in full (``settle``). Unknown kernel content counts as yes.
    """
    if not item.exists:
        return False
    old = state.kernel_sets.get(item.chain)
    if old is None:
        return True
    return bool(old - item.sets)


_T = TypeVar("_T")


def _parallel(calls: Sequence[Callable[[], _T]]) -> list[_T]:
    """Run ``calls`` side by side (each in its own thread but the first); results in
    order. An exception of any call is re-raised after all have finished."""
    if len(calls) <= 1:
        return [call() for call in calls]
    results: list[_T | None] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = calls[index]()
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(i,), name=f"iptables-{i}", daemon=True)
        for i in range(1, len(calls))
    ]
    for thread in threads:
        thread.start()
    try:
        run(0)
    finally:
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return cast(list[_T], results)


class IptablesManager:
    """Desired netagent chains of one network namespace, applied incrementally.

    :param namespace: network namespace name; None is the root namespace
    :param backend: ``nft``, ``legacy`` or ``auto`` (:func:`.backend.resolve`, nothing
        recorded; the firewall driver resolves it once, with its record, and passes it)
    :param verify_interval: seconds between cheap kernel checks during :meth:`apply`
        (0: before every apply; None: only at first use and on request)
    :param take_over_neutron_lb: remove the Neutron Linux bridge agent's chains found by
        a table's scan, in the same restore as the first write that leaves every desired
        chain of the table in place (doc/migration.md)
    """

    def __init__(
        self,
        namespace: str | None,
        backend: str = "auto",
        verify_interval: float | None = 60.0,
        take_over_neutron_lb: bool = False,
    ) -> None:
        priv.netns_prefix(namespace)
        if backend == "auto":
            backend = backend_mod.resolve("auto", namespace, None)
        if backend not in priv.BACKENDS:
            raise ValueError(f"backend must be auto, nft or legacy, got {backend!r}")
        self.namespace = namespace
        self.backend = backend
        self.verify_interval = verify_interval
        self.take_over_neutron_lb = take_over_neutron_lb
        self._tables: dict[tuple[int, str], _Table] = {}
        self._last_verify = 0.0
        self._prefetched: dict[tuple[int, str], str] = {}
        self._lock = _namespace_lock(namespace)

    def __repr__(self) -> str:
        return f"IptablesManager(namespace={self.namespace!r}, backend={self.backend!r})"

    def _table(self, family: int, table: str) -> _Table:
        key = (v.family(family), v.table_name(table))
        return self._tables.setdefault(key, _Table())

    def set_chain(self, family: int, table: str, chain: str, rules: Sequence[Rule]) -> None:
        """Declare the whole content of netagent chain ``chain`` (applied by :meth:`apply`).

        :param family: 4 or 6
        :param table: filter, nat, mangle or raw
        :param chain: a netagent chain name (``na-...``, or a security-group chain)
        :param rules: the chain's rules in order
        :raises ValueError: bad name or a rule that does not fit the family/protocol
        """
        v.owned_chain_name(chain)
        if chain in plan.HOOK_CHAINS:
            raise ValueError(f"chain: {chain} is reserved for set_jumps")
        self._set(family, table, chain, rules)

    def _set(self, family: int, table: str, chain: str, rules: Sequence[Rule]) -> None:
        desired = plan.render_chain(chain, v.family(family), rules)
        with self._lock:
            state = self._table(family, table)
            state.desired[chain] = desired
            state.known.add(chain)

    def remove_chain(self, family: int, table: str, chain: str) -> None:
        """Stop wanting ``chain``; the next apply deletes it. Idempotent."""
        v.owned_chain_name(chain)
        with self._lock:
            self._table(family, table).desired.pop(chain, None)

    def set_jumps(self, family: int, table: str, builtin: str, rules: Sequence[Rule]) -> None:
        """Declare the rules netagent evaluates first in built-in chain ``builtin``.

        They live in hook chain ``na-<builtin>``, jumped to from position 1 of ``builtin``.
        """
        v.builtin_chain(v.table_name(table), builtin)
        self._set(family, table, plan.hook_chain(builtin), rules)
        with self._lock:
            self._table(family, table).hooks_wanted.add(builtin)

    def clear_jumps(self, family: int, table: str, builtin: str) -> None:
        """Remove netagent's hook from ``builtin`` (next apply). Idempotent."""
        v.builtin_chain(v.table_name(table), builtin)
        with self._lock:
            state = self._table(family, table)
            state.hooks_wanted.discard(builtin)
            state.desired.pop(plan.hook_chain(builtin), None)

    def take_over_tables(self, tables: Sequence[tuple[int, str]]) -> None:
        """Also scan ``(family, table)``s netagent writes nothing to (nat, mangle) for
        the Neutron Linux bridge agent's chains; the next apply removes them."""
        with self._lock:
            for family, table in tables:
                self._table(family, table)

    def inspect_neutron_lb(
        self, tables: Sequence[tuple[int, str]]
    ) -> dict[tuple[int, str], plan.ForeignRemoval]:
        """What a takeover would remove of the Neutron Linux bridge agent, per table with
        any of its chains (read-only: one save per table, nothing remembered)."""
        found = {}
        for family, table in tables:
            text = priv.save(self.namespace, self.backend, v.family(family), v.table_name(table))
            removal = plan.neutron_lb_removal(text)
            if removal.chains:
                found[(family, table)] = removal
        return found

    def neutron_lb_zones(self) -> dict[str, int]:
        """Bridge -> conntrack zone of the Neutron Linux bridge agent's IPv4 raw rules
        (one save; read before netagent allocates zones, so established connections keep
        theirs through a takeover)."""
        return plan.neutron_lb_zones(priv.save(self.namespace, self.backend, 4, "raw"))

    def neutron_lb_chains(self) -> dict[tuple[int, str], plan.ForeignRemoval]:
        """What the last scans found of the Neutron Linux bridge agent, per table."""
        with self._lock:
            return {k: t.retire for k, t in sorted(self._tables.items()) if t.retire.chains}

    def chains(self, family: int, table: str) -> list[str]:
        """Names of the chains currently desired in a table."""
        with self._lock:
            return sorted(self._table(family, table).desired)

    def verify(self) -> set[ChainKey]:
        """Run the cheap kernel check on every table in use; warn about damaged chains.

        :returns: chains whose kernel state no longer matches what was applied (they
            and any missing hook are rewritten by the next apply)
        """
        damaged = self.check()
        for family, table in sorted({(k.family, k.table) for k in damaged}):
            chains = sorted(k.chain for k in damaged if (k.family, k.table) == (family, table))
            LOG.warning(
                "iptables in namespace %s IPv%d %s changed behind netagent's back, rewriting: %s",
                self.namespace,
                family,
                table,
                ", ".join(chains),
            )
        return damaged

    def check(self) -> set[ChainKey]:
        """The cheap kernel check of every table already applied, without logging.

        Each netagent chain is compared with what netagent last *applied* to it (not with
        a newer desired content not applied yet), and each hook must be rule 1 of its
        built-in chain. Chains that differ are marked unknown: the next :meth:`apply`
        rewrites them (and re-inserts a missing or displaced hook).

        :returns: the damaged chains (hook chains stand for their hooks)
        """
        with self._lock:
            keys = [key for key, state in self._tables.items() if state.scanned]
            found = self._scan_all(keys)
            self._last_verify = time.monotonic()
            return set().union(set(), *found)

    def prefetch(self, tables: Sequence[tuple[int, str]]) -> None:
        """Read ``(family, table)``s not yet scanned ahead of the first :meth:`apply`,
        side by side and without holding the manager's lock (callers overlap the saves
        with declaring their chains). The apply's check then uses them once."""
        with self._lock:
            wanted = [
                (v.family(f), v.table_name(t))
                for f, t in tables
                if not self._table(f, t).scanned and (f, t) not in self._prefetched
            ]

        def fetch(family: int, table: str) -> None:
            text = priv.save(self.namespace, self.backend, family, table)
            with self._lock:
                if not self._table(family, table).scanned:
                    self._prefetched[(family, table)] = text

        _parallel([functools.partial(fetch, f, t) for f, t in wanted])

    def _scan_all(self, keys: list[tuple[int, str]]) -> list[set[ChainKey]]:
        """:meth:`_scan` of each table; the saves still to run run side by side."""
        calls = [functools.partial(self._scan, family, table) for family, table in keys]
        if sum(1 for key in keys if key not in self._prefetched) > 1:
            return _parallel(calls)
        return [call() for call in calls]

    def _scan(self, family: int, table: str) -> set[ChainKey]:
        state = self._tables[(family, table)]
        text = self._prefetched.pop((family, table), None)
        if text is None:
            text = priv.save(self.namespace, self.backend, family, table)
        seen = plan.scan_save(text)
        kernel: dict[str, str] = {}
        reference: dict[str, plan.DesiredChain] = {}
        for name, chain in seen.chains.items():
            # What netagent last wrote there; a chain never written is adopted when it
            # carries the desired content (a previous agent's, after a restart).
            ref = state.applied.get(name) or state.desired.get(name)
            digest = plan.kernel_digest(chain, ref)
            if state.texts.get(name, chain.text) != chain.text:
                digest = plan.UNKNOWN
            kernel[name] = digest
            if ref is not None and digest != plan.UNKNOWN:
                reference[name] = ref
        damaged = {
            ChainKey(family, table, name)
            for name, digest in state.kernel.items()
            if kernel.get(name) != digest
        }
        damaged |= {
            ChainKey(family, table, plan.hook_chain(b))
            for b, first in state.hooks_kernel.items()
            if seen.hooks.get(b) != first
        }
        first = not state.scanned
        state.kernel = kernel
        state.texts = {name: seen.chains[name].text for name in reference}
        state.kernel_sets = {name: ref.sets for name, ref in reference.items()}
        state.applied = reference
        state.hooks_kernel = dict(seen.hooks)
        state.scanned = True
        if self.take_over_neutron_lb:
            state.retire = plan.neutron_lb_removal(text)
            if state.retire.blocked:
                LOG.error(
                    "Neutron Linux bridge agent chains in namespace %s IPv%d %s are not "
                    "removed: built-in chain rules jump to them that netagent does not "
                    "remove: %s",
                    self.namespace,
                    family,
                    table,
                    "; ".join(state.retire.blocked),
                )
        # The first scan of a table adopts what it finds: nothing was applied to compare.
        return set() if first else damaged

    def _items(self, state: _Table, sweep: bool) -> list[plan.Item]:
        items = []
        for name, want in state.desired.items():
            builtin = name[len("na-") :] if name in plan.HOOK_CHAINS else None
            hook: tuple[str, ...] = ()
            if builtin is not None and builtin in state.hooks_wanted:
                where = state.hooks_kernel.get(builtin)
                if where is False:
                    hook = (plan.hook_delete(builtin), plan.hook_insert(builtin))
                elif where is None:
                    hook = (plan.hook_insert(builtin),)
            if state.kernel.get(name) != want.digest or hook:
                exists = name in state.kernel
                items.append(
                    plan.Item(
                        name, False, exists, want.lines, hook, want.digest, want.refs, want.sets
                    )
                )
        for name in state.kernel:
            if name in state.desired or not (sweep or name in state.known):
                continue
            builtin = name[len("na-") :] if name in plan.HOOK_CHAINS else None
            hook = ()
            if builtin is not None and builtin in state.hooks_kernel:
                hook = (plan.hook_delete(builtin),)
            items.append(plan.Item(name, True, True, (), hook))
        return plan.order_items(items)

    def apply(self, verify: bool | None = None, sweep: bool = False) -> ApplyResult:
        """Write what changed since the last successful apply, one restore per table.

        :param verify: run the cheap kernel check first (None: when ``verify_interval``
            has elapsed, and always at a table's first apply)
        :param sweep: also delete netagent chains found in the kernel that nobody declared
            (use after a full resync, when the desired state is complete)
        :returns: per-chain outcome; failed chains stay pending for the next apply
        """
        with self._lock:
            result = ApplyResult()
            due = self.verify_interval is not None and (
                time.monotonic() - self._last_verify >= self.verify_interval
            )
            if verify or (verify is None and due):
                self.verify()
            keys = sorted(self._tables)
            self._scan_all([key for key in keys if not self._tables[key].scanned])
            # One restore per table. When they only create chains (a first apply), the
            # tables' restores run side by side: separate tools and transactions whose
            # parsing overlaps. A restore that flushes or deletes chains runs alone: its
            # tool's exit holds the namespace's nf_tables commit mutex for an RCU grace
            # period, which the next transaction would wait for (doc/firewall.md).
            work = []
            for family, table in keys:
                state = self._tables[(family, table)]
                items = self._items(state, sweep)
                if items or state.retire.lines:
                    work.append((family, table, state, items, ApplyResult()))
            calls = [functools.partial(self._run, *job) for job in work]
            if all(not i.exists and not i.delete for job in work for i in job[3]):
                _parallel(calls)
            else:
                for call in calls:
                    call()
            for *_, part in work:
                result.applied.update(part.applied)
                result.failed.update(part.failed)
                result.inputs += part.inputs
            return result

    def _run(
        self,
        family: int,
        table: str,
        state: _Table,
        items: list[plan.Item],
        result: ApplyResult,
    ) -> None:
        queue: list[list[plan.Item]] = [items]
        while queue:
            batch = queue.pop(0)
            # A takeover's removal goes with the restore that leaves every desired chain
            # in place: the whole first batch, never a part of a split one.
            tail = state.retire.lines if batch is items else ()
            text, owners = plan.build_input(table, batch, tail)
            # the removed Neutron chains' ipsets are destroyed right after a takeover
            settle = bool(tail) or any(_drops_sets(state, item) for item in batch)
            try:
                priv.restore(self.namespace, self.backend, family, table, text, settle=settle)
            except priv.IptablesRestoreError as exc:
                # The kernel may not be what we believed: check it before the next apply.
                state.scanned = False
                culprit = self._log_failure(exc, text, owners)
                if tail:
                    LOG.error(
                        "Neutron Linux bridge agent chains in namespace %s IPv%d %s not "
                        "removed (retried after the next scan): %s",
                        self.namespace,
                        family,
                        table,
                        exc,
                    )
                    queue[:0] = [list(batch)]  # netagent's chains without the removal
                    continue
                if len(batch) == 1:
                    key = ChainKey(family, table, batch[0].chain)
                    result.failed[key] = str(exc)
                    LOG.error("iptables chain %s not applied: %s", key, exc)
                elif culprit is not None:
                    rest = [i for i in batch if i is not culprit]
                    queue[:0] = [rest, [culprit]]
                else:
                    half = len(batch) // 2
                    queue[:0] = [batch[:half], batch[half:]]
                continue
            result.inputs.append((family, table, text))
            self._committed(ChainKey(family, table, ""), state, batch, result)
            if tail:
                LOG.info(
                    "Neutron Linux bridge agent chains removed in namespace %s IPv%d %s "
                    "with netagent's in place, in one restore: %s",
                    self.namespace,
                    family,
                    table,
                    ", ".join(state.retire.chains),
                )
                state.retire = plan.ForeignRemoval()

    def _log_failure(
        self, exc: priv.IptablesRestoreError, text: str, owners: list[plan.Item | None]
    ) -> plan.Item | None:
        lines = text.splitlines()
        if exc.line is None or not 1 <= exc.line <= len(lines):
            LOG.warning("iptables-restore in namespace %s failed: %s", self.namespace, exc)
            return None
        first = max(exc.line - 3, 0)
        context = "\n".join(
            f"{'>>' if n == exc.line else '  '} {n}: {lines[n - 1]}"
            for n in range(first + 1, min(exc.line + 2, len(lines)) + 1)
        )
        LOG.warning(
            "iptables-restore in namespace %s failed at line %d: %s\n%s",
            self.namespace,
            exc.line,
            exc,
            context,
        )
        return owners[exc.line] if exc.line < len(owners) else None

    def _committed(
        self, where: ChainKey, state: _Table, batch: list[plan.Item], result: ApplyResult
    ) -> None:
        family, table, _ = where
        for item in batch:
            key = ChainKey(family, table, item.chain)
            builtin = item.chain[len("na-") :] if item.chain in plan.HOOK_CHAINS else None
            state.texts.pop(item.chain, None)
            if item.delete:
                state.applied.pop(item.chain, None)
                state.kernel_sets.pop(item.chain, None)
                state.kernel.pop(item.chain, None)
                if builtin is not None:
                    state.hooks_kernel.pop(builtin, None)
                state.known.discard(item.chain)
                result.applied[key] = "deleted"
            else:
                state.kernel[item.chain] = item.digest
                state.kernel_sets[item.chain] = item.sets
                state.applied[item.chain] = plan.DesiredChain(
                    item.digest, item.body, item.refs, item.sets
                )
                if item.hook and builtin is not None:
                    state.hooks_kernel[builtin] = True
                result.applied[key] = "written"
        written = sum(1 for i in batch if not i.delete)
        LOG.info(
            "iptables applied in namespace %s IPv%d %s: %d chains written, %d deleted",
            self.namespace,
            family,
            table,
            written,
            len(batch) - written,
        )
