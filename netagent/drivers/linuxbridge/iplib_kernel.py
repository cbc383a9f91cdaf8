""":class:`~netagent.drivers.linuxbridge.kernel.Kernel` on netagent's netlink layer.

Every call goes to the namespace the instance was made for (``None``: the process's own)
over that namespace's cached rtnetlink socket; kernel errors arrive already typed
(``DeviceNotFound``, ``EntryNotFound``...).
"""

from __future__ import annotations

import contextlib
from typing import Any

from netagent.drivers.linuxbridge.fdb import is_flooding
from netagent.drivers.linuxbridge.kernel import FdbEntry, Link, VxlanSpec
from netagent.privileged import batch
from netagent.privileged import links as priv_links
from netagent.privileged import neigh as priv_neigh
from netagent.privileged.errors import DeviceNotFound, EntryNotFound


def _link(raw: dict[str, Any]) -> Link:
    data = raw.get("data") or {}
    kind = raw.get("kind")
    vxlan = kind == "vxlan"
    return Link(
        name=raw["name"],
        index=raw["index"],
        kind=kind,
        mtu=raw.get("mtu") or 0,
        up=bool(raw.get("up")),
        master=raw.get("master") or None,
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
        return {raw["name"]: _link(raw) for raw in priv_links.list_links(self.netns)}

    def create_bridge(self, name: str, mtu: int, ageing_seconds: int) -> None:
        priv_links.create_bridge(
            self.netns, name, mtu=mtu, ageing_time=ageing_seconds, forward_delay=0
        )

    def create_vxlan(self, name: str, spec: VxlanSpec, mtu: int) -> None:
        options: dict[str, Any] = {
            "local": spec.local,
            "port": spec.port,
            "learning": False,
            "mtu": mtu,
        }
        if spec.ttl is not None:
            options["ttl"] = spec.ttl
        if spec.parent:
            options["underlay"] = spec.parent
        priv_links.create_vxlan(self.netns, name, spec.vni, **options)

    def create_vlan(self, name: str, parent: str, vlan_id: int, mtu: int) -> None:
        # The kernel layer's "create_vlan" operation (IFLA_INFO_KIND "vlan",
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
        changes: dict[str, Any] = {}
        if mtu is not None:
            changes["mtu"] = mtu
        if up is not None:
            changes["up"] = up
        if master is not None:
            changes["master"] = master
        elif nomaster:
            changes["master"] = ""
        if changes:
            priv_links.set_link(self.netns, name, **changes)

    def delete_link(self, name: str) -> None:
        with contextlib.suppress(DeviceNotFound):
            priv_links.delete_link(self.netns, name)

    def fdb_entries(self, device: str) -> set[FdbEntry]:
        index = priv_links.get_link(self.netns, device)["index"]
        return {
            FdbEntry(entry["mac"], entry["destination"])
            for entry in priv_neigh.list_fdb(self.netns)
            if entry["index"] == index and entry["destination"] and entry["mac"]
        }

    def fdb_add(self, device: str, entries: list[FdbEntry]) -> None:
        ops = [
            {
                "op": "add_fdb",
                "device": device,
                "mac": e.mac,
                "destination": e.dst,
                "append": is_flooding(e.mac),
                "master": False,
            }
            for e in entries
        ]
        if ops:
            _run(self.netns, ops)

    def fdb_delete(self, device: str, entries: list[FdbEntry]) -> None:
        ops = [
            {"op": "delete_fdb", "device": device, "mac": e.mac, "destination": e.dst}
            for e in entries
        ]
        if ops:
            _run(self.netns, ops, ignore=(EntryNotFound,))


def _run(
    netns: str | None, ops: list[dict[str, Any]], ignore: tuple[type[Exception], ...] = ()
) -> None:
    """One pipelined batch; re-raise the first failure not in ``ignore``, typed."""
    try:
        batch.execute(netns, ops)
    except batch.BatchError as exc:
        for _index, error in exc.errors():
            if not isinstance(error, ignore):
                raise error from None
