"""``netagent-cleanup``: remove everything the configured drivers own on this host.

Refuses to run while another process holds the agent lock of the same ``state_path``
(``<state_path>/agent.lock``, held by a running agent for its whole life): the agent would
rebuild what is removed. Cleanup holds that lock itself while it runs, so no agent starts
meanwhile. ``--force`` runs even so; ``--dry-run`` prints each action instead of doing it
(and says when an agent is running).

Drivers are cleaned in a fixed order, L2 first: it detaches and sets down the taps of any
bridge it has to keep (a foreign member), so that no tap is left bridged when the
firewall's chains go. If the L2 cleanup fails, the firewall's is skipped (fail closed).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from netagent.agent import lock as lock_mod
from netagent.cmd import agent as agent_cmd
from netagent.cmd import common
from netagent.drivers import base, loader

LOG = logging.getLogger(__name__)

NOOP = "NOOP: "


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="netagent-cleanup",
        description="Remove the bridges, devices, chains and namespaces netagent owns.",
        epilog="Other arguments (--config-file, --config-dir) are oslo.config's.",
    )
    parser.add_argument("--dry-run", action="store_true", help="print, do not change")
    parser.add_argument("--force", action="store_true", help="run even while an agent is running")
    args, rest = parser.parse_known_args(argv)
    conf = common.setup_or_report(rest, "netagent-cleanup", "netagent cleanup")
    if conf is None:
        return 2
    try:
        drivers = agent_cmd.load_drivers(conf)
    except loader.DriverLoadError as exc:
        print(f"netagent-cleanup: {exc}", file=sys.stderr)
        return 2
    agent_lock = lock_mod.AgentLock(conf.state_path)
    if args.dry_run:
        pid = lock_mod.holder(conf.state_path)
        if pid is not None:
            print(
                f"netagent-cleanup: an agent is running on this state_path (PID {pid or '?'}, "
                f"{agent_lock.path}); dry run only",
                file=sys.stderr,
            )
    else:
        try:
            agent_lock.acquire()
        except (lock_mod.AgentLockHeldError, OSError) as exc:
            if not args.force:
                print(
                    f"netagent-cleanup: an agent is running on this state_path, or it cannot "
                    f"be checked: {exc}; stop it first (or use --force)",
                    file=sys.stderr,
                )
                return 1
            LOG.warning("--force: cleaning up although %s", exc)
            print(f"netagent-cleanup: --force: cleaning up although {exc}", file=sys.stderr)
    try:
        return _clean(drivers, args.dry_run)
    finally:
        agent_lock.release()


def _clean(
    drivers: tuple[base.L2Driver, base.FirewallDriver, base.L3Driver], dry_run: bool
) -> int:
    l2, firewall, l3 = drivers
    failed = False
    # The order is the fail-closed guarantee: see the module docstring.
    for driver in (l2, firewall, l3):
        name = type(driver).__name__
        if driver is firewall and failed:
            print(
                f"netagent-cleanup: {name}: skipped: the L2 cleanup failed, and without "
                "filters a tap still bridged would forward unfiltered",
                file=sys.stderr,
            )
            continue
        try:
            actions = driver.cleanup(dry_run=dry_run)
        except Exception as exc:
            LOG.exception("Cleanup by %s failed", name)
            print(f"netagent-cleanup: {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed = True
            continue
        for action in actions:
            # Drivers may mark their own dry-run lines; print one prefix, not two.
            line = action.removeprefix(NOOP)
            print(f"{NOOP if dry_run else ''}{name}: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
