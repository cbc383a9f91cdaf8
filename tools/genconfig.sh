#!/bin/bash
# Regenerate the config samples from the option lists in netagent/conf/:
#   etc/netagent/netagent.conf.sample (netagent-agent) and
#   etc/neutron/dhcp_agent.netagent.ini.sample (the interface driver's [netagent] group,
#   read by neutron-dhcp-agent).
# With --check, fail (exit 1) when a committed sample differs from the generated one.
set -euo pipefail
cd "$(dirname "$0")/.."
gen=.venv/bin/oslo-config-generator
[ -x "$gen" ] || gen=$(command -v oslo-config-generator)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
for spec in netagent.conf:etc/netagent/netagent.conf.sample \
    dhcp_agent_netagent.conf:etc/neutron/dhcp_agent.netagent.ini.sample; do
    config=etc/oslo-config-generator/${spec%%:*}
    sample=${spec#*:}
    "$gen" --config-file "$config" --output-file "$out"
    if [ "${1:-}" = "--check" ]; then
        if ! diff -u "$sample" "$out"; then
            echo "$sample is stale: run tools/genconfig.sh" >&2
            status=1
        fi
    else
        cp "$out" "$sample"
        echo "wrote $sample"
    fi
done
if [ "${1:-}" = "--check" ] && [ "$status" = 0 ]; then
    echo "config samples are up to date"
fi
exit "$status"
