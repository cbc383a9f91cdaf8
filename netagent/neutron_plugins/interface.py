"""Interface driver ``netagent``: plugs neutron-dhcp-agent's ports into netagent's networks.

Runs inside neutron-dhcp-agent, loaded through the entry point ``netagent =
netagent.neutron_plugins.interface:NetagentInterfaceDriver`` in group
``neutron.interface_drivers``; enable it with ``interface_driver = netagent`` in
``dhcp_agent.ini``. Install netagent into the DHCP agent's environment.

As the Linux bridge agent's driver did, it makes a veth pair per port:
``ns-<port[:11]>`` in the ``qdhcp-`` namespace with the port's MAC and the network's MTU,
and ``tap<port[:11]>`` in the host's namespace. The host end looks to netagent like a
Nova tap: once the port is bound to this host, the agent wires it into the network's
bridge with the filtering Neutron gives ``network:*`` ports (doc/dhcp.md). Which bridge
depends on the host's L2 driver, told by ``[netagent] l2_driver`` in dhcp_agent.ini
(:mod:`netagent.conf.interface_driver`): with ``linuxbridge`` the driver names no bridge
(netagent enslaves the tap to ``brq<network>``); with ``openvswitch`` it adds the tap to
the integration bridge with os-vif's ``external_ids`` (:mod:`.ovs_port`), and netagent's
Open vSwitch driver tags it.
Names and MTU rules: :mod:`netagent.neutron_plugins.plugging`; kernel calls (netagent's
kernel layer, no ``ip`` forks): :mod:`netagent.neutron_plugins.veth`, run in the privsep
daemon of :mod:`netagent.neutron_plugins.privsep` as Neutron's own drivers do.
"""

from __future__ import annotations

from typing import Any

from neutron.agent.linux import interface
from oslo_log import log as logging

from netagent.common import constants
from netagent.conf import interface_driver as options
from netagent.neutron_plugins import plugging, privsep

LOG = logging.getLogger(__name__)


class NetagentInterfaceDriver(interface.LinuxInterfaceDriver):
    """A veth pair per port: ``ns-`` end in the namespace, ``tap`` end for netagent."""

    DEV_NAME_PREFIX = constants.NAMESPACE_SIDE_PREFIX

    def __init__(self, conf: Any, **kwargs: Any) -> None:
        super().__init__(conf, **kwargs)
        options.register_opts(conf)
        group = getattr(conf, options.GROUP)
        self.ovs: plugging.OvsTarget | None = None
        if group.l2_driver == "openvswitch":
            self.ovs = plugging.OvsTarget(
                group.integration_bridge, group.ovsdb_connection, group.ovsdb_timeout
            )
        # the DHCP agent makes a driver per call: DEBUG, not INFO
        LOG.debug(
            "netagent interface driver for l2_driver %s%s",
            group.l2_driver,
            f" (bridge {self.ovs.bridge}, {self.ovs.connection})" if self.ovs else "",
        )

    def plug_new(  # noqa: PLR0917 (Neutron's signature)
        self,
        network_id: str,
        port_id: str,
        device_name: str,
        mac_address: str,
        bridge: str | None = None,
        namespace: str | None = None,
        prefix: str | None = None,
        mtu: int | None = None,
    ) -> None:
        """Create the pair for a port whose devices do not exist yet.

        :param bridge: ignored: netagent picks the bridge when it wires the tap (Open
            vSwitch: ``[netagent] integration_bridge``).
        :raises ValueError: a device name not of this port, a bad MAC or MTU.
        :raises OvsdbError: (Open vSwitch) no integration bridge, or OVSDB failed.
        """
        plan = plugging.plan(
            port_id, device_name, mac_address, namespace, prefix=prefix, mtu_value=mtu
        )
        if plan.mtu is None:
            LOG.warning("No MTU configured for port %s", port_id)
        fields = (plan.host_device, plan.namespace_device, plan.namespace, plan.mac, plan.mtu)
        if self.ovs is None:
            privsep.plug(*fields)
        else:
            ovs = self.ovs
            privsep.plug_ovs(*fields, port_id, ovs.bridge, ovs.connection, ovs.timeout)
        LOG.info(
            "Plugged port %s of network %s: %s (namespace %s) / %s, MTU %s",
            port_id,
            network_id,
            plan.namespace_device,
            plan.namespace,
            plan.host_device,
            plan.mtu,
        )

    def unplug(
        self,
        device_name: str,
        bridge: str | None = None,
        namespace: str | None = None,
        prefix: str | None = None,
    ) -> None:
        """Delete the pair (quietly if it is already gone) and, on Open vSwitch, its port."""
        try:
            host = plugging.host_device(device_name, prefix or self.DEV_NAME_PREFIX)
        except ValueError:
            LOG.error("Cannot unplug %r: not a device this driver names", device_name)
            return
        if self.ovs is None:
            privsep.unplug(host, device_name, namespace)
        else:
            ovs = self.ovs
            privsep.unplug_ovs(
                host, device_name, namespace, ovs.bridge, ovs.connection, ovs.timeout
            )
        LOG.info("Unplugged %s (namespace %s) / %s", device_name, namespace, host)

    def set_mtu(
        self,
        device_name: str,
        mtu: int,
        namespace: str | None = None,
        prefix: str | None = None,
    ) -> None:
        """Set the network's MTU on both ends (after a network MTU change)."""
        value = plugging.mtu(mtu)
        if value is None:
            return
        host = plugging.host_device(device_name, prefix or self.DEV_NAME_PREFIX)
        privsep.set_mtu(host, device_name, namespace, value)
        LOG.info("MTU of %s / %s set to %d", device_name, host, value)
