""":class:`~netagent.drivers.linuxbridge.kernel.Kernel` on netagent's netlink layer.

Every call goes to the namespace the instance was made for (``None``: the process's own)
over that namespace's cached rtnetlink socket; kernel errors arrive already typed
(``DeviceNotFound``, ``EntryNotFound``...).
"""

from __future__ import annotations

import ipaddress

from netagent.drivers.linuxbridge.fdb import is_flooding
from netagent.drivers.linuxbridge.kernel import FdbEntry, Link, VxlanSpec
from netagent.linux import ip_lib, neighbour
from netagent.privileged import batch
from netagent.privileged import sysctl as priv_sysctl
from netagent.privileged.errors import EntryNotFound


def _link(raw: ip_lib.Link, indexes: dict[str, int]) -> Link:
    data = raw.data or {}
    kind = raw.kind
    vxlan = kind == "vxlan"
    return Link(
        name=raw.name,
        index=raw.index,
        kind=kind,
        mtu=raw.mtu or 0,
        up=raw.up,
        master=indexes.get(raw.master) if raw.master else None,
        vni=data.get("vni") if kind in ("vxlan", "vlan") else None,
        parent=data.get("underlay") if vxlan else data.get("link"),
        vxlan_local=data.get("local") if vxlan else None,
        vxlan_port=data.get("port") if vxlan else None,
        vxlan_learning=data.get("learning") if vxlan else None,
        stp=bool(data["stp_state"]) if kind == "bridge" and "stp_state" in data else None,
    )


class IpLibKernel:
    """Kernel operations in one network namespace.

    :param netns: namespace name, ``None`` for the namespace the process runs in.
    """

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns

    def __repr__(self) -> str:
        return f"IpLibKernel(netns={self.netns!r})"

    def links(self) -> dict[str, Link]:
        raw = ip_lib.list_devices(namespace=self.netns)
        indexes = {item.name: item.index for item in raw}
        return {item.name: _link(item, indexes) for item in raw}

    def create_bridge(self, name: str, mtu: int, ageing_seconds: int) -> None:
        ip_lib.create_bridge(
            name, namespace=self.netns, ageing_time=ageing_seconds, forward_delay=0, mtu=mtu
        )

    def create_vxlan(self, name: str, spec: VxlanSpec, mtu: int) -> None:
        ip_lib.create_vxlan(
            name,
            spec.vni,
            namespace=self.netns,
            local=ipaddress.ip_address(spec.local),
            port=spec.port,
            learning=False,
            underlay=spec.parent,
            ttl=spec.ttl,
            mtu=mtu,
        )

    def disable_ipv6(self, name: str) -> None:
        # netagent.linux.sysctl has no typed setter for this key yet; the privileged
        # layer allows it.
        priv_sysctl.set_sysctl(self.netns, f"net.ipv6.conf.{name}.disable_ipv6", 1)

    def create_vlan(self, name: str, parent: str, vlan_id: int, mtu: int) -> None:
        # Needs a "create_vlan" operation in the kernel layer (IFLA_INFO_KIND "vlan",
        # IFLA_VLAN_ID, IFLA_LINK); until it exists the batch rejects the op with
        # InvalidArgument, which fails the VLAN network only.
        batch.execute_one(
            self.netns,
            {"op": "create_vlan", "name": name, "link": parent, "vlan_id": vlan_id, "mtu": mtu},
        )

    def set_link(
        self,
        name: str,
        *,
        mtu: int | None = None,
        up: bool | None = None,
        master: str | None = None,
        nomaster: bool = False,
    ) -> None:
        ops = ip_lib.Batch(self.netns)
        if master is not None:
            ops.set_master(name, master)
        elif nomaster:
            ops.release(name)
        if mtu is not None or up is not None:
            ops.set_link(name, mtu=mtu, up=up)
        _apply(ops)

    def delete_link(self, name: str) -> None:
        ip_lib.delete_device(name, namespace=self.netns, missing_ok=True)

    def fdb_entries(self, device: str) -> set[FdbEntry]:
        return {
            FdbEntry(entry.mac, str(entry.destination))
            for entry in neighbour.list_fdb(namespace=self.netns, device=device)
            if entry.destination is not None and entry.mac and entry.master is None
        }

    def fdb_add(self, device: str, entries: list[FdbEntry]) -> None:
        ops = ip_lib.Batch(self.netns)
        for e in entries:
            dst = ipaddress.ip_address(e.dst)
            ops.add_raw(neighbour.fdb_op(device, e.mac, dst, append=is_flooding(e.mac)))
        _apply(ops)

    def fdb_delete(self, device: str, entries: list[FdbEntry]) -> None:
        ops = ip_lib.Batch(self.netns)
        for e in entries:
            ops.add_raw(neighbour.fdb_op(device, e.mac, ipaddress.ip_address(e.dst), delete=True))
        _apply(ops, ignore=(EntryNotFound,))


def _apply(ops: ip_lib.Batch, ignore: tuple[type[Exception], ...] = ()) -> None:
    """Send a batch; re-raise its first failure not in ``ignore``, typed."""
    try:
        ops.apply()
    except batch.BatchError as exc:
        for _index, error in exc.errors():
            if not isinstance(error, ignore):
                raise error from None
