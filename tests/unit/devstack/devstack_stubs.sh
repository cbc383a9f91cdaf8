#!/bin/bash
# Stand-ins for the devstack functions devstack/plugin.sh and its files call, for
# tests/unit/devstack. Each call the plugin makes is appended to $NETAGENT_TEST_CALLS as one
# line: the function name and its arguments, separated by ASCII unit separators.

function _record {
    local IFS=$'\x1f'
    printf '%s\n' "$*" >> "$NETAGENT_TEST_CALLS"
}

for _stub in iniset run_process stop_process install_package pip_install setup_develop \
        enable_kernel_bridge_firewall setup_logging warn; do
    eval "function $_stub { _record $_stub \"\$@\"; }"
done
unset _stub

function die {
    _record die "$@"
    exit 1
}

# runs only "install" (directories in the test's tmp dir); everything else is recorded
function sudo {
    _record sudo "$@"
    if [[ "$1" == "install" ]]; then
        "$@"
    fi
}

function running_in_container {
    [[ "${STUB_IN_CONTAINER:-0}" == 1 ]]
}

function get_python_exec_prefix {
    echo /opt/stack/data/venv/bin
}

function get_transport_url {
    echo "rabbit://stackrabbit:secret@192.0.2.10:5672/"
}

# devstack's service list semantics (functions-common), without the special cases
function is_service_enabled {
    local service
    for service in "$@"; do
        [[ ,${ENABLED_SERVICES}, == *,${service},* ]] && return 0
    done
    return 1
}

function disable_service {
    local service
    for service in "$@"; do
        DISABLED_SERVICES+=",$service"
        ENABLED_SERVICES=,${ENABLED_SERVICES},
        ENABLED_SERVICES=${ENABLED_SERVICES//,$service,/,}
        ENABLED_SERVICES=${ENABLED_SERVICES#,}
        ENABLED_SERVICES=${ENABLED_SERVICES%,}
    done
}

function enable_service {
    local service
    for service in "$@"; do
        if [[ ,${DISABLED_SERVICES}, == *,${service},* ]]; then
            continue
        fi
        is_service_enabled "$service" || ENABLED_SERVICES+=",$service"
    done
}

# what lib/neutron_plugins/ml2 does after the override_defaults phase and before plugin
# settings are read
function devstack_ml2_defaults {
    Q_AGENT=${Q_AGENT:-ovn}
    Q_ML2_TENANT_NETWORK_TYPE=${Q_ML2_TENANT_NETWORK_TYPE:-"geneve"}
    Q_ML2_PLUGIN_MECHANISM_DRIVERS=${Q_ML2_PLUGIN_MECHANISM_DRIVERS:-ovn}
}
