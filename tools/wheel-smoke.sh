#!/bin/bash
# Install netagent the way users do and run it from there, not from the checkout:
# build the sdist and wheel (python -m build), install the wheel into a fresh virtualenv,
# check the data files it carries, run netagent-agent --help, then the standalone demo
# (two simulated hosts pinging over VXLAN) with the installed agent on the installed
# example state. Run as root from a checkout whose .venv exists (tools/setup-host.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d /tmp/netagent-wheel-XXXXXX)
trap 'rm -rf "$work"' EXIT

.venv/bin/python -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 \
    || { cat "$work/build.log"; exit 1; }
wheel=("$work"/dist/netagent-*.whl)
sdist=("$work"/dist/netagent-*.tar.gz)
echo "built ${wheel[0]##*/} and ${sdist[0]##*/}"

# A tree without git metadata (a git archive, a repository tarball) builds as well.
mkdir "$work/plain"
tar -c --exclude=./.git --exclude=./.venv . | tar -x -C "$work/plain"
.venv/bin/pip wheel -q --no-deps -w "$work/plain-dist" "$work/plain" >"$work/plain.log" 2>&1 \
    || { cat "$work/plain.log"; exit 1; }
echo "built $(basename "$work"/plain-dist/netagent-*.whl) from a tree without .git"

# A clone owned by another user: git refuses to read it ("dubious ownership"), which made
# pbr fail the build; it builds with setup.cfg's version.
git clone -q . "$work/foreign"
chown -R nobody "$work/foreign"
.venv/bin/pip wheel -q --no-deps -w "$work/foreign-dist" "$work/foreign" \
    >"$work/foreign.log" 2>&1 || { cat "$work/foreign.log"; exit 1; }
echo "built $(basename "$work"/foreign-dist/netagent-*.whl) from a clone git will not read"

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "${wheel[0]}"
for data in etc/netagent/netagent.conf.sample etc/netagent/examples/state.yaml \
        etc/systemd/netagent-agent.service etc/sysusers.d/netagent.conf \
        etc/tmpfiles.d/netagent.conf; do
    [ -f "$work/venv/$data" ] || { echo "the wheel does not install $data" >&2; exit 1; }
done
"$work/venv/bin/netagent-agent" --help >/dev/null
cd "$work"  # nothing below may come from the checkout but the demo driver itself
"$OLDPWD/.venv/bin/python" "$OLDPWD/tools/demo.py" --bin-dir "$work/venv/bin" \
    --state "$work/venv/etc/netagent/examples/state.yaml"
echo "wheel smoke: ok"
