"""Constants shared by every layer."""

from __future__ import annotations

from typing import Final

#: Linux IFNAMSIZ is 16 bytes including the terminating NUL.
MAX_DEVICE_NAME_LEN: Final = 15
#: iptables chain names: XT_EXTENSION_MAXNAMELEN (29) minus the NUL.
MAX_CHAIN_NAME_LEN: Final = 28
#: ipset set names: IPSET_MAXNAMELEN (32) minus the NUL.
MAX_IPSET_NAME_LEN: Final = 31

# Interop prefixes fixed by Nova, os-vif and Neutron (neutron-wire.md section 8).
TAP_PREFIX: Final = "tap"
HYBRID_BRIDGE_PREFIX: Final = "qbr"
HYBRID_VETH_BRIDGE_PREFIX: Final = "qvb"
HYBRID_VETH_OVS_PREFIX: Final = "qvo"
#: The firewall driver that filters Open vSwitch ports through os-vif's hybrid plug
#: (``qbr`` bridges): the binding asks for it, the OVS driver guards the host for it.
HYBRID_PLUG_FIREWALL: Final = "iptables"
NETWORK_BRIDGE_PREFIX: Final = "brq"
ROUTER_NAMESPACE_PREFIX: Final = "qrouter-"
ROUTER_INTERNAL_PREFIX: Final = "qr-"
ROUTER_GATEWAY_PREFIX: Final = "qg-"
#: Neutron's interface drivers: the end of a veth pair inside a ``qdhcp-`` namespace.
NAMESPACE_SIDE_PREFIX: Final = "ns-"
#: Device owners of router ports. Like Neutron (``is_port_trusted``), netagent filters
#: neither: a router forwards other hosts' addresses and answers for its floating IPs.
ROUTER_GATEWAY_OWNER: Final = "network:router_gateway"
ROUTER_INTERFACE_OWNER: Final = "network:router_interface"
ROUTER_PORT_OWNERS: Final = frozenset({ROUTER_GATEWAY_OWNER, ROUTER_INTERFACE_OWNER})
#: Characters of a resource id kept in interop device names.
INTEROP_ID_CHARS: Final = 11

# netagent's own prefixes: nothing else on a host may use them.
VXLAN_DEVICE_PREFIX: Final = "nvx-"
VLAN_DEVICE_PREFIX: Final = "nvl-"
CHAIN_PREFIX: Final = "na-"
IPSET_PREFIX: Final = "na"

AGENT_TYPE: Final = "Netagent agent"
AGENT_BINARY: Final = "netagent-agent"
