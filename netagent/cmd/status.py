"""``netagent-status``: what the running agent has wired, and whether it has converged.

``netagent-status explain ...`` is :mod:`netagent.cmd.explain`.

Exit codes: 0 the agent answered (and, with ``--check``, has converged); 1 with ``--check``
when it has not converged; 3 when no agent answers; 2 for usage or configuration errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from netagent.agent import status
from netagent.common.exceptions import NetagentError
from netagent.conf import agent as agent_conf
from netagent.ovs.flows import FlowTable

EXIT_NOT_CONVERGED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netagent-status",
        description="Show the ports and networks of the running netagent agent.",
        epilog="Other arguments (--config-file, --config-dir) locate state_path. "
        "'netagent-status explain --help': why a packet between two ports passes or not.",
    )
    parser.add_argument("--state-path", help="the agent's [DEFAULT] state_path")
    parser.add_argument("--json", action="store_true", help="print the raw JSON document")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 unless the agent has converged"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait")
    parser.add_argument(
        "--id", dest="resource", help="only the ports and networks whose id starts with this"
    )
    return parser


def state_path(args: argparse.Namespace, rest: Sequence[str]) -> str:
    """``--state-path``, else ``state_path`` from the configuration files in ``rest``."""
    if args.state_path:
        return str(args.state_path)
    conf = cfg.ConfigOpts()
    conf.register_opts(agent_conf.DEFAULT_OPTS)
    conf(args=list(rest), project="netagent", default_config_files=[])
    return str(conf.state_path)


def _flag(value: Any) -> str:
    return "yes" if value else "no"


def _router_details(router: dict[str, Any] | None) -> list[str]:
    """What the L3 driver built for a router (its ``describe()`` entry)."""
    if not router:
        return []
    lines = [f"  namespace {router.get('namespace')}"]
    for iface in router.get("interfaces", []):
        lines.append(
            f"  {iface.get('device')} ({iface.get('host_device')}, mtu {iface.get('mtu')}): "
            + " ".join(iface.get("addresses", []))
        )
    for route in router.get("routes", []):
        via = f" via {route['via']}" if route.get("via") else ""
        lines.append(
            f"  route table {route.get('table')} {route.get('destination')}{via}"
            f" dev {route.get('device')}"
        )
    for rule in router.get("rules", []):
        lines.append(
            f"  rule {rule.get('priority')}: from {rule.get('from')} lookup {rule.get('table')}"
        )
    for fip in router.get("floating_ips", []):
        lines.append(f"  floating IP {fip.get('floating')} -> {fip.get('fixed')}")
    for chain, rules in (router.get("nat") or {}).items():
        lines += [f"  nat {chain}: {rule}" for rule in rules]
    return lines


def _switch_port_details(entry: Any) -> list[str]:
    """A port's switch details from the L2 driver (Open vSwitch: ofport, local VLAN and
    its flows with their counters)."""
    if not isinstance(entry, dict) or "ofport" not in entry:
        return []
    lines = [
        f"  ofport {entry.get('ofport')} on {entry.get('bridge')}, "
        f"local VLAN {entry.get('local_vlan')}"
        + ("" if entry.get("admin_state_up", True) else " (admin down: dead VLAN)")
    ]
    for flow in entry.get("flows", []):
        installed = flow.get("installed")
        state = (
            "unknown"
            if installed is None
            else f"{flow.get('packets')} packets"
            if installed
            else "MISSING"
        )
        lines.append(
            f"  flow {flow.get('bridge')} {flow.get('flow')} cookie {flow.get('cookie')}: {state}"
        )
    if entry.get("flows_error"):
        lines.append(f"  flows unreadable: {entry['flows_error']}")
    return lines


def refresh_switch_flows(doc: dict[str, Any]) -> None:
    """Replace the per-port flow counters of an Open vSwitch agent's document (read by the
    agent after its last pass) with ovs-vswitchd's now, for the bridges this process can
    reach (their OpenFlow sockets are root's); the others keep the agent's figures."""
    l2 = (doc.get("drivers") or {}).get("l2") or {}
    live: dict[str, dict[int, Any]] = {}
    for bridge, target in (l2.get("flow_targets") or {}).items():
        try:
            live[bridge] = FlowTable(str(bridge), str(target)).stats(0)
        except (NetagentError, ValueError):
            continue
    for entry in (l2.get("ports") or {}).values():
        for flow in entry.get("flows", []):
            found = live.get(flow.get("bridge"))
            if found is None:
                continue
            try:
                stats = found.get(int(flow["cookie"], 16))
            except (KeyError, TypeError, ValueError):
                continue
            flow["installed"] = stats is not None
            flow["packets"] = stats.packets if stats is not None else None
            flow["bytes"] = stats.bytes if stats is not None else None
            entry.pop("flows_error", None)


def render(doc: dict[str, Any], resource: str | None = None) -> str:
    """A readable table of a status document.

    :param resource: keep only ports/networks whose id starts with this.
    """
    ports = [p for p in doc.get("ports", []) if not resource or p["id"].startswith(resource)]
    networks = [n for n in doc.get("networks", []) if not resource or n["id"].startswith(resource)]
    counters = doc.get("counters", {})
    lines = [
        f"host {doc.get('host')}  converged: {_flag(doc.get('converged'))}  "
        f"source: {doc.get('origin') or '-'}",
        f"passes {counters.get('passes', 0)}, full syncs {counters.get('full_syncs', 0)}, "
        f"last full sync {_seconds(counters.get('last_full_sync_duration'))}, "
        f"failures {counters.get('failures', 0)}, "
        f"pending retries {counters.get('pending_retries', 0)}",
        f"integrity checks {counters.get('integrity_checks', 0)}, "
        f"repairs {counters.get('integrity_repairs', 0)}",
    ]
    last = doc.get("last_integrity_repair")
    if last:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last.get("at", 0)))
        lines.append(f"last repair at {when}:")
        lines += [f"  {line}" for line in last.get("found", [])]
    lines += [
        "",
        f"{'PORT':36}  {'DEVICE':15}  {'NETWORK':36}  FILTERED WIRED CONVERGED  ERROR",
    ]
    switch_ports = (doc.get("drivers", {}).get("l2", {}) or {}).get("ports", {})
    for port in ports:
        error = port.get("error") or (
            "waiting for device" if port.get("waiting_for_device") else ""
        )
        lines.append(
            f"{port['id']:36}  {port['device']:15}  {port['network']:36}  "
            f"{_flag(port['filtered']):8} {_flag(port['wired']):5} "
            f"{_flag(port['converged']):9}  {error}"
        )
        lines += _switch_port_details(switch_ports.get(port["id"]))
    lines += ["", f"{'NETWORK':36}  {'TYPE':6} {'SEG':>8}  READY  DEVICES / PEERS"]
    for net in networks:
        peers = ", ".join(f"{h}={ip}" for h, ip in sorted(net.get("tunnel_peers", {}).items()))
        lines.append(
            f"{net['id']:36}  {net['type']:6} {net.get('segmentation_id') or '-':>8}  "
            f"{_flag(net['ready']):5}  {' '.join(net['devices']) or '-'}"
            + (f" / {peers}" if peers else "")
            + (f"  ERROR {net['error']}" if net.get("error") else "")
        )
    built = {
        r.get("id"): r
        for r in (doc.get("drivers", {}).get("l3", {}) or {}).get("routers", [])
        if isinstance(r, dict)
    }
    for router in doc.get("routers", []):
        if resource and not router["id"].startswith(resource):
            continue
        lines.append(
            f"router {router['id']} ready: {_flag(router['ready'])}"
            + (f"  ERROR {router['error']}" if router.get("error") else "")
        )
        lines += _router_details(built.get(router["id"]))
    for group in doc.get("security_groups", []):
        if resource and not group["id"].startswith(resource):
            continue
        kind = "stateful" if group["stateful"] else "stateless"
        lines.append(f"security group {group['id']} ({kind})")
        lines += [f"  {rule}" for rule in group["rules"]]
    if doc.get("file_error"):
        lines.append(f"state file refused (last good version kept): {doc['file_error']}")
    for error in doc.get("source_errors", []):
        lines.append(f"state: {error}")
    return "\n".join(lines)


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{value:.3f} s"


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["explain"]:
        from netagent.cmd import explain  # noqa: PLC0415 - only this subcommand needs it

        return explain.main(argv[1:])
    args, rest = _parser().parse_known_args(argv)
    try:
        path = status.socket_path(state_path(args, rest))
    except cfg.Error as exc:
        print(f"netagent-status: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        doc = status.query(path, args.timeout)
    except status.StatusUnavailableError as exc:
        print(f"netagent-status: {exc}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    refresh_switch_flows(doc)
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print(render(doc, args.resource))
    if args.check and not doc.get("converged"):
        return EXIT_NOT_CONVERGED
    return 0


if __name__ == "__main__":
    sys.exit(main())
