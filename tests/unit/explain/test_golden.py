"""Golden output of ``explain`` on the small topology, tied to a synthetic kernel state.

The kernel state is what the driver would have applied on host-a (every chain rendered
by the same code, every rule counted 7 packets), so the text shows counters and no
mismatch; one case tampers with a chain. Set ``NETAGENT_UPDATE_GOLDEN=1`` to rewrite the
files after a deliberate change, then read the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from netagent.common import names
from netagent.explain import kernel, render, rulesets, trace
from netagent.linux import ebtables_saved
from netagent.linux.iptables import plan
from tests.unit.explain import topology as t

GOLDEN = Path(__file__).with_name("golden")


def _kernel(tamper: str | None = None) -> kernel.KernelState:
    snap = t.snap()
    state = kernel.KernelState(ipsets={})
    eb_lines = []
    for family in (4, 6):
        rs = rulesets.build(snap, "host-a", family, snap.planned)
        lines = []
        for name, rules in rs.chains.items():
            if name == rulesets.IPT_HOOK:
                lines.append("[7:700] -A FORWARD -m comment --comment na:hook -j na-FORWARD")
                continue
            lines += [f"[7:700] {line}" for line in plan.render_chain(name, family, rules).lines]
        text = "\n".join(lines)
        if tamper is not None and family == 4:
            changed = tamper.replace(" -j ", " -p tcp -m tcp --dport 9 -j ")
            text = text.replace(f"] {tamper}\n", f"] {changed}\n", 1)
        state.iptables[family] = kernel.parse_iptables_save(text)
        assert state.ipsets is not None
        for (rid, fam), members in snap.members.items():
            if fam == family:
                name = names.ipset_name(4 if fam == 4 else 6, rid)
                state.ipsets[name] = frozenset(str(m) for m in members)
        if family == 4:
            for chain, eb_rules in rs.eb_chains.items():
                eb_lines.append(f":{chain} {'ACCEPT' if chain == 'PREROUTING' else 'RETURN'}")
                eb_lines += [f"[7:700] -A {chain} {r.rendered()}" for r in eb_rules]
    state.ebtables = ebtables_saved.parse_save("\n".join(eb_lines), "PREROUTING", "na-PREROUTING")
    return state


CASES = {
    "same_host_pass_by_remote_group": trace.Query(t.VM3, t.VM1, "tcp", 22),
    "same_host_default_deny": trace.Query(t.VM1, t.VM3, "udp", 53),
    "cross_host_icmp": trace.Query("192.0.2.10", "192.0.2.20", "icmp"),
    "spoofed_source": trace.Query(t.VM1, t.VM3, "tcp", 22, source_ip="192.0.2.99"),
    "stateless_any_protocol": trace.Query(t.VM1, t.VM4, "47"),
}


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("NETAGENT_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"golden {path} differs"


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_text(case: str) -> None:
    exp = trace.explain(t.snap(), CASES[case], _kernel())
    assert not exp.mismatches
    _check(f"{case}.txt", render.render(exp) + "\n")


def test_golden_json() -> None:
    exp = trace.explain(t.snap(), CASES["cross_host_icmp"], _kernel())
    _check("cross_host_icmp.json", json.dumps(exp.to_dict(), indent=2, sort_keys=True) + "\n")


def test_mismatch_is_reported_and_counters_of_the_changed_chain_are_not_trusted() -> None:
    exp = trace.explain(t.snap(), CASES["same_host_default_deny"], _kernel())
    profile_drop = exp.checks[2].implemented_by[0]
    assert profile_drop.packets == 7
    tampered = _kernel(tamper=profile_drop.text)
    exp = trace.explain(t.snap(), CASES["same_host_default_deny"], tampered)
    assert [m.what for m in exp.mismatches] == [f"iptables IPv4 filter chain {profile_drop.chain}"]
    assert exp.checks[2].implemented_by[0].packets is None
    _check("mismatch.txt", render.render(exp) + "\n")


def test_live_connections_of_the_flow_are_shown() -> None:
    import ipaddress  # noqa: PLC0415

    from netagent.linux import conntrack  # noqa: PLC0415

    state = _kernel()
    src, dst = ipaddress.ip_address("192.0.2.30"), ipaddress.ip_address("192.0.2.10")
    other = ipaddress.ip_address("192.0.2.40")
    state.conntrack = [
        conntrack.Entry(4, 4097, 6, src, dst, b"", 40000, 22, 3),
        conntrack.Entry(4, 4097, 6, src, dst, b"", 40001, 80),  # another port
        conntrack.Entry(4, 4097, 6, other, dst, b"", 40002, 22),  # another source
        conntrack.Entry(4, 4097, 17, src, dst, b"", 40003, 22),  # another protocol
    ]
    exp = trace.explain(t.snap(), CASES["same_host_pass_by_remote_group"], state)
    assert exp.live == ("zone 4097, source port 40000, ESTABLISHED",)
    text = render.render(exp)
    assert "conntrack: 1 entry of this flow here" in text
    assert exp.to_dict()["conntrack_entries"] == list(exp.live)
    assert trace.explain(t.snap(), CASES["same_host_pass_by_remote_group"], None).live is None
