"""What the netagent mechanism driver decides, without importing Neutron.

The driver in :mod:`netagent.neutron_plugins.ml2` is a thin subclass of Neutron's
``SimpleAgentMechanismDriverBase``; every decision it makes about an agent row lives here so
that it can be tested without Neutron installed. ``agent`` arguments are the agent rows ML2
hands to a mechanism driver: dicts with ``agent_type``, ``host`` and ``configurations`` (the
JSON the agent sent in its state reports, neutron-wire.md §3).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from netagent.common.constants import HYBRID_PLUG_FIREWALL

#: binding:vif_type: Nova creates ``tap<port[:11]>`` itself; netagent wires it (§7).
VIF_TYPE: Final = "tap"
#: binding:vif_type on hosts whose agent runs the ``openvswitch`` L2 driver: os-vif plugs
#: the tap into the integration bridge with ``iface-id``; netagent tags it.
OVS_VIF_TYPE: Final = "ovs"
OVS_DATAPATH_TYPES: Final = frozenset({"system", "netdev"})
#: binding:vnic_type values the driver binds.
SUPPORTED_VNIC_TYPES: Final = ("normal",)
#: Value of vif_details["connectivity"]: the agent provides L2 connectivity.
CONNECTIVITY: Final = "l2"
#: Network types that need a physical network in the agent's mappings.
PHYSNET_TYPES: Final = ("flat", "vlan")
#: Tunnel network types netagent can carry.
TUNNEL_TYPES: Final = ("vxlan",)
#: Everything the driver may bind, in the order reported to ML2.
ALLOWED_NETWORK_TYPES: Final = (*PHYSNET_TYPES, *TUNNEL_TYPES)
#: ``configurations.firewall_driver`` values that leave ports unfiltered.
NON_FILTERING_FIREWALLS: Final = frozenset({"", "noop", "none"})


def configurations(agent: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The agent's reported ``configurations``, or an empty mapping if absent or malformed."""
    if not agent:
        return {}
    confs = agent.get("configurations")
    return confs if isinstance(confs, Mapping) else {}


def allowed_network_types(agent: Mapping[str, Any] | None = None) -> list[str]:
    """Network types ML2 may bind to ``agent`` (all the driver supports when ``None``).

    Flat and VLAN are always allowed (a physical network must still be in the agent's
    mappings). VXLAN is allowed unless the agent reports ``tunnel_types`` without
    ``vxlan`` in it: an agent that reports no tunnel types key at all is trusted, so that
    binding does not depend on an optional field (ML2 itself checks only the type, §7).
    """
    confs = configurations(agent)
    reported = confs.get("tunnel_types")
    if agent is None or not isinstance(reported, list | tuple):
        return list(ALLOWED_NETWORK_TYPES)
    tunnels = [t for t in TUNNEL_TYPES if t in reported]
    return [*PHYSNET_TYPES, *tunnels]


def is_ovs(agent: Mapping[str, Any] | None) -> bool:
    """The agent reports the ``openvswitch`` L2 driver."""
    return configurations(agent).get("l2_driver") == "openvswitch"


def vif_type(agent: Mapping[str, Any] | None) -> str:
    """``ovs`` for Open vSwitch agents, ``tap`` otherwise."""
    return OVS_VIF_TYPE if is_ovs(agent) else VIF_TYPE


def mappings(agent: Mapping[str, Any] | None) -> dict[str, str]:
    """Physical network → interface, from ``configurations.interface_mappings`` (Open
    vSwitch agents: → bridge, from ``bridge_mappings``).

    Non-string keys or values are dropped: the row is whatever the agent sent.
    """
    key = "bridge_mappings" if is_ovs(agent) else "interface_mappings"
    raw = configurations(agent).get(key)
    if not isinstance(raw, Mapping):
        return {}
    return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}


def port_filter(agent: Mapping[str, Any] | None) -> bool:
    """Whether the agent filters its ports (vif_details ``port_filter``).

    True when the agent reports a ``firewall_driver`` other than ``noop``. An agent that
    does not report one is taken as not filtering: claiming a filter that is not there
    would be the unsafe mistake.
    """
    driver = configurations(agent).get("firewall_driver")
    return isinstance(driver, str) and driver.strip().lower() not in NON_FILTERING_FIREWALLS


def vif_details(base: Mapping[str, Any], agent: Mapping[str, Any] | None) -> dict[str, Any]:
    """The driver's static vif_details with ``port_filter`` set for ``agent``."""
    details = dict(base)
    details["port_filter"] = port_filter(agent)
    details.setdefault("connectivity", CONNECTIVITY)
    if is_ovs(agent):
        confs = configurations(agent)
        bridge = confs.get("integration_bridge")
        datapath = confs.get("datapath_type")
        details["bridge_name"] = bridge if isinstance(bridge, str) and bridge else "br-int"
        details["datapath_type"] = datapath if datapath in OVS_DATAPATH_TYPES else "system"
        details["ovs_hybrid_plug"] = hybrid_plug(agent)
        details["port_filter"] = details["ovs_hybrid_plug"]
    return details


def hybrid_plug(agent: Mapping[str, Any] | None) -> bool:
    """Whether os-vif must put the port behind a ``qbr`` Linux bridge (vif_details
    ``ovs_hybrid_plug``) on an Open vSwitch agent: only an agent reporting
    ``firewall_driver = iptables`` filters there (on the qbr side, with physdev). Any
    other filtering firewall cannot see a tap plugged straight into OVS, so such a port
    is not claimed filtered either."""
    driver = configurations(agent).get("firewall_driver")
    return isinstance(driver, str) and driver.strip().lower() == HYBRID_PLUG_FIREWALL


#: binding:vif_type values the trunk driver answers for (both are netagent's bindings).
TRUNK_INTERFACES: Final = (VIF_TYPE, OVS_VIF_TYPE)
#: Segmentation types the trunk driver declares: the trunk plugin refuses to start unless
#: the loaded drivers share one it has a validator for.
TRUNK_SEGMENTATION_TYPES: Final = ("vlan",)


def is_trunk_parent(port: Mapping[str, Any]) -> bool:
    """``port`` (a port dict with the trunk plugin's extension) is the parent of a trunk."""
    details = port.get("trunk_details")
    return isinstance(details, Mapping) and bool(details.get("trunk_id"))


def trunk_refusal(host: str, on_netagent_host: bool, other_trunk_drivers: list[str]) -> str | None:
    """Why a trunk whose parent port is bound to ``host`` (``""``: unbound) is refused, or
    None to let it through.

    netagent's agents do not wire VLAN subports, so a trunk on a port netagent binds would
    be silently broken. A parent bound to a netagent host is refused; an unbound one only
    when no other trunk driver is loaded, because then any host it binds to is netagent's
    (otherwise it may go to a host whose agent implements trunks, and the mechanism driver
    refuses to bind it anywhere else).
    """
    if host and on_netagent_host:
        return (
            f"its parent port is bound to host {host}, whose netagent agent does not "
            "implement trunks (VLAN subports)"
        )
    if not host and not other_trunk_drivers:
        return (
            "netagent is the only trunk driver loaded and its agents do not implement "
            "trunks (VLAN subports)"
        )
    return None
