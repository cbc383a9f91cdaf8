"""Typed API for network devices and addresses, for drivers.

Changes are the typed operations of :mod:`netagent.privileged.ops` (re-exported here:
``ip_lib.SetLink(name="tap1", mtu=1450)``), validated when they are made. One is applied
with :func:`apply`; many in one namespace go through a :class:`Batch`, which pipelines them
over the namespace's netlink socket and reports each failure with the owner it was queued
for, so that one failing port never fails the others::

    batch = ip_lib.Batch("qrouter-...")
    batch.add(ip_lib.CreateVeth(name="qr-1", peer="qr-1p", mtu=1450), owner=port_id)
    batch.add(ip_lib.AddAddress(device="qr-1p", cidr="198.18.0.1/15"), owner=port_id)
    for failed in batch.send():
        ...  # failed.owner, failed.op, failed.error (typed: DeviceNotFound, ...)

Reads (:func:`list_devices`, :func:`get_device`, :func:`list_addresses`) return frozen
dataclasses. Kernel failures are the typed exceptions of :mod:`netagent.linux.errors`.
``namespace=None`` means the agent's own namespace.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from netagent.privileged import addresses as priv_addresses
from netagent.privileged import batch as priv_batch
from netagent.privileged import links as priv_links
from netagent.privileged import validate
from netagent.privileged.errors import DeviceNotFound, InvalidArgument, KernelError
from netagent.privileged.ops import (
    AddAddress,
    AddFdb,
    AddNeighbour,
    AddRoute,
    AddRule,
    AdoptVxlan,
    CreateBridge,
    CreateVeth,
    CreateVlan,
    CreateVxlan,
    DeleteAddress,
    DeleteFdb,
    DeleteLink,
    DeleteNeighbour,
    DeleteRoute,
    DeleteRule,
    Op,
    SetBridgePort,
    SetLink,
)

__all__ = [
    "AddAddress",
    "AddFdb",
    "AddNeighbour",
    "AddRoute",
    "AddRule",
    "Address",
    "AdoptVxlan",
    "Batch",
    "CreateBridge",
    "CreateVeth",
    "CreateVlan",
    "CreateVxlan",
    "DeleteAddress",
    "DeleteFdb",
    "DeleteLink",
    "DeleteNeighbour",
    "DeleteRoute",
    "DeleteRule",
    "Failed",
    "Link",
    "Op",
    "SetBridgePort",
    "SetLink",
    "apply",
    "device_exists",
    "get_device",
    "get_devices",
    "list_addresses",
    "list_devices",
]

LOG = logging.getLogger(__name__)

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Link:
    """A network device as the kernel reports it."""

    index: int
    name: str
    kind: str | None
    up: bool
    mtu: int | None
    mac: str | None
    #: name of the master (bridge) device, if enslaved
    master: str | None
    #: ``"bridge"`` for a bridge port
    slave_kind: str | None
    #: kind-specific details: bridge ``stp_state``/``ageing_time``/``forward_delay``;
    #: vxlan ``vni``/``port``/``learning``/``local``/``underlay`` (ifindex);
    #: vlan ``vlan_id``/``link`` (ifindex of the parent)
    data: dict[str, Any] = field(default_factory=dict, compare=False)
    #: bridge ports only (``None`` otherwise): ARP/ND suppression flag of the port
    neigh_suppress: bool | None = None
    #: bridge ports only: whether the bridge learns source MACs on this port
    port_learning: bool | None = None
    #: ifindex of the master device, if enslaved
    master_index: int | None = None


@dataclass(frozen=True)
class Address:
    """An address on a device."""

    device: str
    interface: IPInterface
    scope: int
    flags: int


def _ns(namespace: str | None) -> str | None:
    return validate.optional_namespace(namespace)


def _dev(name: str, field: str = "device") -> str:
    return validate.device_name(name, field)


# --- changes ---------------------------------------------------------------------------


def apply(op: Op, *, namespace: str | None = None, missing_ok: bool = False) -> None:
    """Apply one operation.

    :param missing_ok: a :class:`~netagent.privileged.ops.DeleteLink` of a device that is
        gone already is not an error.
    :raises KernelError: (a subclass where one fits: ``DeviceNotFound``, ``DeviceExists``,
        ``EntryExists``...) the kernel refused it.
    :raises NamespaceNotFound: the namespace does not exist.
    """
    try:
        priv_batch.execute_one(_ns(namespace), op)
    except DeviceNotFound:
        if not (missing_ok and isinstance(op, DeleteLink)):
            raise


@dataclass(frozen=True)
class Failed:
    """An operation of a :class:`Batch` the kernel refused."""

    owner: Hashable
    op: Op
    error: KernelError


class Batch:
    """Operations queued for one namespace, sent pipelined by :meth:`send`.

    Each operation is queued with an ``owner`` (a port id, a network id...), and its
    failure comes back with it; the other operations are applied regardless.
    """

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = _ns(namespace)
        self.ops: list[Op] = []
        self.owners: list[Hashable] = []

    def __repr__(self) -> str:
        return f"Batch(namespace={self.namespace!r}, {len(self.ops)} ops)"

    def __len__(self) -> int:
        return len(self.ops)

    def add(self, op: Op, owner: Hashable = None) -> None:
        """Queue ``op`` (already validated: it is an operation object).

        :raises InvalidArgument: ``op`` is not an operation.
        """
        if not isinstance(op, Op):
            raise InvalidArgument("op", op, "an operation of netagent.linux.ip_lib expected")
        self.ops.append(op)
        self.owners.append(owner)

    def send(self) -> list[Failed]:
        """Send the queued operations in order, clear the queue, return the failures.

        :raises NamespaceNotFound: the namespace does not exist (nothing was sent).
        """
        ops, owners = self.ops, self.owners
        self.ops, self.owners = [], []
        if not ops:
            return []
        try:
            priv_batch.execute(self.namespace, ops)
        except priv_batch.BatchError as exc:
            return [Failed(owners[index], ops[index], error) for index, error in exc.errors()]
        return []


# --- reads -----------------------------------------------------------------------------


def _to_links(raw: list[dict[str, Any]], names: dict[int, str] | None = None) -> list[Link]:
    if names is None:
        names = {item["index"]: item["name"] for item in raw}
    return [
        Link(
            index=item["index"],
            name=item["name"],
            kind=item["kind"],
            up=item["up"],
            mtu=item["mtu"],
            mac=item["mac"],
            master=names.get(item["master"]) if item["master"] else None,
            master_index=item["master"] or None,
            slave_kind=item["slave_kind"],
            data=item["data"],
            neigh_suppress=item.get("port", {}).get("neigh_suppress"),
            port_learning=item.get("port", {}).get("learning"),
        )
        for item in raw
    ]


def list_devices(*, namespace: str | None = None) -> list[Link]:
    """All devices of a namespace, from one netlink dump."""
    return _to_links(priv_links.list_links(_ns(namespace)))


def get_device(name: str, *, namespace: str | None = None) -> Link:
    """One device.

    :raises DeviceNotFound: no such device.
    """
    raw = priv_links.get_link(_ns(namespace), _dev(name))
    link = _to_links([raw])[0]
    if raw["master"]:
        try:
            master = priv_links.get_link_name(namespace, raw["master"])
        except DeviceNotFound:
            master = None
        link = Link(**{**link.__dict__, "master": master})
    return link


def get_devices(names: list[str], *, namespace: str | None = None) -> dict[str, Link]:
    """The devices of ``names`` that exist, by name (pipelined gets, no full dump).

    A master outside ``names`` is looked up by ifindex.
    """
    raw = priv_links.get_links(_ns(namespace), [_dev(name) for name in names])
    known = {item["index"]: item["name"] for item in raw.values()}
    for item in raw.values():
        master = item["master"]
        if master and master not in known:
            with contextlib.suppress(DeviceNotFound):
                known[master] = priv_links.get_link_name(namespace, master)
    return {link.name: link for link in _to_links(list(raw.values()), known)}


def device_exists(name: str, *, namespace: str | None = None) -> bool:
    """Whether a device of that name exists in the namespace."""
    try:
        priv_links.get_link(_ns(namespace), _dev(name))
    except DeviceNotFound:
        return False
    return True


# --- addresses -------------------------------------------------------------------------


def list_addresses(
    *,
    namespace: str | None = None,
    device: str | None = None,
    family: int = 0,
    names: Mapping[int, str] | None = None,
) -> list[Address]:
    """Addresses of a namespace (one dump each for devices and addresses).

    :param device: only this device's addresses.
    :param family: 4, 6, or 0 for both.
    :param names: device names by ifindex, when the caller has just read them (spares
        the device dump).
    """
    if family not in (0, 4, 6):
        raise InvalidArgument("family", family, "0, 4 or 6")
    ns = _ns(namespace)
    if device is not None:
        _dev(device)
    if names is None:
        names = {item["index"]: item["name"] for item in priv_links.list_links(ns)}
    result = []
    for item in priv_addresses.list_addresses(ns, family):
        name = names.get(item["index"], str(item["index"]))
        if device is None or name == device:
            iface = ipaddress.ip_interface(item["cidr"])
            result.append(Address(name, iface, item["scope"], item["flags"]))
    return result
