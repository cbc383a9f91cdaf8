"""Reading the kernel's filter state back and comparing it with the desired chains."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from netagent.explain import kernel
from tests.unit.explain import saved_chains

DATA = Path(__file__).with_name("data")


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_real_save_output_equals_the_rendered_chains(backend: str) -> None:
    saved = kernel.parse_iptables_save((DATA / f"save_{backend}.txt").read_text())
    for name, rules in saved_chains.chains().items():
        assert kernel.chain_difference(name, 4, rules, saved) is None, name
    assert kernel.hook_difference("FORWARD", "na-FORWARD", saved) is None
    assert all(r.packets == 0 for rules in saved.values() for r in rules)


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_a_rule_changed_behind_netagents_back_is_found(backend: str) -> None:
    text = (DATA / f"save_{backend}.txt").read_text()
    changed = text.replace("--dport 53 ", "--dport 54 ", 1)
    assert changed != text
    saved = kernel.parse_iptables_save(changed)
    name, rules = next(iter(saved_chains.chains().items()))
    why = kernel.chain_difference(name, 4, rules, saved)
    assert why is not None and why.startswith("rule 5 is") and "54" in why
    shorter = kernel.parse_iptables_save(
        "\n".join(line for line in text.splitlines() if "--dport 53" not in line)
    )
    assert kernel.chain_difference(name, 4, rules, shorter) == "5 rules where 6 are expected"
    assert kernel.chain_difference("na-nothere", 4, rules, saved) == "missing"


def test_counters_are_read() -> None:
    saved = kernel.parse_iptables_save(
        ":na-x - [0:0]\n[12:3400] -A na-x -p tcp -m tcp --dport 22 -j RETURN\n-A na-x -j DROP\n"
    )
    assert [r.packets for r in saved["na-x"]] == [12, None]


def test_hook_position() -> None:
    first = kernel.parse_iptables_save("-A FORWARD -j na-FORWARD\n-A FORWARD -j ACCEPT\n")
    second = kernel.parse_iptables_save("-A FORWARD -j ACCEPT\n-A FORWARD -j na-FORWARD\n")
    assert kernel.hook_difference("FORWARD", "na-FORWARD", first) is None
    assert kernel.hook_difference("FORWARD", "na-FORWARD", second) == (
        "the jump to na-FORWARD is not rule 1"
    )
    assert kernel.hook_difference("FORWARD", "na-FORWARD", {}) == "no jump to na-FORWARD"


def test_ipset_members_compare_with_zero_prefix_halves() -> None:
    saved = kernel.parse_ipset_save(
        "create na4x hash:net family inet hashsize 1024 maxelem 65536\n"
        "add na4x 192.0.2.10\nadd na4x 0.0.0.0/1\nadd na4x 128.0.0.0/1\n"
        "create na4y hash:net family inet\n"
    )
    want = frozenset(ipaddress.ip_network(n) for n in ("192.0.2.10/32", "0.0.0.0/0"))
    assert kernel.set_difference("na4x", want, saved) is None
    assert kernel.set_difference("na4y", want, saved) is not None
    assert kernel.set_difference("na4z", want, saved) == "missing"


def test_canonical_ignores_module_names_quotes_and_state_order() -> None:
    a = kernel.canonical(
        '-m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "na:1" -j RETURN'
    )
    b = kernel.canonical(
        "-m conntrack --ctstate ESTABLISHED,RELATED -m comment --comment na:1 -j RETURN"
    )
    assert a == b
    assert kernel.canonical("-p udp -m udp --sport 67 -m udp --dport 68 -j RETURN") == (
        kernel.canonical("-p udp -m udp --sport 67 --dport 68 -j RETURN")
    )
