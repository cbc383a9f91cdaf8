"""Build a host's data plane with the stock Neutron 25.2.3 Linux bridge agent code.

Run by :mod:`tests.interop.test_lb_takeover_interop` with the Python of the cached
``neutron-lb`` virtualenv, *inside the simulated host's namespace* (``ip netns exec``):
every bridge, VXLAN device, FDB entry, iptables/ip6tables rule, ipset and ebtables chain
it makes is that namespace's. It is the agent's own code doing what its RPC loop does for
a port (``LinuxBridgeManager.add_tap_interface``, l2pop ``add_fdb_entries``,
``IptablesFirewallDriver.prepare_port_filter`` with ipsets, ARP spoofing protection in
ebtables); only the server and the RPC are left out. libvirt's part (the tap into the
bridge, Nova's ``bridge`` VIF) is done as libvirt does it.

Input: one JSON document on stdin (see the test). Output: one JSON line with what it made.
Never imports netagent. Imports are inside :func:`main`: the program name must be set
before Neutron's modules are imported.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    spec = json.load(sys.stdin)
    # Never the caller's (the machine's) namespace: this code writes iptables, ebtables
    # and ipsets. The test passes the inode of its own network namespace.
    if os.stat("/proc/self/ns/net").st_ino == spec["caller_netns_inode"]:
        raise SystemExit("refusing to run in the caller's network namespace")
    # iptables_manager names its chains after the program (neutron-linuxbri-...): be
    # the agent before it is imported
    sys.argv[0] = "neutron-linuxbridge-agent"
    from neutron.common import config as common_config
    from neutron.conf.agent import common as agent_config
    from neutron.conf.agent import securitygroups_rpc as sg_config
    from neutron.conf.plugins.ml2.drivers import linuxbridge as lb_config
    from oslo_config import cfg

    common_config.register_common_config_options()
    agent_config.register_root_helper(cfg.CONF)
    agent_config.register_agent_state_opts_helper(cfg.CONF)
    agent_config.register_iptables_opts(cfg.CONF)
    sg_config.register_securitygroups_opts(cfg.CONF)
    lb_config.register_linuxbridge_opts(cfg.CONF)
    from oslo_concurrency import lockutils

    lockutils.set_defaults(spec["lock_path"])
    cfg.CONF([], project="neutron")
    cfg.CONF.set_override("root_helper", "", "AGENT")
    cfg.CONF.set_override("enable_vxlan", True, "VXLAN")
    cfg.CONF.set_override("l2_population", True, "VXLAN")
    cfg.CONF.set_override("local_ip", spec["local_ip"], "VXLAN")
    if spec.get("udp_dstport"):
        cfg.CONF.set_override("udp_dstport", spec["udp_dstport"], "VXLAN")
    cfg.CONF.set_override("enable_ipset", True, "SECURITYGROUP")
    cfg.CONF.set_override("firewall_driver", "iptables", "SECURITYGROUP")

    # privsep in this process (we are root in the host namespace already)
    from neutron import privileged

    for name in dir(privileged):
        context = getattr(privileged, name)
        if hasattr(context, "set_client_mode"):
            context.set_client_mode(False)

    from neutron.agent.linux import bridge_lib, iptables_firewall
    from neutron.plugins.ml2.drivers.linuxbridge.agent import arp_protect
    from neutron.plugins.ml2.drivers.linuxbridge.agent import (
        linuxbridge_neutron_agent as lb_agent,
    )

    mgr = lb_agent.LinuxBridgeManager({}, {})
    firewall = iptables_firewall.IptablesFirewallDriver()
    networks = {n["id"]: n for n in spec["networks"]}
    made: dict[str, list[str]] = {"taps": [], "vxlan": []}
    with firewall.defer_apply():
        for group_id, rules in spec["security_groups"].items():
            firewall.update_security_group_rules(group_id, rules)
        for group_id, members in spec["members"].items():
            # the RPC's shape: per ethertype, [ip, mac] pairs
            firewall.update_security_group_members(
                group_id, {k: [tuple(m) for m in v] for k, v in members.items()}
            )
        for port in spec["ports"]:
            net = networks[port["network_id"]]
            ok = mgr.add_tap_interface(
                net["id"], "vxlan", None, net["vni"], port["device"], "compute:nova", net["mtu"]
            )
            if not ok:
                raise SystemExit(f"add_tap_interface failed for {port['device']}")
            # libvirt (Nova's bridge VIF) puts the tap into the bridge
            bridge = bridge_lib.BridgeDevice(mgr.get_bridge_name(net["id"]))
            bridge.addif(port["device"])
            firewall.prepare_port_filter(port)
            # the device details RPC's shape (fixed_ips as dicts), as the agent loop has it
            details = {**port, "fixed_ips": [{"ip_address": a} for a in port["fixed_ips"]]}
            arp_protect.setup_arp_spoofing_protection(port["device"], details)
            made["taps"].append(port["device"])
    for net in spec["networks"]:
        device = mgr.get_vxlan_device_name(net["vni"])
        made["vxlan"].append(device)
        for agent_ip, ports in spec["fdb"].get(net["id"], {}).items():
            mgr.add_fdb_entries(agent_ip, [tuple(p) for p in ports], device)
    print(json.dumps(made))


if __name__ == "__main__":
    main()
