#!/bin/bash
# Prepare a Debian 12 machine for netagent: system packages, services the test tiers need,
# and a virtualenv (.venv) with netagent and its test tools. Idempotent; run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3-venv python3-dev gcc openvswitch-switch iptables ipset ebtables conntrack
              iproute2 iputils-ping arping ethtool tcpdump procps shellcheck
              dnsmasq-base isc-dhcp-client haproxy)

log() { echo "[setup-host] $*"; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d keeps Debian from starting openvswitch-switch's system service: the tests
    # run their own private ovsdb-server/ovs-vswitchd.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

port_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ "${NETAGENT_NEED_SERVICES:-1}" = 1 ]; then
    if ! port_answers 5672; then
        log "RabbitMQ does not answer on 127.0.0.1:5672: installing/starting it"
        dpkg-query -W rabbitmq-server >/dev/null 2>&1 || \
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 ERL_EPMD_ADDRESS=127.0.0.1 rabbitmq-server -detached
        for _ in $(seq 60); do port_answers 5672 && break; sleep 1; done
    fi
    if ! port_answers 3306; then
        log "MariaDB does not answer on 127.0.0.1:3306: installing/starting it"
        dpkg-query -W mariadb-server >/dev/null 2>&1 || \
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q mariadb-server
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
        for _ in $(seq 60); do port_answers 3306 && break; sleep 1; done
    fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.netagent-installed
want=$(cat requirements.txt test-requirements.txt setup.cfg | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing Python dependencies into .venv"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -r requirements.txt -r test-requirements.txt
    .venv/bin/pip install -q -e .
    echo "$want" > "$stamp"
fi
log "ready"
