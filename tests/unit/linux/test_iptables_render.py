"""Rendering of typed rules and restore inputs against golden text; validators."""

from __future__ import annotations

import ipaddress

import pytest

from netagent.linux.iptables import (
    ACCEPT,
    DNAT,
    DROP,
    RETURN,
    Conntrack,
    CTZone,
    DPortRange,
    DstNet,
    Icmp,
    InIface,
    Jump,
    MacSource,
    MarkMatch,
    NoTrack,
    OutIface,
    Physdev,
    Proto,
    Reject,
    Rule,
    SetMark,
    SetMatch,
    SPortRange,
    SrcNet,
    plan,
)
from netagent.linux.iptables import validate as v
from netagent.privileged import iptables as priv

NET4 = ipaddress.ip_network("198.51.100.0/24")
NET6 = ipaddress.ip_network("fd00::/64")


@pytest.mark.parametrize(
    ("rule", "family", "golden"),
    [
        (
            Rule((Proto(6), DPortRange(22, 22)), ACCEPT),
            4,
            ("-p tcp -m tcp --dport 22", "-j ACCEPT"),
        ),
        (
            Rule((Proto(17), SPortRange(67, 68), DPortRange(1000, 2000)), DROP),
            4,
            ("-p udp -m udp --sport 67:68 -m udp --dport 1000:2000", "-j DROP"),
        ),
        (Rule((SrcNet(NET4, negate=True),), RETURN), 4, ("! -s 198.51.100.0/24", "-j RETURN")),
        (
            Rule((DstNet(NET6),), Reject()),
            6,
            ("-d fd00::/64", "-j REJECT --reject-with icmp6-port-unreachable"),
        ),
        (
            Rule((Conntrack(frozenset({"RELATED", "ESTABLISHED"})),), ACCEPT),
            4,
            ("-m conntrack --ctstate ESTABLISHED,RELATED", "-j ACCEPT"),
        ),
        (
            Rule((SetMatch("na4abc", "src"),), ACCEPT),
            4,
            ("-m set --match-set na4abc src", "-j ACCEPT"),
        ),
        (
            Rule((Physdev(in_="tap0123456789a", is_bridged=True),), Jump("na-o-0123456789a")),
            4,
            ("-m physdev --physdev-in tap0123456789a --physdev-is-bridged", "-j na-o-0123456789a"),
        ),
        (
            Rule((MacSource("fa:16:3e:00:00:01"),), RETURN),
            4,
            ("-m mac --mac-source FA:16:3E:00:00:01", "-j RETURN"),
        ),
        (
            Rule((Proto(1), Icmp(8, 0)), ACCEPT),
            4,
            ("-p icmp -m icmp --icmp-type 8/0", "-j ACCEPT"),
        ),
        (
            Rule((Proto(58), Icmp(135)), ACCEPT),
            6,
            ("-p ipv6-icmp -m icmp6 --icmpv6-type 135", "-j ACCEPT"),
        ),
        (
            Rule((InIface("brq+"), OutIface("qg-1")), SetMark(1, 0xFFFF)),
            4,
            ("-i brq+ -o qg-1", "-j MARK --set-xmark 0x1/0xffff"),
        ),
        (
            Rule((MarkMatch(2),), NoTrack()),
            4,
            ("-m mark --mark 0x2/0xffffffff", "-j CT --notrack"),
        ),
        (Rule((), CTZone(4097)), 4, ("", "-j CT --zone 4097")),
        (
            Rule((Proto(6),), DNAT(ipaddress.ip_address("fd00::5"), 80)),
            6,
            ("-p tcp", "-j DNAT --to-destination [fd00::5]:80"),
        ),
        (Rule((Proto(47),), Jump("na-x", goto=True)), 4, ("-p gre", "-g na-x")),
    ],
)
def test_rule_golden(rule: Rule, family: int, golden: tuple[str, str]) -> None:
    assert rule.render(family) == golden


@pytest.mark.parametrize(
    ("rule", "family"),
    [
        (Rule((DPortRange(22, 22),), ACCEPT), 4),  # port without protocol
        (Rule((Proto(1), DPortRange(22, 22)), ACCEPT), 4),  # icmp has no ports
        (Rule((Proto(6), Icmp(8)), ACCEPT), 4),
        (Rule((SrcNet(NET6),), ACCEPT), 4),
        (Rule((Proto(1),), ACCEPT), 6),
        (Rule((), DNAT(ipaddress.ip_address("198.51.100.1"))), 6),
    ],
)
def test_rule_family_and_protocol_mismatch(rule: Rule, family: int) -> None:
    with pytest.raises(ValueError):
        rule.render(family)


INJECTIONS = ["a b", "a\nb", 'a"b', "a'b", "a;b", "", "a#b", "a\tb", "a\\b", "x" * 29, "-j"]


@pytest.mark.parametrize("bad", INJECTIONS)
def test_chain_name_injection_rejected(bad: str) -> None:
    if bad == "-j":
        v.chain_name(bad)  # a valid chain name by charset, but not an owned one
        with pytest.raises(ValueError):
            v.owned_chain_name(bad)
        return
    with pytest.raises(ValueError):
        Jump(bad)


@pytest.mark.parametrize(
    "bad", ["tap x", "tap\n", 'tap"', "0123456789abcdef", "", "a++", "..", "+"]
)
def test_interface_injection_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        InIface(bad)


@pytest.mark.parametrize(
    "make",
    [
        lambda: SetMatch("na4 x"),
        lambda: SetMatch("na4x", "src dst"),
        lambda: MacSource("fa:16:3e:00:00:01\n"),
        lambda: Rule((), ACCEPT, tag="rule id"),
        lambda: Rule((), ACCEPT, tag='"'),
        lambda: Conntrack(frozenset({"NEW ESTABLISHED"})),
        lambda: Proto(256),
        lambda: Proto(True),
        lambda: DPortRange(10, 5),
        lambda: CTZone(70000),
        lambda: Reject("icmp-net-unreachable"),
        lambda: Rule(("-j ACCEPT",), ACCEPT),  # type: ignore[arg-type]
        lambda: SrcNet("198.51.100.0/24"),  # type: ignore[arg-type]
    ],
)
def test_field_validation(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_render_chain_golden_and_hash() -> None:
    rules = [Rule((Proto(6), DPortRange(22, 22)), ACCEPT, tag="r1"), Rule((), DROP)]
    chain = plan.render_chain("na-i-0123456789a", 4, rules)
    h = chain.digest
    assert len(h) == 16
    assert chain.lines == (
        f"-A na-i-0123456789a -p tcp -m tcp --dport 22 -m comment --comment na:{h}:r1 -j ACCEPT",
        "-A na-i-0123456789a -j DROP",
    )
    first = plan.render_chain("na-x", 4, rules[::-1])
    assert first.lines == (
        f"-A na-x -m comment --comment na:{first.digest} -j DROP",
        f"-A na-x -p tcp -m tcp --dport 22 -m comment --comment na:{first.digest}:r1 -j ACCEPT",
    )
    assert plan.render_chain("na-other", 4, rules).digest == h
    assert plan.render_chain("na-x", 4, rules[::-1]).digest != h
    assert plan.render_chain("na-x", 6, rules).digest != h


def test_build_input_layout_and_owners() -> None:
    new = plan.Item("na-a", False, False, ("-A na-a -m comment --comment na:0 -j DROP",))
    old = plan.Item("na-b", False, True, ())
    hook = plan.Item("na-FORWARD", False, True, (), (plan.hook_insert("FORWARD"),))
    gone = plan.Item("na-c", True, True, (), ())
    text, owners = plan.build_input("filter", [new, old, hook, gone])
    assert text == (
        "*filter\n"
        ":na-a - [0:0]\n"
        "-F na-b\n"
        "-F na-FORWARD\n"
        "-F na-c\n"
        "-A na-a -m comment --comment na:0 -j DROP\n"
        "-I FORWARD 1 -m comment --comment na:hook -j na-FORWARD\n"
        "-X na-c\n"
        "COMMIT\n"
    )
    assert [o.chain if o else None for o in owners[1:]] == [
        None,
        "na-a",
        "na-b",
        "na-FORWARD",
        "na-c",
        "na-a",
        "na-FORWARD",
        "na-c",
        None,
    ]
    priv.check_restore_input("filter", text)


def test_order_items_puts_targets_first() -> None:
    a = plan.Item("na-a", False, refs=frozenset({"na-b"}))
    b = plan.Item("na-b", False, refs=frozenset({"na-c"}))
    c = plan.Item("na-c", False)
    d = plan.Item("na-d", True)
    assert [i.chain for i in plan.order_items([d, a, b, c])] == ["na-c", "na-b", "na-a", "na-d"]


def test_scan_save() -> None:
    text = """# Generated by iptables-save
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:na-FORWARD - [0:0]
:na-x - [0:0]
:na-empty - [0:0]
:neutron-foo - [0:0]
-A FORWARD -j ACCEPT
-A FORWARD -m comment --comment "na:hook" -j na-FORWARD
-A INPUT -m comment --comment "na:hook" -j na-INPUT
-A na-x -p tcp -m comment --comment "na:0123456789abcdef:r1" -j DROP
-A na-x -j ACCEPT
-A neutron-foo -j DROP
COMMIT
"""
    seen = plan.scan_save(text)
    assert {n: c.hashes for n, c in seen.chains.items()} == {
        "na-FORWARD": [],
        "na-x": ["0123456789abcdef", None],
        "na-empty": [],
    }
    assert seen.hooks == {"FORWARD": False, "INPUT": True}
    edited = plan.scan_save(text.replace("-A na-x -j ACCEPT", "-A na-x -j DROP"))
    assert edited.chains["na-x"].text != seen.chains["na-x"].text
    assert edited.chains["na-empty"].text == seen.chains["na-empty"].text


def test_kernel_digest_first_rule_and_count() -> None:
    rules = [Rule((Proto(6),), DROP), Rule((), ACCEPT, tag="t"), Rule((), DROP)]
    want = plan.render_chain("na-x", 4, rules)
    h = want.digest

    def seen(*hashes: str | None) -> plan.KernelChain:
        return plan.KernelChain(list(hashes), "")

    assert plan.kernel_digest(seen(h, h, None), want) == h
    assert plan.kernel_digest(seen(), want) == plan.UNKNOWN  # flushed
    assert plan.kernel_digest(seen(h, h), want) == plan.UNKNOWN  # a rule deleted
    assert plan.kernel_digest(seen(h, h, None, None), want) == plan.UNKNOWN  # appended
    assert plan.kernel_digest(seen(None, h, None), want) == plan.UNKNOWN  # first replaced
    assert plan.kernel_digest(seen(h, "0" * 16, None), want) == plan.UNKNOWN  # stale tag
    assert plan.kernel_digest(seen(h, h, None), None) == plan.UNKNOWN  # not desired
    empty = plan.render_chain("na-e", 4, [])
    assert plan.kernel_digest(seen(), empty) == empty.digest


@pytest.mark.parametrize(
    "line",
    [
        "-A INPUT -j ACCEPT",
        "-F INPUT",
        ":neutron-x - [0:0]",
        "-X foreign",
        '-A na-x -m comment --comment "x" -j DROP',
        "-A na-x -j DROP # comment",
        "-I FORWARD 1 -j na-x",
        "-D FORWARD -j ACCEPT",
        "*nat",
    ],
)
def test_privileged_grammar_rejects_foreign_lines(line: str) -> None:
    with pytest.raises(priv.IptablesInputError):
        priv.check_restore_input("filter", f"*filter\n{line}\nCOMMIT\n")


def test_netns_name_checked() -> None:
    with pytest.raises(ValueError):
        priv.netns_prefix("../etc")
    assert priv.netns_prefix("natest-a") == ["nsenter", "--net=/run/netns/natest-a", "--"]
