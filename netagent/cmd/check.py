"""``netagent-check``: does this host have what the configured drivers and source need?

Like ``neutron-sanity-check``: one line per check (``--json`` for tools), exit 1 when a
check fails, 2 for configuration errors. It reads the host and changes nothing. The agent
runs the same checks at start (there a broker that does not answer is only a warning).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from netagent.agent import preflight
from netagent.cmd import common

EXIT_FAILED = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="netagent-check", add_help=False)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args, rest = parser.parse_known_args(argv)
    conf = common.setup_or_report(rest, "netagent-check", "netagent preflight check")
    if conf is None:
        return EXIT_USAGE
    broker = None
    if conf.agent.source == "neutron":
        from netagent.rpc import transport  # noqa: PLC0415 - oslo.messaging only when used

        broker = transport.check_broker
    results = preflight.run(conf, broker)
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        print("\n".join(r.line() for r in results))
    return EXIT_FAILED if any(not r.ok and r.required for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
