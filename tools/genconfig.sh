#!/bin/bash
# Regenerate etc/netagent/netagent.conf.sample from the option lists in netagent/conf/.
# With --check, fail (exit 1) when the committed sample differs from the generated one.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
gen=.venv/bin/oslo-config-generator
[ -x "$gen" ] || gen=$(command -v oslo-config-generator)
"$gen" --config-file etc/oslo-config-generator/netagent.conf \
    --output-file "$out"
if [ "${1:-}" = "--check" ]; then
    if ! diff -u etc/netagent/netagent.conf.sample "$out"; then
        echo "etc/netagent/netagent.conf.sample is stale: run tools/genconfig.sh" >&2
        exit 1
    fi
    echo "config sample is up to date"
else
    cp "$out" etc/netagent/netagent.conf.sample
    echo "wrote etc/netagent/netagent.conf.sample"
fi
