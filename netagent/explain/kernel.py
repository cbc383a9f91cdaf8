"""The kernel's applied filter state, as the save tools print it, against the desired one.

Pure functions over text: ``iptables-save -c -t filter`` (rules with their packet
counters), ``ebtables-nft-save -t nat`` and ``ipset save``. A desired chain and the
kernel's are compared rule by rule in a canonical form on which netagent's rendering
and both backends' printing agree (options as (option, value) pairs, sorted; ``-m``
module names and comment quotes dropped; conntrack state lists sorted), so a rule
changed by someone else is seen even where the cheap hash check of the iptables manager
(first rule's comment and the rule count) would not.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping, Sequence

from netagent.linux import conntrack, ebtables_saved
from netagent.linux.ebtables import EbRule
from netagent.linux.iptables import plan
from netagent.linux.iptables.rules import Rule

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Canonical = tuple[tuple[str, str], ...]
_COUNTERS = re.compile(r"^\[(\d+):(\d+)\] ")


@dataclasses.dataclass(frozen=True)
class SavedRule:
    """One rule of a saved chain: its text (without counters), canonical form, packets."""

    text: str
    canonical: Canonical
    packets: int | None


@dataclasses.dataclass
class KernelState:
    """What the kernel of one host holds, read by the caller.

    :ivar iptables: family -> chain -> rules (built-in chains included), from
        ``iptables-save -c -t filter``; a family missing was not read
    :ivar ebtables: ``ebtables-nft-save -t nat`` parsed, or None when not read
    :ivar ipsets: set name -> members (text as ``ipset save`` prints them), or None
    :ivar conntrack: the live conntrack entries, or None when not read
    """

    iptables: dict[int, dict[str, list[SavedRule]]] = dataclasses.field(default_factory=dict)
    ebtables: ebtables_saved.SavedTable | None = None
    ipsets: dict[str, frozenset[str]] | None = None
    conntrack: list[conntrack.Entry] | None = None


def canonical(body: str) -> Canonical:
    """Canonical form of an iptables rule body (the text after ``-A CHAIN``)."""
    pairs: list[tuple[str, str]] = []
    option: str | None = None
    values: list[str] = []

    def flush() -> None:
        if option is None or option == "-m":
            return
        value = " ".join(values).replace('"', "")
        if option == "--ctstate":
            value = ",".join(sorted(value.split(",")))
        pairs.append((option, value))

    for token in body.split():
        if token.startswith("-") and len(token) > 1 and not token[1].isdigit():
            flush()
            option, values = token, []
        else:
            values.append(token)
    flush()
    return tuple(sorted(set(pairs)))


def parse_iptables_save(text: str) -> dict[str, list[SavedRule]]:
    """Chains and rules (with counters when ``-c`` was given) of one saved table."""
    chains: dict[str, list[SavedRule]] = {}
    for raw in text.splitlines():
        if raw.startswith(":"):
            chains.setdefault(raw[1:].split(" ", 1)[0], [])
            continue
        found = _COUNTERS.match(raw)
        line = raw[found.end() :] if found else raw
        if not line.startswith("-A "):
            continue
        _, chain, body = [*line.split(" ", 2), ""][:3]
        packets = int(found.group(1)) if found else None
        chains.setdefault(chain, []).append(SavedRule(line, canonical(body), packets))
    return chains


def parse_ipset_save(text: str) -> dict[str, frozenset[str]]:
    """Set name -> members from ``ipset save`` (``create``/``add`` lines)."""
    sets: dict[str, set[str]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "create":
            sets.setdefault(words[1], set())
        elif len(words) >= 3 and words[0] == "add":
            sets.setdefault(words[1], set()).add(words[2])
    return {name: frozenset(members) for name, members in sets.items()}


def desired_canonical(name: str, family: int, rules: Sequence[Rule]) -> list[Canonical]:
    """The canonical form of each rule of a chain as the manager writes it."""
    chain = plan.render_chain(name, family, rules)
    return [
        canonical(line.split(" ", 2)[2] if line.count(" ") >= 2 else "") for line in chain.lines
    ]


def chain_difference(
    name: str, family: int, rules: Sequence[Rule], saved: Mapping[str, list[SavedRule]]
) -> str | None:
    """Why the kernel's chain differs from ``rules`` (None: it does not)."""
    if name not in saved:
        return "missing"
    want = desired_canonical(name, family, rules)
    have = [r.canonical for r in saved[name]]
    if want == have:
        return None
    if len(want) != len(have):
        return f"{len(have)} rules where {len(want)} are expected"
    index = next(i for i, (a, b) in enumerate(zip(want, have, strict=True)) if a != b)
    return f"rule {index + 1} is {saved[name][index].text!r}, expected another"


def hook_difference(builtin: str, hook: str, saved: Mapping[str, list[SavedRule]]) -> str | None:
    """Why rule 1 of ``builtin`` is not the jump to ``hook`` (None: it is)."""
    rules = saved.get(builtin, [])
    if not rules or dict(rules[0].canonical).get("-j") != hook:
        if any(dict(r.canonical).get("-j") == hook for r in rules):
            return f"the jump to {hook} is not rule 1"
        return f"no jump to {hook}"
    return None


def eb_chain_difference(
    name: str, rules: Sequence[EbRule], saved: ebtables_saved.SavedTable
) -> str | None:
    """Why the kernel's ebtables chain differs from ``rules`` (None: it does not)."""
    if name not in saved.chains:
        return "missing"
    want = [ebtables_saved.canonical(rule.rendered()) for rule in rules]
    have = saved.chains[name]
    if want == have:
        return None
    return f"{len(have)} rules, {sum(1 for w in want if w not in have)} expected ones absent"


def set_difference(
    name: str, members: frozenset[IPNetwork], saved: Mapping[str, frozenset[str]]
) -> str | None:
    """Why the kernel's ipset differs from ``members`` (None: it does not)."""
    if name not in saved:
        return "missing"
    want: set[IPNetwork] = set()
    for net in members:
        if net.prefixlen == 0:  # hash:net refuses /0: the driver writes two /1 halves
            want.update(net.subnets(1))
        else:
            want.add(net)
    have = {ipaddress.ip_network(m, strict=False) for m in saved[name]}
    if want == have:
        return None
    extra = sorted(str(n) for n in have - want)
    absent = sorted(str(n) for n in want - have)
    return f"extra {extra or '-'}, missing {absent or '-'}"
