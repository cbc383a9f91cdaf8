#!/bin/bash
# shellcheck and bashate (with devstack's own bashate flags, from its tox.ini) on the
# devstack plugin. Exits non-zero on any finding.
set -uo pipefail
cd "$(dirname "$0")/.."

files=(devstack/plugin.sh devstack/settings devstack/override-defaults devstack/lib/*)
rc=0
shellcheck -x "${files[@]}" || rc=1
.venv/bin/bashate -v -iE006 -eE005,E042 "${files[@]}" || rc=1
exit $rc
