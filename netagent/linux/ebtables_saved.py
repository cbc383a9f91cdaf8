"""Reading ``ebtables-nft-save`` output back, for the integrity check of netagent's chains.

ebtables rules carry no comments, so the check compares rule content: each rule is
reduced to a canonical form in which the two spellings of one rule agree -- the one
netagent renders (:meth:`netagent.linux.ebtables.EbRule.render`) and the one the save
tool prints (options in its own order, ICMP types by name, ``143/0:255``, protocols by
name from ``/etc/protocols``). Pure functions, no kernel access.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from dataclasses import dataclass, field

from netagent.common.memo import pass_memo

#: A rule in canonical form: its (option, value) pairs, sorted; the target included.
Canonical = tuple[tuple[str, str], ...]

# libxtables names ebtables-nft-save prints for whole ICMP types (all codes).
_ICMP4 = {
    "echo-reply": 0,
    "destination-unreachable": 3,
    "source-quench": 4,
    "redirect": 5,
    "echo-request": 8,
    "router-advertisement": 9,
    "router-solicitation": 10,
    "time-exceeded": 11,
    "parameter-problem": 12,
    "timestamp-request": 13,
    "timestamp-reply": 14,
    "address-mask-request": 17,
    "address-mask-reply": 18,
}
_ICMP6 = {
    "destination-unreachable": 1,
    "packet-too-big": 2,
    "time-exceeded": 3,
    "parameter-problem": 4,
    "echo-request": 128,
    "echo-reply": 129,
    "router-solicitation": 133,
    "router-advertisement": 134,
    "neighbour-solicitation": 135,
    "neighbour-advertisement": 136,
    "redirect": 137,
}
_PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "ipv6-icmp": 58, "icmpv6": 58}
_NETS = frozenset({"--ip-src", "--ip-dst", "--ip6-src", "--ip6-dst", "--arp-ip-src"})
_MACS = frozenset({"-s", "--arp-mac-src"})
_COUNTERS = re.compile(r"\[(\d+):\d+\] ")


@functools.lru_cache(maxsize=256)
def _proto(value: str) -> str:
    if value.isdigit():
        return str(int(value))
    number = _PROTOCOLS.get(value)
    if number is None:
        try:
            number = socket.getprotobyname(value)
        except OSError:
            return value
    return str(number)


def _icmp(value: str, names: dict[str, int]) -> str:
    if value in names:
        return f"{names[value]}/0:255"
    kind, _, codes = value.partition("/")
    if not kind.isdigit():
        return value
    return f"{int(kind)}/{codes or '0:255'}"


@pass_memo
def _value(option: str, value: str) -> str:
    if option in _NETS:
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            return value
    if option in _MACS:
        return value.lower()
    if option in ("--ip-proto", "--ip6-proto"):
        return _proto(value)
    if option == "--ip-icmp-type":
        return _icmp(value, _ICMP4)
    if option == "--ip6-icmp-type":
        return _icmp(value, _ICMP6)
    return value


@pass_memo
def canonical(body: str) -> Canonical:
    """The canonical form of a rule body (the text after ``-A CHAIN``); memoised for the
    last two passes (:mod:`netagent.common.memo`; the desired side keeps its own forms per
    chain, and :func:`parse_save` per saved chain, so this memo holds no stale ruleset)."""
    return _canonical(body)


def _canonical(body: str) -> Canonical:
    pairs: list[tuple[str, str]] = []
    option: str | None = None
    values: list[str] = []
    for token in body.split():
        if token.startswith("-") and len(token) > 1 and not token[1].isdigit():
            if option is not None:
                pairs.append((option, _value(option, " ".join(values))))
            option, values = token, []
        else:
            values.append(token)
    if option is not None:
        pairs.append((option, _value(option, " ".join(values))))
    elif values:
        pairs.append(("", " ".join(values)))
    return tuple(sorted(pairs))


def canonical_line(line: str) -> tuple[str, Canonical]:
    """``-A CHAIN body`` -> (chain, canonical body)."""
    _, chain, body = [*line.split(" ", 2), "", ""][:3]
    return chain, canonical(body)


@dataclass
class SavedTable:
    """netagent's view of one saved ebtables table.

    :ivar chains: netagent chain -> its rules in canonical form, in order
    :ivar policies: netagent chain -> its policy
    :ivar hook: ``True`` when the hook jump is rule 1 of the hooked built-in chain,
        ``False`` when it is there but not first, ``None`` when it is missing
    :ivar packets: netagent chain -> each rule's packet counter, in order (only for a
        save made with ``-c``)
    """

    chains: dict[str, list[Canonical]] = field(default_factory=dict)
    policies: dict[str, str] = field(default_factory=dict)
    hook: bool | None = None
    packets: dict[str, list[int]] = field(default_factory=dict)


def _counted(line: str) -> tuple[int | None, str]:
    """``[12:840] -A ...`` -> (12, ``-A ...``); a line without counters -> (None, line)."""
    match = _COUNTERS.match(line)
    if match is None:
        return None, line
    return int(match.group(1)), line[match.end() :]


#: chain -> (its saved rule bodies, their canonical forms): what :func:`parse_save` read
#: last, so an unchanged chain is not canonicalised again
Memo = dict[str, tuple[tuple[str, ...], list[Canonical]]]


def parse_save(
    text: str, builtin: str, hook_chain: str, prefix: str = "na-", memo: Memo | None = None
) -> SavedTable:
    """Read ``ebtables-nft-save -t TABLE`` output: netagent chains and the hook position.

    :param builtin: the built-in chain netagent hooks into (``PREROUTING``)
    :param hook_chain: netagent's chain jumped to from rule 1 of ``builtin``
    :param memo: the canonical forms of the last read of the same table (updated): a
        periodic check reuses those of the chains that did not change, and the memory
        held is that of the current ruleset only
    """
    saved = SavedTable()
    jump = canonical(f"-j {hook_chain}")
    index = 0
    bodies: dict[str, list[str]] = {}
    for raw in text.splitlines():
        count, line = _counted(raw)
        if line.startswith(":"):
            name, _, policy = line[1:].partition(" ")
            if name.startswith(prefix):
                bodies.setdefault(name, [])
                saved.policies[name] = policy.strip()
        elif line.startswith("-A "):
            _, chain, body = [*line.split(" ", 2), "", ""][:3]
            if chain.startswith(prefix):
                bodies.setdefault(chain, []).append(body)
                if count is not None:
                    saved.packets.setdefault(chain, []).append(count)
            elif chain == builtin:
                if canonical(body) == jump:
                    saved.hook = saved.hook or index == 0
                index += 1
    for chain, lines in bodies.items():
        key = tuple(lines)
        known = memo.get(chain) if memo is not None else None
        if known is not None and known[0] == key:
            saved.chains[chain] = known[1]
            continue
        rules = [_canonical(body) for body in key]
        saved.chains[chain] = rules
        if memo is not None:
            memo[chain] = (key, rules)
    if memo is not None:
        for gone in set(memo) - set(bodies):
            del memo[gone]
    return saved
