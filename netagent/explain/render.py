"""Readable text of an :class:`~netagent.explain.result.Explanation`."""

from __future__ import annotations

from netagent.explain.result import Check, Explanation


def _check(check: Check) -> list[str]:
    lines = [
        f"  [{check.verdict}] {check.name}: port {check.port} on {check.host} ({check.source})",
        f"      {check.reason}",
    ]
    if check.rule is not None:
        lines.append(
            f"      rule {check.rule_id or '(no id)'} of security group {check.security_group}: "
            f"{check.rule}"
        )
    for hit in check.implemented_by:
        counter = "" if hit.packets is None else f" [{hit.packets} packets]"
        lines.append(f"      {hit.table} {hit.chain} rule {hit.index}{counter}: {hit.text}")
    for other in check.also_matched:
        lines.append(f"      also matches: {other}")
    if check.conntrack:
        lines.append(f"      conntrack: {check.conntrack}")
    return lines


def render(exp: Explanation) -> str:
    """The text ``netagent-status explain`` prints."""
    pkt = exp.packet
    dst = exp.destination_port or "(no port)"
    lines = [
        f"explain {pkt.summary()} (IPv{pkt.family}, first packet of a flow)",
        f"from port {exp.source_port} to {dst}",
        "",
        "path:",
    ]
    width = max((len(h.host) for h in exp.path), default=4)
    for hop in exp.path:
        lines.append(f"  {hop.host:{width}}  {hop.kind:7} {hop.name:15}  {hop.detail}".rstrip())
    lines += ["", "checks:"]
    for check in exp.checks:
        lines += _check(check)
    lines += ["", f"verdict: {exp.verdict.upper()} ({exp.where})"]
    if exp.mismatches:
        lines.append("mismatches (kernel differs from the desired state):")
        lines += [f"  {m.host}: {m.what}: {m.detail}" for m in exp.mismatches]
    else:
        lines.append("mismatches: none on the chains, hooks and ipsets this packet meets here")
    if exp.live:
        lines.append(
            f"conntrack: {len(exp.live)} entr{'y' if len(exp.live) == 1 else 'ies'} of this flow"
            " here: a live connection's packets pass as ESTABLISHED whatever the rules say"
            " now, until it ends or times out"
        )
        lines += [f"  {entry}" for entry in exp.live]
    lines += [f"note: {n}" for n in exp.notes]
    return "\n".join(lines)
