#!/bin/bash
# Set up this machine and run the standalone demo (tools/demo.py): two simulated hosts
# running netagent-agent on etc/netagent/examples/state.yaml, their VMs pinging over VXLAN.
set -euo pipefail
cd "$(dirname "$0")/.."
NETAGENT_NEED_SERVICES=0 tools/setup-host.sh
exec .venv/bin/python tools/demo.py "$@"
