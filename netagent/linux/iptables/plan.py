"""Restore-input building and the cheap kernel check of the iptables manager.

Pure functions, no kernel access: :func:`render_chain` turns typed rules into restore
lines tagged with the chain's hash, :func:`build_input` lays out one table's restore
input from work items and remembers which item every line belongs to, and
:func:`scan_save` reads ``iptables-save`` output for netagent chain headers, hash
comments and hook positions only (rules are never parsed back).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from netagent.common import constants as c
from netagent.linux.iptables import validate as v
from netagent.linux.iptables.rules import Rule, SetMatch

#: Comment of the one rule netagent puts in a built-in chain (the jump to its hook chain).
HOOK_COMMENT = "na:hook"
#: Kernel hash value for a netagent chain whose content is not what netagent wrote.
UNKNOWN = "?"
_HASH_RE = re.compile(r'--comment "?na:([0-9a-f]{16})')


def hook_chain(builtin: str) -> str:
    """netagent's chain hooked first into a built-in chain: ``na-FORWARD`` etc."""
    return f"{c.CHAIN_PREFIX}{builtin}"


HOOK_CHAINS = frozenset(hook_chain(b) for bs in v.BUILTIN_CHAINS.values() for b in bs)


@dataclass(frozen=True)
class DesiredChain:
    """A rendered chain: restore lines, content hash, chains it jumps to, sets it matches."""

    digest: str
    lines: tuple[str, ...]
    refs: frozenset[str]
    sets: frozenset[str] = frozenset()


def render_chain(name: str, family: int, rules: Sequence[Rule]) -> DesiredChain:
    """Render ``rules`` as ``-A name ...`` lines; the first rule carries ``na:<hash>``.

    The hash covers the family and every rule's text, so any change of content or
    order changes it; the kernel check compares it with the first rule's comment and
    the rule count (see :func:`kernel_digest`). Only the first rule and tagged rules
    (``na:<hash>:<tag>``) carry a comment: with iptables-nft each ``-m comment`` is an
    xtables-compat match, which costs about a third of a large restore and a call per
    packet for every rule it traverses.

    :raises ValueError: a rule does not fit the family (names the field)
    """
    parts = [(rule.rendered(family), rule.tag) for rule in rules]
    blob = f"{family}\n" + "\n".join(f"{m}|{t}|{tag or ''}" for (m, t), tag in parts)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    lines = []
    for index, ((matches, target), tag) in enumerate(parts):
        head = f"-A {name} {matches} " if matches else f"-A {name} "
        if tag is not None:
            head += f"-m comment --comment na:{digest}:{tag} "
        elif index == 0:
            head += f"-m comment --comment na:{digest} "
        lines.append(f"{head}{target}")
    refs = frozenset(r for rule in rules if (r := rule.target.chain_reference()) is not None)
    sets = frozenset(m.name for rule in rules for m in rule.matches if isinstance(m, SetMatch))
    return DesiredChain(digest, tuple(lines), refs, sets)


@dataclass
class Item:
    """One unit of work in a table: write a chain whole, or delete it.

    ``hook`` lines insert/remove the jump from a built-in chain into a hook chain.
    """

    chain: str
    delete: bool
    exists: bool = False
    body: tuple[str, ...] = ()
    hook: tuple[str, ...] = ()
    digest: str = ""
    refs: frozenset[str] = field(default_factory=frozenset)
    sets: frozenset[str] = field(default_factory=frozenset)


#: A Neutron Linux bridge agent chain (see :data:`netagent.privileged.iptables.NEUTRON_LB_CHAIN`).
_NEUTRON_LB_RE = re.compile(r"neutron-(?:linuxbri-[A-Za-z0-9_.-]{1,12}|filter-top)")
_BUILTINS = frozenset(b for bs in v.BUILTIN_CHAINS.values() for b in bs)


@dataclass(frozen=True)
class ForeignRemoval:
    """What a takeover removes of the Neutron Linux bridge agent in one table.

    :ivar lines: restore lines: flush every chain, delete the jumps from built-in chains,
        delete every chain (in that order, so no chain is still referenced)
    :ivar chains: the chains found
    :ivar blocked: built-in chain rules jumping into them that netagent does not
        remove (more than a bare ``-j``): nothing is removed while there are any
    """

    lines: tuple[str, ...] = ()
    chains: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()


def foreign_removal(
    text: str,
    is_foreign: Callable[[str], bool],
    removable_jump: Callable[[str], str | None],
    *,
    keep_chain: Callable[[str], bool] = lambda chain: False,
    unhook_first: bool = False,
) -> ForeignRemoval:
    """The removal of another agent's chains (those ``is_foreign`` names) from the save
    output of one table, in the restore grammar iptables and ebtables share.

    A rule of another chain whose target is a foreign chain must go first:
    ``removable_jump`` gives the line that deletes it, or None when netagent does not
    remove such a rule (then it is ``blocked`` and nothing is removed). Rules of foreign
    chains, and of chains ``keep_chain`` names (netagent rewrites its own), are not
    looked at. ``unhook_first`` puts the jump deletions before the flushes.
    """
    chains: list[str] = []
    jumps: list[str] = []
    blocked: list[str] = []
    for line in text.splitlines():
        if line.startswith(":"):
            name = line[1:].split(" ", 1)[0]
            if is_foreign(name):
                chains.append(name)
        elif line.startswith("-A "):
            parts = line.split(" ")
            if "-j" not in parts or is_foreign(parts[1]) or keep_chain(parts[1]):
                continue
            target = len(parts) - parts[::-1].index("-j")  # after the last -j
            if target == len(parts) or not is_foreign(parts[target]):
                continue
            delete = removable_jump(line)
            if delete is None:
                blocked.append(line)
            else:
                jumps.append(delete)
    if not chains or blocked:
        return ForeignRemoval((), tuple(chains), tuple(blocked))
    flushes = [f"-F {c}" for c in chains]
    unhook = jumps + flushes if unhook_first else flushes + jumps
    return ForeignRemoval(tuple(unhook + [f"-X {c}" for c in chains]), tuple(chains))


def _neutron_lb_jump(line: str) -> str | None:
    parts = line.split(" ")
    if len(parts) == 4 and parts[1] in _BUILTINS:
        return f"-D {parts[1]} -j {parts[3]}"
    return None


def neutron_lb_removal(text: str) -> ForeignRemoval:
    """The removal of the Neutron Linux bridge agent's chains from ``iptables-save``
    output of one table (rules are matched whole, never parsed)."""
    return foreign_removal(
        text,
        lambda chain: _NEUTRON_LB_RE.fullmatch(chain) is not None,
        _neutron_lb_jump,
        keep_chain=v.is_owned_chain,
    )


_NEUTRON_LB_ZONE_RE = re.compile(
    r"-A neutron-linuxbri-PREROUTING -i (brq[0-9a-f-]{11}) .*-j CT --zone (\d+)$"
)


def neutron_lb_zones(text: str) -> dict[str, int]:
    """The conntrack zone of each bridge in the Neutron Linux bridge agent's rules of
    ``iptables-save -t raw`` output (its zones are per network: ``-i brq... -j CT``)."""
    zones: dict[str, int] = {}
    for line in text.splitlines():
        match = _NEUTRON_LB_ZONE_RE.match(line)
        if match:
            zones.setdefault(match.group(1), int(match.group(2)))
    return zones


def build_input(
    table: str, items: Sequence[Item], tail: Sequence[str] = ()
) -> tuple[str, list[Item | None]]:
    """Restore input for ``items`` and, per input line (1-based), the item it belongs to.

    Layout: flush every chain believed to exist (``-F``; a ``:chain`` declaration also
    flushes, and costs the same with 500x20 rules in the table) and declare the others
    (creates them), then the rule bodies, then the hook jumps, then ``-X`` of deleted
    chains, so flushes precede jump removal and removal precedes deletion.
    """
    lines: list[str] = [f"*{table}"]
    owners: list[Item | None] = [None, None]  # index 0 unused: lines are 1-based

    def add(line: str, item: Item) -> None:
        lines.append(line)
        owners.append(item)

    for item in items:
        add(f"-F {item.chain}" if item.exists else f":{item.chain} - [0:0]", item)
    for item in items:
        for line in item.body:
            add(line, item)
    for item in items:
        for line in item.hook:
            add(line, item)
    for item in items:
        if item.delete:
            add(f"-X {item.chain}", item)
    for line in tail:
        lines.append(line)
        owners.append(None)
    lines.append("COMMIT")
    owners.append(None)
    return "\n".join(lines) + "\n", owners


def hook_insert(builtin: str) -> str:
    """The line that puts netagent's hook first in ``builtin``."""
    return f"-I {builtin} 1 -m comment --comment {HOOK_COMMENT} -j {hook_chain(builtin)}"


def hook_delete(builtin: str) -> str:
    """The line that removes netagent's hook from ``builtin``."""
    return f"-D {builtin} -m comment --comment {HOOK_COMMENT} -j {hook_chain(builtin)}"


def order_items(items: Iterable[Item]) -> list[Item]:
    """Writes before deletes; a written chain after the written chains it jumps to.

    That order keeps a split batch applicable: the half applied first holds the targets.
    """
    writes = {i.chain: i for i in items if not i.delete}
    deletes = sorted((i for i in items if i.delete), key=lambda i: i.chain)
    done: list[Item] = []
    seen: set[str] = set()

    def visit(item: Item, depth: int) -> None:
        if item.chain in seen:
            return
        seen.add(item.chain)
        for ref in sorted(item.refs):
            if ref in writes and depth < len(writes):
                visit(writes[ref], depth + 1)
        done.append(item)

    for name in sorted(writes):
        visit(writes[name], 0)
    return done + deletes


@dataclass
class KernelChain:
    """One netagent chain as the cheap check saw it.

    :ivar hashes: per rule, the ``na:<hash>`` of its comment (None: no comment)
    :ivar text: digest of the chain's rule lines exactly as ``iptables-save`` printed them
    """

    hashes: list[str | None] = field(default_factory=list)
    text: str = ""


@dataclass
class KernelTable:
    """What the cheap check saw: netagent chains, their hash comments, hook positions."""

    chains: dict[str, KernelChain] = field(default_factory=dict)
    hooks: dict[str, bool] = field(default_factory=dict)


def scan_save(text: str) -> KernelTable:
    """Scan ``iptables-save -t TABLE`` output for what netagent needs to verify.

    Looks only at netagent chain headers, the ``na:<hash>`` comments of rules in
    netagent chains (plus a digest of those chains' lines, to notice later edits), and
    where the hook jumps sit in built-in chains. Rules are never parsed.
    """
    state = KernelTable()
    texts: dict[str, list[str]] = {}
    builtin_index: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith(":"):
            name = line[1:].split(" ", 1)[0]
            if v.is_owned_chain(name) and name not in state.chains:
                state.chains[name] = KernelChain()
                texts[name] = []
        elif line.startswith("-A "):
            name = line[3:].split(" ", 1)[0]
            chain = state.chains.get(name)
            if chain is not None:
                match = _HASH_RE.search(line) if "na:" in line else None
                chain.hashes.append(match.group(1) if match else None)
                texts[name].append(line)
            elif not v.is_owned_chain(name):
                index = builtin_index.get(name, 0)
                builtin_index[name] = index + 1
                if line.endswith(f" -j {hook_chain(name)}"):
                    state.hooks[name] = state.hooks.get(name, False) or index == 0
    for name, chain in state.chains.items():
        chain.text = hashlib.sha256("\n".join(texts[name]).encode()).hexdigest()[:16]
    return state


def kernel_digest(seen: KernelChain, desired: DesiredChain | None) -> str:
    """``desired.digest`` when the kernel chain carries that content, else UNKNOWN.

    "Carries" means: the same number of rules, the first rule commented with the
    digest, and no rule commented with another digest (tagged rules carry it too).
    A chain flushed, deleted, or with rules added or removed, or its first rule
    replaced, fails this; the manager also compares :attr:`KernelChain.text` with the
    previous check to catch a later edit that keeps the rule count and first rule.
    """
    if desired is None or len(seen.hashes) != len(desired.lines):
        return UNKNOWN
    if seen.hashes and seen.hashes[0] != desired.digest:
        return UNKNOWN
    if any(h is not None and h != desired.digest for h in seen.hashes):
        return UNKNOWN
    return desired.digest
