""":class:`~netagent.drivers.linuxbridge.kernel.Kernel` on netagent's netlink layer.

Every call goes to the namespace the instance was made for (``None``: the process's own)
over that namespace's cached rtnetlink socket; kernel errors arrive already typed
(``DeviceNotFound``, ``EntryNotFound``...).
"""

from __future__ import annotations

from collections.abc import Sequence

from netagent.drivers.hostguard import EbtablesGuard
from netagent.drivers.linuxbridge.kernel import FdbEntry, Link
from netagent.linux import ip_lib, neighbour, sysctl
from netagent.linux.errors import KernelError


def _link(raw: ip_lib.Link) -> Link:
    data = raw.data or {}
    kind = raw.kind
    vxlan = kind == "vxlan"
    return Link(
        name=raw.name,
        index=raw.index,
        kind=kind,
        mtu=raw.mtu or 0,
        up=raw.up,
        master=raw.master_index,
        vni=data.get("vni") if vxlan else data.get("vlan_id") if kind == "vlan" else None,
        parent=data.get("underlay") if vxlan else data.get("link"),
        vxlan_local=data.get("local") if vxlan else None,
        vxlan_port=data.get("port") if vxlan else None,
        vxlan_learning=data.get("learning") if vxlan else None,
        stp=bool(data["stp_state"]) if kind == "bridge" and "stp_state" in data else None,
        mac=raw.mac,
        neigh_suppress=raw.neigh_suppress,
    )


class IpLibKernel(EbtablesGuard):
    """Kernel operations in one network namespace (the host guard's: :class:`EbtablesGuard`).

    :param netns: namespace name, ``None`` for the namespace the process runs in.
    """

    def __init__(self, netns: str | None = None) -> None:
        super().__init__(netns)
        self.netns = netns

    def __repr__(self) -> str:
        return f"IpLibKernel(netns={self.netns!r})"

    def links(self) -> dict[str, Link]:
        return {item.name: _link(item) for item in ip_lib.list_devices(namespace=self.netns)}

    def links_named(self, names: list[str]) -> dict[str, Link]:
        found = ip_lib.get_devices(names, namespace=self.netns)
        return {name: _link(item) for name, item in found.items()}

    def apply(self, ops: Sequence[ip_lib.Op]) -> dict[int, KernelError]:
        batch = ip_lib.Batch(self.netns)
        for index, op in enumerate(ops):
            batch.add(op, index)
        return {int(f.owner): f.error for f in batch.send() if isinstance(f.owner, int)}

    def disable_ipv6(self, names: list[str]) -> None:
        sysctl.disable_ipv6(self.netns, names)

    def fdb_entries(self, device: str) -> set[FdbEntry]:
        return {
            FdbEntry(entry.mac, str(entry.destination))
            for entry in neighbour.list_fdb(namespace=self.netns, device=device)
            if entry.destination is not None and entry.mac and entry.master is None
        }

    def bridge_static_macs(self, port: str) -> set[str]:
        return {
            entry.mac
            for entry in neighbour.list_fdb(namespace=self.netns, device=port)
            if entry.master is not None and entry.mac and entry.static
        }

    def neighbours(self, device: str) -> dict[str, str]:
        return {
            str(entry.address): entry.mac
            for entry in neighbour.list_neighbours(namespace=self.netns, device=device)
            if entry.address.version == 4 and entry.mac and entry.state & neighbour.NUD_PERMANENT
        }
