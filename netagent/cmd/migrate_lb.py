"""``netagent-migrate-lb``: what taking over this host's Neutron Linux bridge agent does.

The takeover itself is done by ``netagent-agent`` with ``[agent]
take_over_neutron_linuxbridge = true`` on its first pass, because netagent's filters must
be written in the same atomic restores that remove the old agent's, and those filters come
from the desired state the agent receives (doc/migration.md). This tool reads the host
(never changes it) and prints, for the host it runs on:

* ``--dry-run``: every action the takeover will take (devices renamed in place, bridges
  adopted, conntrack zones kept, chains/sets/ebtables chains removed), and what blocks it
  (old agent still running, VXLAN port or address differing from netagent's
  configuration, wrong drivers). Exit 1 when something blocks it.
* ``--verify``: what is left of the old agent; exit 0 only when nothing is (after the
  takeover, and on a second run: nothing to do).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from oslo_config import cfg

from netagent.cmd import common
from netagent.drivers.linuxbridge import takeover
from netagent.drivers.linuxbridge.iplib_kernel import IpLibKernel
from netagent.drivers.linuxbridge.kernel import VxlanSpec
from netagent.drivers.linuxbridge.links import Links
from netagent.linux import ipset
from netagent.linux.ebtables import EbtablesManager
from netagent.linux.iptables import IptablesManager
from netagent.linux.iptables import backend as backend_mod

PROG = "netagent-migrate-lb"
TABLES = [(family, table) for family in (4, 6) for table in ("filter", "raw", "nat", "mangle")]
OLD_AGENT = "neutron-linuxbridge-agent"


@dataclass
class Plan:
    """The takeover of one host: actions, blockers, and what is left of the old agent."""

    actions: list[str] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)


def old_agent_pids(proc: str = "/proc") -> list[int]:
    """PIDs whose command line runs the Neutron Linux bridge agent."""
    pids = []
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "cmdline"), "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        names = [os.path.basename(a.decode(errors="replace")) for a in argv[:2]]
        # the script itself, or an interpreter running it
        if names[0] == OLD_AGENT or (
            names[0].startswith("python") and len(names) > 1 and names[1] == OLD_AGENT
        ):
            pids.append(int(entry))
    return sorted(pids)


def _devices(conf: cfg.ConfigOpts, plan: Plan) -> None:
    links = Links(IpLibKernel(None).links())
    group = conf.linuxbridge
    for link in sorted(links.values(), key=lambda item: item.name):
        if link.kind == "vxlan" and link.name.startswith(takeover.NEUTRON_VXLAN_PREFIX):
            bridge = links.name_of(link.master) if link.master else "no bridge"
            plan.leftovers.append(f"VXLAN device {link.name} ({bridge})")
            if link.vni is None or not group.local_ip:
                plan.blockers.append(f"{link.name}: [linuxbridge] local_ip is not set")
                continue
            spec = VxlanSpec(vni=link.vni, local=str(group.local_ip), port=group.vxlan_udp_port)
            adoption = takeover.vxlan_adoption(links, spec)
            if isinstance(adoption, str):
                plan.blockers.append(adoption)
            elif adoption is not None:
                plan.actions.append(
                    f"rename {link.name} (ifindex {link.index}, in {bridge}) to "
                    f"{adoption.new_name} in place, learning off; its FDB entries are kept "
                    "and converged to the desired state"
                )
        elif link.kind == "bridge" and link.name.startswith("brq"):
            members = ", ".join(m.name for m in links.members(link.index)) or "no members"
            plan.actions.append(f"adopt bridge {link.name} as it is ({members})")


def _filters(conf: cfg.ConfigOpts, plan: Plan) -> None:
    choice = conf.iptables.backend
    if choice == "auto":
        recorded = backend_mod.read_record(conf.state_path)
        choice = backend_mod.choose(backend_mod.gather(None, recorded)).backend
    ipt = IptablesManager(None, backend=choice, verify_interval=None)
    zones = ipt.neutron_lb_zones()
    for bridge, zone in sorted(zones.items()):
        plan.actions.append(f"keep conntrack zone {zone} for the network of {bridge}")
    for (family, table), removal in ipt.inspect_neutron_lb(TABLES).items():
        where = f"iptables ({choice}) IPv{family} {table}"
        plan.leftovers.append(f"{where}: {len(removal.chains)} chains")
        if removal.blocked:
            plan.blockers.append(
                f"{where}: rules netagent does not remove jump to the old chains: "
                + "; ".join(removal.blocked)
            )
            continue
        plan.actions.append(
            f"{where}: remove {', '.join(removal.chains)} in the restore that writes "
            "netagent's chains"
        )
    eb = EbtablesManager(None).inspect_neutron_lb()
    if eb.chains:
        plan.leftovers.append(f"ebtables nat: {len(eb.chains)} chains")
        if eb.blocked:
            plan.blockers.append("ebtables nat: unknown jumps: " + "; ".join(eb.blocked))
        else:
            plan.actions.append(
                f"ebtables nat: remove {', '.join(eb.chains)} in the restore that writes "
                "netagent's anti-spoofing chains"
            )
    for name in ipset.neutron_lb_sets(None):
        plan.leftovers.append(f"ipset {name}")
        plan.actions.append(f"destroy ipset {name} once no rule references it")


def inspect(conf: cfg.ConfigOpts) -> Plan:
    """Read the host (the namespace this process runs in) and plan its takeover."""
    plan = Plan()
    pids = old_agent_pids()
    if pids:
        plan.blockers.append(
            f"{OLD_AGENT} is running (PID {', '.join(map(str, pids))}): stop and disable it "
            "first; it would rebuild what netagent takes over"
        )
    if conf.agent.l2_driver != "linuxbridge" or conf.agent.firewall_driver != "iptables":
        plan.blockers.append(
            "[agent] l2_driver must be linuxbridge and firewall_driver iptables, found "
            f"{conf.agent.l2_driver} and {conf.agent.firewall_driver}"
        )
    _devices(conf, plan)
    _filters(conf, plan)
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Show the takeover of this host's Neutron Linux bridge agent by "
        "netagent-agent ([agent] take_over_neutron_linuxbridge = true), or verify it.",
        epilog="Other arguments (--config-file, --config-dir) are oslo.config's; pass "
        "netagent-agent's. doc/migration.md has the whole procedure.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true", help="print every action, change nothing")
    mode.add_argument(
        "--verify", action="store_true", help="exit 0 only when nothing of the old agent is left"
    )
    args, rest = parser.parse_known_args(argv)
    conf = common.setup_or_report(rest, PROG, "netagent takeover of a Linux bridge agent host")
    if conf is None:
        return 2
    plan = inspect(conf)
    if args.verify:
        for line in plan.leftovers:
            print(f"left: {line}")
        if plan.leftovers:
            return 1
        print(f"{PROG}: nothing of the Neutron Linux bridge agent is left on this host")
        return 0
    if not plan.leftovers:
        print(f"{PROG}: nothing of the Neutron Linux bridge agent on this host: nothing to do")
        return 0
    if not conf.agent.take_over_neutron_linuxbridge:
        print("NOOP: set [agent] take_over_neutron_linuxbridge = true for netagent-agent")
    for line in plan.actions:
        print(f"NOOP: {line}")
    for line in plan.blockers:
        print(f"BLOCKED: {line}", file=sys.stderr)
    return 1 if plan.blockers else 0


if __name__ == "__main__":
    sys.exit(main())
