"""The interface driver's kernel calls, run in an oslo.privsep daemon.

neutron-dhcp-agent runs as an unprivileged user and reaches the kernel through privsep
daemons; so does this driver, with a context of its own (``[netagent_privsep]``; entry
points must live below their context's package, so Neutron's ``[privsep]`` context cannot
run them). The daemon is started on first use like Neutron's: through ``root_helper`` and
rootwrap (deployments need a rootwrap filter allowing ``privsep-helper --privsep_context
netagent.neutron_plugins.privsep.context``; devstack/ installs one), or through
``[netagent_privsep] helper_command``. Arguments and results are primitives; errors arrive
as netagent's exception classes (rebuilt by name).
"""

from __future__ import annotations

from oslo_privsep import capabilities as caps
from oslo_privsep import priv_context

from netagent.neutron_plugins import veth
from netagent.neutron_plugins.plugging import OvsTarget, VethPlan

#: netlink link changes, entering the qdhcp- namespaces, writing /proc/sys, the OVSDB
#: socket (root's).
context = priv_context.PrivContext(
    "netagent",
    cfg_section="netagent_privsep",
    pypath=__name__ + ".context",
    capabilities=[caps.CAP_NET_ADMIN, caps.CAP_SYS_ADMIN, caps.CAP_DAC_OVERRIDE],
)


@context.entrypoint
def plug(
    host_device: str,
    namespace_device: str,
    namespace: str | None,
    mac: str,
    mtu: int | None,
) -> None:
    """:func:`netagent.neutron_plugins.veth.plug` of the plan these fields make."""
    veth.plug(VethPlan(host_device, namespace_device, namespace, mac, mtu))


@context.entrypoint
def plug_ovs(  # noqa: PLR0917 (primitives only: privsep serialises them)
    host_device: str,
    namespace_device: str,
    namespace: str | None,
    mac: str,
    mtu: int | None,
    port_id: str,
    bridge: str,
    connection: str,
    timeout: int,
) -> None:
    """:func:`netagent.neutron_plugins.veth.plug_ovs` of the plan these fields make."""
    veth.plug_ovs(
        VethPlan(host_device, namespace_device, namespace, mac, mtu),
        port_id,
        OvsTarget(bridge, connection, timeout),
    )


@context.entrypoint
def unplug_ovs(  # noqa: PLR0917 (primitives only)
    host_device: str,
    namespace_device: str,
    namespace: str | None,
    bridge: str,
    connection: str,
    timeout: int,
) -> None:
    """:func:`netagent.neutron_plugins.veth.unplug_ovs`."""
    veth.unplug_ovs(
        host_device, namespace_device, namespace, OvsTarget(bridge, connection, timeout)
    )


@context.entrypoint
def unplug(host_device: str, namespace_device: str, namespace: str | None) -> None:
    """:func:`netagent.neutron_plugins.veth.unplug`."""
    veth.unplug(host_device, namespace_device, namespace)


@context.entrypoint
def set_mtu(host_device: str, namespace_device: str, namespace: str | None, mtu: int) -> None:
    """:func:`netagent.neutron_plugins.veth.set_mtu`."""
    veth.set_mtu(host_device, namespace_device, namespace, mtu)
