"""The iptables manager on the real kernel, both backends, in test namespaces only."""

from __future__ import annotations

import subprocess

from netagent.linux.iptables import (
    ACCEPT,
    DROP,
    RETURN,
    Conntrack,
    CTZone,
    DPortRange,
    Icmp,
    IptablesManager,
    Jump,
    Proto,
    Rule,
)
from tests.functional.iptables.conftest import A6, B4, B6, Pair, ping, tcp_connect


def save(ns: str, backend: str, family: int = 4, table: str = "filter") -> str:
    tool = f"{'ip6tables' if family == 6 else 'iptables'}-{backend}-save"
    return subprocess.run(
        ["ip", "netns", "exec", ns, tool, "-t", table],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout


def rules_of(text: str, chain: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"-A {chain} ")]


def iptables(ns: str, backend: str, *args: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", ns, f"iptables-{backend}", *args], check=True, timeout=10
    )


def filter_b(mgr: IptablesManager, blocked_port: int) -> None:
    for family in (4, 6):
        mgr.set_chain(
            family,
            "filter",
            "na-in",
            [
                Rule((Conntrack(frozenset({"ESTABLISHED", "RELATED"})),), ACCEPT),
                Rule((Proto(6), DPortRange(blocked_port, blocked_port)), DROP),
                Rule((Proto(1 if family == 4 else 58), Icmp(8 if family == 4 else 128)), ACCEPT),
                Rule((), RETURN),
            ],
        )
        mgr.set_jumps(family, "filter", "INPUT", [Rule((), Jump("na-in"))])


def test_chain_drops_and_accepts_traffic(pair: Pair, backend: str, tcp_server) -> None:
    tcp_server(5001)
    tcp_server(5002)
    mgr = IptablesManager(pair.b, backend=backend)
    filter_b(mgr, 5001)
    assert mgr.apply().ok
    assert ping(pair.a, B4) and ping(pair.a, B6)
    assert not tcp_connect(pair.a, B4, 5001)
    assert tcp_connect(pair.a, B4, 5002)
    filter_b(mgr, 5002)
    result = mgr.apply()
    assert result.ok
    assert [(f, t) for f, t, _ in result.inputs] == [(4, "filter"), (6, "filter")]
    assert all("INPUT" not in text for _, _, text in result.inputs)  # hook unchanged
    assert tcp_connect(pair.a, B4, 5001)
    assert not tcp_connect(pair.a, B4, 5002)
    first = save(pair.b, backend).splitlines()
    assert next(x for x in first if x.startswith("-A INPUT")).endswith("-j na-INPUT")
    assert A6  # IPv6 path exercised by ping above


def test_one_changed_chain_rewrites_only_that_chain(pair: Pair, backend: str) -> None:
    mgr = IptablesManager(pair.b, backend=backend, verify_interval=None)
    names = [f"na-t{i}" for i in range(5)]
    for i, name in enumerate(names):
        mgr.set_chain(4, "filter", name, [Rule((Proto(6), DPortRange(100 + i, 100 + i)), DROP)])
    mgr.set_jumps(4, "filter", "FORWARD", [Rule((), Jump(n)) for n in names])
    assert mgr.apply().ok
    before = save(pair.b, backend)
    mgr.set_chain(4, "filter", "na-t2", [Rule((Proto(17), DPortRange(7, 9)), ACCEPT)])
    result = mgr.apply()
    assert result.ok
    assert [(f, t) for f, t, _ in result.inputs] == [(4, "filter")]
    text = result.inputs[0][2].splitlines()
    assert text[0] == "*filter" and text[-1] == "COMMIT"
    assert all(" na-t2" in line for line in text[1:-1]), text
    after = save(pair.b, backend)
    for name in names:
        if name != "na-t2":
            assert rules_of(before, name) == rules_of(after, name)
    changed = rules_of(after, "na-t2")
    assert len(changed) == 1 and "--dport 7:9" in changed[0] and "-j ACCEPT" in changed[0]
    assert mgr.apply().inputs == []  # nothing changed: no restore at all


def test_out_of_band_damage_is_repaired(pair: Pair, backend: str) -> None:
    mgr = IptablesManager(pair.b, backend=backend, verify_interval=0)
    mgr.set_chain(4, "filter", "na-x", [Rule((Proto(6),), DROP), Rule((), RETURN)])
    mgr.set_chain(4, "filter", "na-y", [Rule((Proto(17),), DROP)])
    mgr.set_jumps(4, "filter", "INPUT", [Rule((), Jump("na-x"))])
    assert mgr.apply().ok
    good = save(pair.b, backend)
    iptables(pair.b, backend, "-F", "na-x")
    iptables(pair.b, backend, "-F", "na-y")
    iptables(pair.b, backend, "-X", "na-y")
    iptables(pair.b, backend, "-D", "INPUT", "1")
    iptables(pair.b, backend, "-I", "INPUT", "1", "-j", "ACCEPT")
    result = mgr.apply()
    assert result.ok
    assert {k.chain for k in result.applied} == {"na-x", "na-y", "na-INPUT"}
    repaired = save(pair.b, backend)
    for chain in ("na-x", "na-y", "na-INPUT"):
        assert rules_of(repaired, chain) == rules_of(good, chain)
    assert rules_of(repaired, "INPUT")[0].endswith("-j na-INPUT")
    # A fresh manager (agent restart) adopts the same state without rewriting anything.
    again = IptablesManager(pair.b, backend=backend)
    again.set_chain(4, "filter", "na-x", [Rule((Proto(6),), DROP), Rule((), RETURN)])
    again.set_chain(4, "filter", "na-y", [Rule((Proto(17),), DROP)])
    again.set_jumps(4, "filter", "INPUT", [Rule((), Jump("na-x"))])
    assert again.apply().inputs == []


def test_edit_keeping_count_and_first_rule_is_repaired(pair: Pair, backend: str) -> None:
    mgr = IptablesManager(pair.b, backend=backend, verify_interval=None)
    rules = [Rule((Proto(6),), DROP), Rule((Proto(17),), DROP), Rule((), RETURN)]
    mgr.set_chain(4, "filter", "na-x", rules)
    assert mgr.apply().ok
    good = rules_of(save(pair.b, backend), "na-x")
    assert ["na:" in line for line in good] == [True, False, False]  # hash on rule 1 only
    assert mgr.verify() == set()  # records the chain's saved lines
    iptables(pair.b, backend, "-R", "na-x", "2", "-j", "ACCEPT")
    assert {k.chain for k in mgr.verify()} == {"na-x"}
    result = mgr.apply()
    assert result.ok and set(result.applied) == {(4, "filter", "na-x")}
    assert rules_of(save(pair.b, backend), "na-x") == good
    assert mgr.verify() == set() and mgr.apply().inputs == []


def test_bad_chain_fails_alone(pair: Pair, backend: str) -> None:
    mgr = IptablesManager(pair.b, backend=backend)
    for i in range(6):
        mgr.set_chain(4, "filter", f"na-good{i}", [Rule((Proto(6),), DROP)])
    mgr.set_chain(4, "filter", "na-bad-jump", [Rule((), Jump("na-missing"))])
    mgr.set_chain(4, "filter", "na-bad-ct", [Rule((), CTZone(5))])  # CT only in raw
    result = mgr.apply()
    assert {k.chain for k in result.failed} == {"na-bad-jump", "na-bad-ct"}
    assert {k.chain for k in result.applied} == {f"na-good{i}" for i in range(6)}
    text = save(pair.b, backend)
    assert all(len(rules_of(text, f"na-good{i}")) == 1 for i in range(6))
    assert ":na-bad-ct" not in text
    mgr.remove_chain(4, "filter", "na-bad-ct")
    mgr.set_chain(4, "filter", "na-bad-jump", [Rule((), Jump("na-good0"))])
    assert mgr.apply().ok
    assert rules_of(save(pair.b, backend), "na-bad-jump")


def test_removed_chains_and_hook_are_deleted(pair: Pair, backend: str) -> None:
    mgr = IptablesManager(pair.b, backend=backend)
    for family in (4, 6):
        mgr.set_chain(family, "raw", "na-z", [Rule((), CTZone(7))])
        mgr.set_jumps(family, "raw", "PREROUTING", [Rule((), Jump("na-z"))])
    assert mgr.apply().ok
    assert "-j CT --zone 7" in save(pair.b, backend, 6, "raw")
    for family in (4, 6):
        mgr.clear_jumps(family, "raw", "PREROUTING")
        mgr.remove_chain(family, "raw", "na-z")
    result = mgr.apply()
    assert result.ok and set(result.applied.values()) == {"deleted"}
    for family in (4, 6):
        assert "na-" not in save(pair.b, backend, family, "raw")


def test_sweep_removes_undeclared_chains(pair: Pair, backend: str) -> None:
    old = IptablesManager(pair.b, backend=backend)
    old.set_chain(4, "filter", "na-old", [Rule((), DROP)])
    old.set_chain(4, "filter", "na-keep", [Rule((), DROP)])
    assert old.apply().ok
    iptables(pair.b, backend, "-N", "foreign")
    new = IptablesManager(pair.b, backend=backend)
    new.set_chain(4, "filter", "na-keep", [Rule((), DROP)])
    assert new.apply().inputs == []  # without sweep nothing undeclared is touched
    result = new.apply(sweep=True)
    assert {k.chain: s for k, s in result.applied.items()} == {"na-old": "deleted"}
    text = save(pair.b, backend)
    assert ":na-old" not in text and ":na-keep" in text and ":foreign" in text
