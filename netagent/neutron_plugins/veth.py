"""Every kernel call of the interface driver, through netagent's kernel layer.

Runs in the neutron-dhcp-agent process (root, in the host's network namespace). The pair
is created in one netlink request with the namespace end already in its namespace and
carrying the port's MAC and MTU, so nothing half-made is ever visible under the port's
names; if bringing it up fails, the pair is deleted again.
"""

from __future__ import annotations

import logging

from netagent.linux import ethtool, ip_lib, netns, sysctl
from netagent.neutron_plugins import ovs_port
from netagent.neutron_plugins.plugging import OvsTarget, VethPlan

LOG = logging.getLogger(__name__)


def exists(device: str, namespace: str | None = None) -> bool:
    """Whether ``device`` exists (in ``namespace``; a missing namespace means no)."""
    if namespace is not None and not netns.exists(namespace):
        return False
    return ip_lib.device_exists(device, namespace=namespace)


def plug(plan: VethPlan) -> None:
    """Create the pair, turn IPv6 off on the host end, bring both ends up.

    A host end left over without its namespace end (the namespace was deleted, or an
    earlier plug died half-way) is the same port's and is replaced.

    :raises netagent.privileged.errors.NetagentError: the kernel refused; nothing is left.
    """
    if exists(plan.host_device) and not exists(plan.namespace_device, plan.namespace):
        LOG.info("Replacing %s, left without its peer %s", plan.host_device, plan.namespace_device)
        ip_lib.apply(ip_lib.DeleteLink(name=plan.host_device), missing_ok=True)
    pair = ip_lib.CreateVeth(
        name=plan.host_device,
        peer=plan.namespace_device,
        peer_namespace=plan.namespace,
        mtu=plan.mtu,
        peer_mtu=plan.mtu,
        peer_mac=plan.mac,
    )
    ip_lib.apply(pair)
    try:
        _disable_ipv6(plan.host_device)
        ip_lib.apply(ip_lib.SetLink(name=plan.host_device, up=True))
        ip_lib.apply(ip_lib.SetLink(name=plan.namespace_device, up=True), namespace=plan.namespace)
    except Exception:
        ip_lib.apply(ip_lib.DeleteLink(name=plan.host_device), missing_ok=True)
        raise


def plug_ovs(plan: VethPlan, port_id: str, target: OvsTarget) -> None:
    """:func:`plug`, then the host end onto the integration bridge for ``port_id``.

    On a userspace-datapath bridge (``netdev``) the namespace end computes its own
    checksums (:mod:`netagent.privileged.ethtool`). If anything fails after the pair
    exists, it is deleted again (and its port, if it was added).

    :raises OvsdbError: no integration bridge, or the transaction failed.
    """
    datapath = ovs_port.datapath_type(target)
    plug(plan)
    try:
        if datapath == "netdev":
            ethtool.set_tx_checksumming(plan.namespace_device, False, namespace=plan.namespace)
        ovs_port.attach(target, plan.host_device, port_id, plan.mac)
    except Exception:
        unplug(plan.host_device, plan.namespace_device, plan.namespace)
        raise


def unplug_ovs(
    host_device: str, namespace_device: str, namespace: str | None, target: OvsTarget
) -> None:
    """Delete the host end's port from Open vSwitch, then the pair (:func:`unplug`)."""
    ovs_port.detach(target, host_device)
    unplug(host_device, namespace_device, namespace)


def _disable_ipv6(device: str) -> None:
    # The host end is a bridge port: an IPv6 link-local address on it would only make the
    # host send router solicitations and MLD reports into the DHCP namespace.
    try:
        sysctl.set_disable_ipv6(None, device)
    except FileNotFoundError:  # IPv6 disabled on this host altogether
        LOG.debug("No IPv6 sysctls for %s", device)


def unplug(host_device: str, namespace_device: str, namespace: str | None) -> None:
    """Delete the pair (either end may already be gone; deleting one deletes both)."""
    if namespace is None or netns.exists(namespace):
        ip_lib.apply(
            ip_lib.DeleteLink(name=namespace_device), namespace=namespace, missing_ok=True
        )
    ip_lib.apply(ip_lib.DeleteLink(name=host_device), missing_ok=True)


def set_mtu(host_device: str, namespace_device: str, namespace: str | None, mtu: int) -> None:
    """Set ``mtu`` on both ends.

    :raises netagent.linux.errors.DeviceNotFound: an end is missing.
    """
    ip_lib.apply(ip_lib.SetLink(name=host_device, mtu=mtu))
    ip_lib.apply(ip_lib.SetLink(name=namespace_device, mtu=mtu), namespace=namespace)
