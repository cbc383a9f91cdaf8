"""Trunk driver ``netagent``: lets Neutron's trunk plugin start, and refuses the trunks
netagent would have to wire.

netagent's agents do not implement trunks (VLAN subports on a parent port). Neutron's trunk
service plugin (``service_plugins = trunk``) refuses to start, taking every neutron process
with it (``IncompatibleTrunkPluginConfiguration``), unless a registered trunk driver is
loaded; no driver is needed for Neutron to accept a trunk on an unbound port, which a
netagent host would then wire as a plain port, its subports never. This driver registers
on ``TRUNK_PLUGIN``/``AFTER_INIT`` (the mechanism driver creates it in ``initialize``,
before the service plugins load; no entry point), so the plugin starts, and refuses in
``TRUNK``/``PRECOMMIT_CREATE`` (409, :class:`TrunkNotSupported`) a trunk whose parent is
bound to a netagent host, or is unbound while no other trunk driver is loaded. It claims
netagent's vif types and agent type with ``can_trunk_bound_port``, so that Neutron's
validator lets a bound netagent port through to that check and its message, instead of
answering "not eligible for use as a parent port". A trunk parent that still reaches a
netagent host (created while another driver was loaded) is not bound there
(:meth:`netagent.neutron_plugins.ml2.NetagentMechanismDriver.bind_port`). The decisions
are in :mod:`netagent.neutron_plugins.binding`.
"""

from __future__ import annotations

from typing import Any

from neutron.services.trunk import utils as trunk_utils
from neutron.services.trunk.drivers import base
from neutron_lib import exceptions
from neutron_lib.api.definitions import portbindings
from neutron_lib.callbacks import events, registry, resources
from neutron_lib.plugins import directory

from netagent.common import constants
from netagent.neutron_plugins import binding

NAME = "netagent"


class TrunkNotSupported(exceptions.Conflict):
    message = "Trunk on port %(port_id)s refused: %(reason)s."


class NetagentTrunkDriver(base.DriverBase):
    """Registered, loaded, and refusing every trunk that would land on netagent."""

    def __init__(self) -> None:
        super().__init__(
            NAME,
            binding.TRUNK_INTERFACES,
            binding.TRUNK_SEGMENTATION_TYPES,
            constants.AGENT_TYPE,
            can_trunk_bound_port=True,
        )

    @property
    def is_loaded(self) -> bool:
        """Always: only netagent's mechanism driver, loaded by ML2, creates this driver."""
        return True

    @property
    def rpc_required(self) -> bool:
        """No trunk RPC: netagent's agent neither calls nor consumes it."""
        return False

    @registry.receives(resources.TRUNK, [events.PRECOMMIT_CREATE])
    def _refuse(self, resource: str, event: str, trigger: Any, payload: Any = None) -> None:
        context = payload.context
        port_id = payload.desired_state.port_id
        port = directory.get_plugin().get_port(context, port_id)
        host = port.get(portbindings.HOST_ID) or ""
        on_netagent = bool(host) and trunk_utils.is_driver_compatible(
            context,
            self,
            port.get(portbindings.VIF_TYPE),
            trunk_utils.get_agent_types_by_host(context, host),
        )
        others = [d.name for d in trigger.registered_drivers if d is not self and d.is_loaded]
        reason = binding.trunk_refusal(host, on_netagent, others)
        if reason is not None:
            raise TrunkNotSupported(port_id=port_id, reason=reason)
