#!/bin/bash
# Set up this machine (tools/setup-host.sh) and run every check and test tier:
# config-sample drift, ruff, mypy --strict, shellcheck/bashate of devstack/, the wheel
# installed and run from a fresh virtualenv (tools/wheel-smoke.sh), then unit,
# functional, fullstack and interop tests in one pytest run. Needs root (functional and
# later tiers use the real kernel).
# Exits non-zero if anything fails.
set -uo pipefail
cd "$(dirname "$0")/.."

tools/setup-host.sh || { echo "setup failed" >&2; exit 1; }

failed=()
step() {
    local name=$1; shift
    echo "=== $name: $*"
    if "$@"; then echo "=== $name: ok"; else echo "=== $name: FAILED"; failed+=("$name"); fi
}

step genconfig tools/genconfig.sh --check
step ruff .venv/bin/ruff check netagent tests tools tempest_plugin
step ruff-format .venv/bin/ruff format --check netagent tests tools tempest_plugin
step mypy .venv/bin/mypy --strict netagent
step devstack-lint tools/lint-devstack.sh
step wheel tools/wheel-smoke.sh

export NETAGENT_FUNCTIONAL=1 NETAGENT_FULLSTACK=1 NETAGENT_INTEROP=1
# --durations: the slowest tests in the log, to keep the run under its time budget
step pytest .venv/bin/pytest -p no:cacheprovider -q -rfEs --durations=25 "${PYTEST_ARGS[@]:-tests}"
if [[ -z "${PYTEST_ARGS[*]:-}" ]]; then
    # the Linux bridge and security-group suites again with the agents as a non-root user
    # holding only CAP_NET_ADMIN, CAP_NET_RAW and CAP_SYS_ADMIN (doc/install.md)
    step fullstack-unprivileged env NETAGENT_FULLSTACK_AGENT_USER=nobody \
        .venv/bin/pytest -p no:cacheprovider -q -rs \
        tests/fullstack/test_linuxbridge.py tests/fullstack/test_security_groups.py
fi

if ((${#failed[@]})); then
    echo "FAILED steps: ${failed[*]}"
    exit 1
fi
echo "all steps passed"
