"""``netagent-status explain``: why a packet between two ports passes or not.

Run it on the host of the source port (and on the destination's host for the ingress
half tied to that kernel). It reads the running agent's state from the status socket and
the kernel's filter state (``iptables-save -c``, ``ebtables-nft-save -c``, ``ipset save``),
then prints the path, each filter's verdict with the deciding rule and its counter, the
final verdict and any difference between the kernel and the desired state.

Exit codes: 0 pass, 1 drop, 2 usage or configuration error, 3 no agent answers, 4 the
verdict could not be determined (a rule the explainer does not model).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from netagent.agent import status
from netagent.explain import kernel, render, snapshot, trace
from netagent.explain.result import PASS, Explanation
from netagent.linux import conntrack, ebtables_saved, filter_dump

EXIT_PASS = 0
EXIT_DROP = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_UNKNOWN = 4


def parser() -> argparse.ArgumentParser:
    """The argument parser of the ``explain`` subcommand."""
    p = argparse.ArgumentParser(
        prog="netagent-status explain",
        description="Explain why a packet from one port to another passes or drops.",
        epilog="Other arguments (--config-file, --config-dir) locate state_path.",
    )
    p.add_argument("--from", dest="source", required=True, help="source port id or IP")
    p.add_argument("--to", dest="destination", required=True, help="destination port id or IP")
    p.add_argument("--proto", required=True, help="tcp, udp, icmp or a protocol number")
    p.add_argument("--port", type=int, help="destination port (tcp/udp/sctp/...)")
    p.add_argument("--icmp-type", type=int, help="ICMP type (default echo request)")
    p.add_argument("--icmp-code", type=int, help="ICMP code (default 0)")
    p.add_argument("--ethertype", choices=("IPv4", "IPv6"), help="family (default: from IPs)")
    p.add_argument("--source-ip", help="send from this address instead (checks anti-spoofing)")
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    p.add_argument(
        "--no-kernel", action="store_true", help="desired state only: read no kernel state"
    )
    p.add_argument("--state-path", help="the agent's [DEFAULT] state_path")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait")
    return p


def read_kernel(backend: str, namespace: str | None = None) -> kernel.KernelState:
    """The filter state of ``namespace`` (None: this process's)."""
    state = kernel.KernelState()
    for family in (4, 6):
        text = filter_dump.iptables_filter(namespace, backend, family)
        state.iptables[family] = kernel.parse_iptables_save(text)
    state.ebtables = ebtables_saved.parse_save(
        filter_dump.ebtables_nat(namespace), "PREROUTING", "na-PREROUTING"
    )
    state.ipsets = kernel.parse_ipset_save(filter_dump.ipsets(namespace))
    state.conntrack = conntrack.entries(namespace)
    return state


def load(doc: dict[str, Any]) -> snapshot.Snapshot:
    """The snapshot in a status document.

    :raises ValueError: the agent sent none (too old, or not converged yet) or a bad one
    """
    if "explain" not in doc:
        raise ValueError("the agent's status has no explain section (first pass not done?)")
    drivers = doc.get("drivers", {})
    return snapshot.parse(doc["explain"], drivers.get("firewall", {}), drivers.get("l2"))


def run(
    doc: dict[str, Any], query: trace.Query, namespace: str | None = None, use_kernel: bool = True
) -> Explanation:
    """Explain ``query`` with the agent's document and the kernel of ``namespace``.

    :raises ValueError: bad document or query (:class:`~netagent.explain.trace.ExplainError`)
    :raises OSError: a save tool failed
    """
    snap = load(doc)
    state = None
    if use_kernel and "backend" in snap.firewall:
        state = read_kernel(str(snap.firewall["backend"]), namespace)
    return trace.explain(snap, query, state)


def main(argv: Sequence[str]) -> int:
    from netagent.cmd import status as status_cmd  # noqa: PLC0415 - shared option handling

    args, rest = parser().parse_known_args(argv)
    query = trace.Query(
        source=args.source,
        destination=args.destination,
        protocol=args.proto,
        port=args.port,
        icmp_type=args.icmp_type,
        icmp_code=args.icmp_code,
        ethertype=args.ethertype,
        source_ip=args.source_ip,
    )
    try:
        path = status.socket_path(status_cmd.state_path(args, rest))
    except Exception as exc:
        print(f"netagent-status explain: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        doc = status.query(path, args.timeout)
    except status.StatusUnavailableError as exc:
        print(f"netagent-status explain: {exc}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    try:
        exp = run(doc, query, use_kernel=not args.no_kernel)
    except (ValueError, OSError) as exc:
        print(f"netagent-status explain: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(exp.to_dict(), indent=2, sort_keys=True))
    else:
        print(render.render(exp))
    if exp.verdict == PASS:
        return EXIT_PASS
    return EXIT_DROP if exp.verdict == "drop" else EXIT_UNKNOWN
