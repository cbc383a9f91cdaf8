"""What the Linux bridge driver needs from the kernel layer, as one small interface.

:class:`Kernel` lists the operations the driver uses; :class:`IpLibKernel` implements them
with :mod:`netagent.linux.ip_lib`. Device changes are ip_lib's typed operations, sent in
batches (:meth:`Kernel.apply`). Keeping the seam this narrow lets the unit tests run the
driver against an in-memory fake, and lets the functional tests run it against a test
namespace (``namespace=...``) without entering it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from netagent.drivers.hostguard import GuardKernel
from netagent.linux.errors import KernelError
from netagent.linux.ip_lib import Op

ZERO_MAC = "00:00:00:00:00:00"


@dataclasses.dataclass(frozen=True, slots=True)
class Link:
    """One network device as the driver sees it (a snapshot; never updated in place).

    :ivar kind: ``IFLA_INFO_KIND`` (``bridge``, ``vxlan``, ``vlan``, ``veth``, ``tun``...),
        ``None`` for physical NICs.
    :ivar master: ifindex of the bridge the device is enslaved to, or ``None``.
    :ivar up: administrative state (``IFF_UP``).
    :ivar vni: VXLAN id, VLAN id for ``vlan`` devices.
    :ivar parent: ifindex of the lower device (``IFLA_LINK``) of vlan/vxlan devices.
    """

    name: str
    index: int
    kind: str | None
    mtu: int
    up: bool
    master: int | None = None
    vni: int | None = None
    parent: int | None = None
    vxlan_local: str | None = None
    vxlan_port: int | None = None
    vxlan_learning: bool | None = None
    stp: bool | None = None
    mac: str | None = None
    #: bridge ports only: ARP/ND suppression (``IFLA_BRPORT_NEIGH_SUPPRESS``)
    neigh_suppress: bool | None = None


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class FdbEntry:
    """A VXLAN forwarding entry: frames for ``mac`` go to the tunnel endpoint ``dst``.

    ``mac`` ``00:00:00:00:00:00`` is a flooding entry (BUM traffic is copied to each).
    """

    mac: str
    dst: str


@dataclasses.dataclass(frozen=True, slots=True)
class VxlanSpec:
    """Attributes a netagent VXLAN device is created with (the immutable ones)."""

    vni: int
    local: str
    port: int
    ttl: int | None = None
    parent: str | None = None


class Kernel(GuardKernel, Protocol):
    """Kernel operations of the driver, in the namespace the instance is bound to.

    Every method raises the typed errors of :mod:`netagent.linux.errors`
    (``DeviceNotFound`` for a vanished device, ``KernelError`` otherwise).
    """

    def links(self) -> dict[str, Link]:
        """All devices, by name (one dump)."""

    def links_named(self, names: list[str]) -> dict[str, Link]:
        """The devices of ``names`` that exist (no full dump)."""

    def apply(self, ops: Sequence[Op]) -> dict[int, KernelError]:
        """Send ``ops`` in order as one pipelined batch.

        :returns: the failures by position in ``ops`` (the others were applied).
        """

    def disable_ipv6(self, names: list[str]) -> None:
        """No IPv6 (hence no link-local address, RS, DAD or MLD) on devices of ours."""

    def fdb_entries(self, device: str) -> set[FdbEntry]:
        """The device's own VXLAN FDB entries that carry a destination (``self``)."""

    def bridge_static_macs(self, port: str) -> set[str]:
        """MACs of the static (``master static``) entries on ``port`` in its bridge's table."""

    def neighbours(self, device: str) -> dict[str, str]:
        """Permanent IPv4 neighbour entries of ``device``: address -> MAC."""
