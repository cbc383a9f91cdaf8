"""``netagent-cleanup``: remove everything the configured drivers own on this host.

Refuses to run while an agent answers on the status socket of the same ``state_path``
(it would rebuild what is removed). ``--dry-run`` prints each action instead of doing it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from netagent.agent import status
from netagent.cmd import agent as agent_cmd
from netagent.cmd import common
from netagent.drivers import loader

LOG = logging.getLogger(__name__)


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
    if not args.force and not args.dry_run:
        try:
            status.query(status.socket_path(conf.state_path), timeout=2.0)
        except status.StatusUnavailableError:
            pass
        else:
            print(
                "netagent-cleanup: an agent is running on this state_path; stop it first "
                "(or use --force)",
                file=sys.stderr,
            )
            return 1
    try:
        drivers = agent_cmd.load_drivers(conf)
    except loader.DriverLoadError as exc:
        print(f"netagent-cleanup: {exc}", file=sys.stderr)
        return 2
    failed = False
    for driver in drivers:
        name = type(driver).__name__
        try:
            actions = driver.cleanup(dry_run=args.dry_run)
        except Exception as exc:
            LOG.exception("Cleanup by %s failed", name)
            print(f"netagent-cleanup: {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed = True
            continue
        for action in actions:
            print(f"{'NOOP: ' if args.dry_run else ''}{name}: {action}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
