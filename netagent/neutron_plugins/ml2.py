"""ML2 mechanism driver ``netagent``: binds ports to hosts running a live netagent.

Runs inside neutron-server (API and RPC processes), loaded through the entry point
``netagent = netagent.neutron_plugins.ml2:NetagentMechanismDriver`` in group
``neutron.ml2.mechanism_drivers``; enable it with ``[ml2] mechanism_drivers = netagent``.
Install it into neutron-server's environment with ``pip install netagent[neutron]``.

This is the only netagent module that imports Neutron; the agent never imports it.
Binding (neutron-wire.md §7): a ``normal`` port on a flat, VLAN or VXLAN segment is bound
to a host whose live agent has ``agent_type`` :data:`netagent.common.constants.AGENT_TYPE`,
with ``binding:vif_type`` ``tap`` (Nova creates ``tap<port[:11]>``, netagent wires it) and
``binding:vif_details`` ``{"port_filter": <agent filters>, "connectivity": "l2"}``; on
hosts whose agent reports ``l2_driver = openvswitch``, ``vif_type`` ``ovs`` with
``bridge_name``, ``datapath_type`` and ``ovs_hybrid_plug`` (os-vif plugs the tap into
br-int, or with ``ovs_hybrid_plug`` true -- agents reporting ``firewall_driver =
iptables`` -- into a ``qbr`` Linux bridge joined to br-int by the veth ``qvb``/``qvo``;
the physical networks then come from ``bridge_mappings``). Flat and
VLAN segments need their physical network in the agent's
``configurations.interface_mappings``. The parent port of a trunk is never bound: the
agents do not implement trunks, and the trunk driver (:mod:`.trunk`, created here) refuses
trunks on netagent's ports. The decisions are in :mod:`netagent.neutron_plugins.binding`.
"""

from __future__ import annotations

from typing import Any

from neutron.plugins.ml2.drivers import mech_agent
from oslo_log import log as logging

from netagent.common import constants
from netagent.neutron_plugins import binding, trunk

LOG = logging.getLogger(__name__)


class NetagentMechanismDriver(mech_agent.SimpleAgentMechanismDriverBase):
    """Attach ports to netagent's Linux bridge (or OVS) data plane through a tap."""

    def __init__(self) -> None:
        super().__init__(
            constants.AGENT_TYPE,
            binding.VIF_TYPE,
            {"port_filter": False},
            supported_vnic_types=list(binding.SUPPORTED_VNIC_TYPES),
        )
        self.trunk_driver: trunk.NetagentTrunkDriver | None = None

    def initialize(self) -> None:
        """Create the trunk driver: ML2 initializes before service plugins load, so it is
        subscribed when the trunk plugin announces itself."""
        self.trunk_driver = trunk.NetagentTrunkDriver()

    def bind_port(self, context: Any) -> None:
        """Bind as the base class does, except a trunk's parent port (left unbound, so ML2
        reports ``binding_failed`` rather than a trunk whose subports nobody wires)."""
        port = context.current
        if binding.is_trunk_parent(port):
            LOG.warning(
                "netagent does not bind port %s on host %s: it is the parent of trunk %s, "
                "and netagent's agents do not implement trunks",
                port.get("id"),
                context.host,
                port["trunk_details"]["trunk_id"],
            )
            return
        super().bind_port(context)

    @property
    def connectivity(self) -> str:
        """netagent provides L2 connectivity to the port (``"l2"``)."""
        return binding.CONNECTIVITY

    def get_allowed_network_types(self, agent: dict[str, Any] | None = None) -> list[str]:
        """Network types this agent can carry: flat, vlan, and vxlan if it tunnels."""
        return binding.allowed_network_types(agent)

    def get_mappings(self, agent: dict[str, Any]) -> dict[str, str]:
        """Physical networks the agent reaches, from ``configurations.interface_mappings``."""
        return binding.mappings(agent)

    def get_vif_type(self, context: Any, agent: dict[str, Any], segment: dict[str, Any]) -> str:
        """``ovs`` on hosts whose netagent runs Open vSwitch, ``tap`` elsewhere."""
        return binding.vif_type(agent)

    def get_vif_details(
        self, context: Any, agent: dict[str, Any], segment: dict[str, Any]
    ) -> dict[str, Any]:
        """Static details plus ``port_filter`` from the agent's reported firewall driver."""
        details = binding.vif_details(self.vif_details, agent)
        port = getattr(context, "current", None) or {}
        LOG.debug(
            "netagent binds port %s on host %s: segment %s, vif_details %s",
            port.get("id"),
            agent.get("host"),
            segment.get("id"),
            details,
        )
        return details
