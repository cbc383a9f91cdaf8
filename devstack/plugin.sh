#!/bin/bash
# devstack plugin for netagent: installs the agent (and, where neutron-server runs, the ML2
# mechanism driver into its environment), writes /etc/netagent/netagent.conf and runs the
# agent as devstack service "netagent-agent". How to enable it: doc/devstack.md.

NETAGENT_PLUGIN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NETAGENT_BIN_DIR=$(get_python_exec_prefix)

if [[ "$Q_AGENT" == "netagent" ]]; then
    # shellcheck source-path=SCRIPTDIR source=lib/netagent_agent
    source "$NETAGENT_PLUGIN_DIR/lib/netagent_agent"
fi

# what the agent runs (the drivers call these programs) and br_netfilter, without which
# bridged traffic bypasses iptables and the iptables firewall driver refuses to start
function install_netagent_packages {
    install_package iproute2 iptables ipset ebtables conntrack
    if [[ "$NETAGENT_FIREWALL_DRIVER" == "iptables" ]] && ! running_in_container; then
        enable_kernel_bridge_firewall
    fi
}

function install_netagent {
    # devstack's pip_install always applies upper-constraints, which may pin pyroute2
    # below netagent's minimum (openstack/requirements had pyroute2===0.8.1 against our
    # >=0.9.4): pip then refuses to install netagent. Drop that pin, as devstack does for
    # libvirt-python; neutron itself accepts pyroute2>=0.7.3.
    if [[ -n "$REQUIREMENTS_DIR" ]]; then
        "$REQUIREMENTS_DIR/.venv/bin/edit-constraints" \
            "$REQUIREMENTS_DIR/upper-constraints.txt" -- pyroute2
    fi
    if is_service_enabled q-svc neutron-api; then
        # the mechanism driver runs inside neutron-server: same Python environment
        setup_develop "$NETAGENT_DIR" neutron
    else
        setup_develop "$NETAGENT_DIR"
    fi
}

# <physical_network>:<interface> pairs of the agent (empty: none)
function netagent_interface_mappings {
    local mappings=$NETAGENT_PHYSICAL_INTERFACE_MAPPINGS
    if [[ -z "$mappings" && -n "$PHYSICAL_NETWORK" && -n "$NETAGENT_PHYSICAL_INTERFACE" ]]; then
        mappings=$PHYSICAL_NETWORK:$NETAGENT_PHYSICAL_INTERFACE
    fi
    echo "$mappings"
}

function netagent_uses_vxlan {
    [[ "$ENABLE_TENANT_TUNNELS" == "True" && "$Q_ML2_TENANT_NETWORK_TYPE" == "vxlan" ]]
}

function configure_netagent {
    local mappings
    mappings=$(netagent_interface_mappings)

    sudo install -d -o "$STACK_USER" "$NETAGENT_CONF_DIR" "$NETAGENT_STATE_PATH"
    cp "$NETAGENT_DIR/etc/netagent/netagent.conf.sample" "$NETAGENT_CONF"
    iniset "$NETAGENT_CONF" DEFAULT host "$NETAGENT_HOST"
    iniset "$NETAGENT_CONF" DEFAULT state_path "$NETAGENT_STATE_PATH"
    iniset "$NETAGENT_CONF" DEFAULT transport_url "$(get_transport_url)"
    iniset "$NETAGENT_CONF" DEFAULT debug "$ENABLE_DEBUG_LOG_LEVEL"
    setup_logging "$NETAGENT_CONF"
    iniset "$NETAGENT_CONF" agent source neutron
    iniset "$NETAGENT_CONF" agent l2_driver "$NETAGENT_L2_DRIVER"
    iniset "$NETAGENT_CONF" agent firewall_driver "$NETAGENT_FIREWALL_DRIVER"
    if netagent_uses_vxlan; then
        iniset "$NETAGENT_CONF" linuxbridge local_ip "$NETAGENT_LOCAL_IP"
    fi
    if [[ -n "$mappings" ]]; then
        iniset "$NETAGENT_CONF" linuxbridge physical_interface_mappings "$mappings"
    fi
    if [[ ",$Q_ML2_PLUGIN_MECHANISM_DRIVERS," == *,l2population,* ]]; then
        iniset "$NETAGENT_CONF" neutron l2_population True
    fi
}

function start_netagent {
    # root: the agent changes links, bridges, iptables and ipsets itself
    run_process netagent-agent "$NETAGENT_BIN_DIR/netagent-agent --config-file $NETAGENT_CONF" \
        "" root
}

function stop_netagent {
    stop_process netagent-agent
}

# runs after devstack's own test-config step (configure_tempest, then pip install of
# TEMPEST_PLUGINS, which settings extends with netagent's tempest plugin)
function configure_tempest_netagent {
    # read by neutron-tempest-plugin's tests
    iniset "$TEMPEST_CONFIG" neutron_plugin_options available_type_drivers \
        "$Q_ML2_PLUGIN_TYPE_DRIVERS"
    # read by netagent's tempest plugin (tempest_plugin/)
    iniset "$TEMPEST_CONFIG" service_available netagent True
    iniset "$TEMPEST_CONFIG" netagent firewall_driver "$NETAGENT_FIREWALL_DRIVER"
    if netagent_uses_vxlan; then
        iniset "$TEMPEST_CONFIG" netagent tunnel_types vxlan
    else
        iniset "$TEMPEST_CONFIG" netagent tunnel_types ""
    fi
    local mappings
    mappings=$(netagent_interface_mappings)
    if [[ -n "$mappings" ]]; then
        # the first physical network of the mappings
        mappings=${mappings%%,*}
        iniset "$TEMPEST_CONFIG" netagent physical_network "${mappings%%:*}"
    fi
    if [[ -n "$NETAGENT_TEMPEST_HOSTS" ]]; then
        iniset "$TEMPEST_CONFIG" netagent hosts "$NETAGENT_TEMPEST_HOSTS"
    fi
}

function cleanup_netagent {
    # removes only what netagent owns (bridges, VXLAN devices, chains, ipsets)
    if [[ -f "$NETAGENT_CONF" ]]; then
        sudo "$NETAGENT_BIN_DIR/netagent-cleanup" --config-file "$NETAGENT_CONF" || true
    fi
}

if [[ "$1" == "stack" ]]; then
    case "$2" in
        pre-install)
            if is_service_enabled netagent-agent; then
                install_netagent_packages
            fi
            ;;
        install)
            install_netagent
            ;;
        post-config)
            if is_service_enabled netagent-agent; then
                configure_netagent
            fi
            ;;
        extra)
            start_netagent
            ;;
        test-config)
            if is_service_enabled tempest; then
                configure_tempest_netagent
            fi
            ;;
    esac
elif [[ "$1" == "unstack" ]]; then
    stop_netagent
elif [[ "$1" == "clean" ]]; then
    cleanup_netagent
fi
