"""Chains rendered by the compiler for the kernel-comparison tests (fixed ids).

``python -m tests.unit.explain.saved_chains`` prints the restore input; the files in
``data/`` are what ``iptables-{nft,legacy}-save -c -t filter`` printed after loading it
in a scratch namespace (the ipset ``na4...`` created first), kept as fixtures.
"""

from __future__ import annotations

import ipaddress

from netagent.drivers.iptables_firewall import compiler as comp
from netagent.linux.iptables import plan
from netagent.linux.iptables.rules import Rule
from netagent.model.secgroup import Direction, EtherType, SecurityGroup, SecurityGroupRule

GID = "5e5e5e5e-0000-4000-8000-000000000001"
RID = "5e5e5e5e-0000-4000-8000-000000000002"
MARK = 0x1000000


def chains() -> dict[str, list[Rule]]:
    def rule(proto: int | None, **kw: object) -> SecurityGroupRule:
        return SecurityGroupRule(None, GID, Direction.INGRESS, EtherType.IPV4, proto, **kw)  # type: ignore[arg-type]

    group = SecurityGroup(
        GID,
        rules=(
            rule(6, port_range_min=20, port_range_max=30,
                 remote_ip_prefix=ipaddress.ip_network("192.0.2.0/25")),
            rule(1, icmp_type=8, icmp_code=0, remote_group_id=RID),
            rule(17, port_range_min=53, port_range_max=53),
            rule(None),
            rule(47),
            rule(1),
        ),
    )  # fmt: skip
    profile = "na-pi-x"
    out = {
        comp.group_chain(Direction.INGRESS, GID): comp.group_rules(
            group, Direction.INGRESS, 4, MARK
        ),
        profile: comp.profile_rules(Direction.INGRESS, 4, True, [GID], MARK),
        "na-FORWARD": comp.hook_rules(4),
        "na-accept": comp.accept_rules(MARK),
        "na-egress": comp.dispatch_rules("e"),
        "na-ingress": [],
    }
    out["na-e-0"] = comp.bucket_rules("e", [("tap0123456789a", profile), ("tap0123456789b", None)])
    for digit in comp.HEX_DIGITS[1:]:
        out[f"na-e-{digit}"] = []
    return out


def restore_input() -> str:
    lines = ["*filter"] + [f":{name} - [0:0]" for name in chains()]
    for name, rules in chains().items():
        lines += plan.render_chain(name, 4, rules).lines
    lines += ["-A FORWARD -m comment --comment na:hook -j na-FORWARD", "COMMIT", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(restore_input(), end="")
