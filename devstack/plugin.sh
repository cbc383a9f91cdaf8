#!/bin/bash
# devstack plugin for netagent: installs the agent (and the ML2 mechanism driver into
# neutron-server's environment), writes its configuration and runs it as a devstack service
# named "netagent-agent" (q-agt is not needed).

function install_netagent {
    setup_develop "$NETAGENT_DIR"
    # the mechanism driver runs inside neutron-server: same Python environment
    pip_install "$NETAGENT_DIR[neutron]"
}

function configure_netagent {
    sudo install -d -o "$STACK_USER" "$NETAGENT_CONF_DIR" "$NETAGENT_STATE_PATH"
    cp "$NETAGENT_DIR/etc/netagent/netagent.conf.sample" "$NETAGENT_CONF"
    iniset "$NETAGENT_CONF" DEFAULT host "$(hostname)"
    iniset "$NETAGENT_CONF" DEFAULT state_path "$NETAGENT_STATE_PATH"
    iniset "$NETAGENT_CONF" DEFAULT transport_url "$(get_transport_url)"
    iniset "$NETAGENT_CONF" DEFAULT debug "$ENABLE_DEBUG_LOG_LEVEL"
    iniset "$NETAGENT_CONF" agent source neutron
    iniset "$NETAGENT_CONF" agent l2_driver "$NETAGENT_L2_DRIVER"
    iniset "$NETAGENT_CONF" agent firewall_driver "$NETAGENT_FIREWALL_DRIVER"
    iniset "$NETAGENT_CONF" linuxbridge local_ip "$NETAGENT_LOCAL_IP"
    if [[ -n "$NETAGENT_PHYSICAL_INTERFACE_MAPPINGS" ]]; then
        iniset "$NETAGENT_CONF" linuxbridge physical_interface_mappings \
            "$NETAGENT_PHYSICAL_INTERFACE_MAPPINGS"
    fi
    # Nova plugs a plain tap (vif_type tap); netagent wires and filters it.
    if is_service_enabled n-cpu; then
        iniset "$NOVA_CONF" DEFAULT firewall_driver nova.virt.firewall.NoopFirewallDriver
    fi
}

function start_netagent {
    run_process netagent-agent \
        "$NETAGENT_BIN_DIR/netagent-agent --config-file $NETAGENT_CONF" root root
}

function stop_netagent {
    stop_process netagent-agent
}

if [[ "$1" == "stack" ]]; then
    NETAGENT_BIN_DIR=$(get_python_exec_prefix)
    case "$2" in
        install) install_netagent ;;
        post-config) configure_netagent ;;
        extra) start_netagent ;;
    esac
elif [[ "$1" == "unstack" ]]; then
    stop_netagent
elif [[ "$1" == "clean" ]]; then
    sudo "$(get_python_exec_prefix)/netagent-cleanup" --config-file "$NETAGENT_CONF" || true
fi
