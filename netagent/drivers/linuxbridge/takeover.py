"""Taking over the devices of a stopped Neutron Linux bridge agent (doc/migration.md).

Its bridges already carry netagent's names (``brq`` + 11 characters of the network id)
and are adopted as they are. Its VXLAN devices are named ``vxlan-<VNI>``, netagent's
``nvx-<VNI>``; the kernel refuses a second device with the same VNI, local address and
port, and deleting the old one first would cut the network. So the old device is renamed
in place (:class:`~netagent.linux.ip_lib.AdoptVxlan`: same ifindex, still in its bridge,
its l2population FDB entries kept) and its learning switched off; netagent then
converges its FDB like any of its own. A device whose address or port differs from
netagent's configuration is not touched: the network fails with a message saying what to
configure.
"""

from __future__ import annotations

from netagent.common import names
from netagent.drivers.linuxbridge.kernel import VxlanSpec
from netagent.drivers.linuxbridge.links import Links
from netagent.linux.ip_lib import AdoptVxlan

#: What the Neutron Linux bridge agent names its VXLAN device of a VNI.
NEUTRON_VXLAN_PREFIX = "vxlan-"


def neutron_vxlan_device(vni: int) -> str:
    """``vxlan-<VNI>`` (``LinuxBridgeManager.get_vxlan_device_name``)."""
    return f"{NEUTRON_VXLAN_PREFIX}{vni}"


def vxlan_adoption(links: Links, spec: VxlanSpec) -> AdoptVxlan | str | None:
    """How to take over the Neutron agent's device of ``spec.vni``.

    :returns: the rename to apply; a reason why it cannot be taken over without a flap;
        or None when there is no such device.
    """
    old = links.get(neutron_vxlan_device(spec.vni))
    if old is None or old.kind != "vxlan" or old.vni != spec.vni:
        return None
    if old.vxlan_local != spec.local or old.vxlan_port != spec.port:
        return (
            f"{old.name} (the Neutron Linux bridge agent's) has local address "
            f"{old.vxlan_local} and port {old.vxlan_port}, netagent's configuration "
            f"{spec.local} and {spec.port}: set [linuxbridge] local_ip and vxlan_udp_port "
            "to the old agent's values to take it over without a flap"
        )
    return AdoptVxlan(name=old.name, new_name=names.vxlan_device(spec.vni), learning=False)
