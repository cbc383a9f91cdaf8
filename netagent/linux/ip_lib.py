"""Typed API for network devices and addresses, for drivers.

Every function validates its arguments first (names: 1..15 characters from
``[A-Za-z0-9_.-]``) and raises :class:`~netagent.privileged.errors.InvalidArgument`
before anything reaches the kernel. Kernel failures arrive as the typed exceptions of
:mod:`netagent.privileged.errors` (``DeviceNotFound``, ``DeviceExists``, ``DeviceBusy``,
``NamespaceNotFound``, ...). ``namespace=None`` means the agent's own namespace.

Many changes at once go through :func:`batch`, which pipelines them over the
namespace's netlink socket::

    with ip_lib.batch("qrouter-...") as b:
        b.create_veth("qr-1", "qr-1p", mtu=1450)
        b.set_master("qr-1", "br0")
        b.add_address("qr-1p", ipaddress.ip_interface("198.18.0.1/15"))
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from netagent.privileged import addresses as priv_addresses
from netagent.privileged import batch as priv_batch
from netagent.privileged import links as priv_links
from netagent.privileged import validate
from netagent.privileged.errors import DeviceNotFound, InvalidArgument

LOG = logging.getLogger(__name__)

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Op = dict[str, Any]


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


def _link_options(
    mtu: int | None, mac: str | None, master: str | None, up: bool | None
) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if mtu is not None:
        options["mtu"] = validate.int_range(mtu, 68, 65535, "mtu")
    if mac is not None:
        options["mac"] = validate.mac_address(mac)
    if master is not None:
        options["master"] = _dev(master, "master")
    if up is not None:
        options["up"] = bool(up)
    return options


def _veth_op(  # noqa: PLR0917 (private helper mirroring create_veth's keywords)
    name: str,
    peer: str,
    peer_namespace: str | None,
    mtu: int | None,
    peer_mtu: int | None,
    mac: str | None,
    peer_mac: str | None,
    master: str | None,
    up: bool,
    peer_up: bool,
) -> Op:
    op: Op = {"op": "create_veth", "name": _dev(name, "name"), "peer_name": _dev(peer, "peer")}
    op.update(_link_options(mtu, mac, master, up or None))
    if peer_namespace is not None:
        op["peer_namespace"] = validate.namespace_name(peer_namespace, "peer_namespace")
    for key, value in _link_options(peer_mtu, peer_mac, None, None).items():
        op["peer_" + key] = value
    if peer_up and peer_namespace is None:
        op["peer_up"] = True
    return op


def _address_op(opname: str, device: str, interface: IPInterface, nodad: bool = False) -> Op:
    if not isinstance(interface, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        raise InvalidArgument("interface", interface, "IPv4/IPv6Interface expected")
    return {"op": opname, "device": _dev(device), "cidr": str(interface), "nodad": nodad}


# --- devices ---------------------------------------------------------------------------


def create_veth(
    name: str,
    peer: str,
    *,
    namespace: str | None = None,
    peer_namespace: str | None = None,
    mtu: int | None = None,
    peer_mtu: int | None = None,
    mac: str | None = None,
    peer_mac: str | None = None,
    master: str | None = None,
    up: bool = False,
    peer_up: bool = False,
) -> None:
    """Create a veth pair in one request; the peer may go straight to another namespace.

    :param name: end created in ``namespace``.
    :param peer: other end, created in ``peer_namespace`` (default: the same).
    :param master: bridge to enslave ``name`` to.
    :param up: bring ``name`` up; ``peer_up``: bring ``peer`` up.
    :raises DeviceExists: a device of either name exists.
    :raises NamespaceNotFound: either namespace is missing.
    """
    op = _veth_op(name, peer, peer_namespace, mtu, peer_mtu, mac, peer_mac, master, up, peer_up)
    priv_batch.execute_one(_ns(namespace), op)
    if peer_up and peer_namespace is not None:
        set_up(peer, namespace=peer_namespace)


def create_tap(
    name: str,
    *,
    namespace: str | None = None,
    mtu: int | None = None,
    mac: str | None = None,
    master: str | None = None,
    up: bool = False,
) -> None:
    """Create a persistent tap device (IFF_TAP | IFF_NO_PI) and configure it.

    :raises DeviceExists: a device of that name exists.
    """
    options = _link_options(mtu, mac, master, up or None)
    priv_links.create_tap(_ns(namespace), _dev(name, "name"))
    if options:
        priv_batch.execute_one(namespace, {"op": "set_link", "name": name, **options})


def create_bridge(
    name: str,
    *,
    namespace: str | None = None,
    ageing_time: int = 300,
    forward_delay: int = 0,
    mtu: int | None = None,
    mac: str | None = None,
    up: bool = False,
) -> None:
    """Create a Linux bridge with STP off.

    :param ageing_time: FDB ageing in seconds (10..1000000; never 0, which would turn
        the bridge into a hub).
    :param forward_delay: seconds (0..30).
    :raises DeviceExists: a device of that name exists.
    """
    op: Op = {"op": "create_bridge", "name": _dev(name, "name")}
    op["ageing_time"] = validate.int_range(ageing_time, 10, 1000000, "ageing_time")
    op["forward_delay"] = validate.int_range(forward_delay, 0, 30, "forward_delay")
    op.update(_link_options(mtu, mac, None, up or None))
    priv_batch.execute_one(_ns(namespace), op)


def create_vxlan(
    name: str,
    vni: int,
    *,
    namespace: str | None = None,
    local: IPAddress | None = None,
    group: IPAddress | None = None,
    port: int = 4789,
    learning: bool = False,
    underlay: str | None = None,
    ttl: int | None = None,
    mtu: int | None = None,
    master: str | None = None,
    up: bool = False,
) -> None:
    """Create a VXLAN device.

    :param vni: VXLAN network identifier, 1..16777215.
    :param local: source address of the tunnel.
    :param group: multicast group (or single remote); None for FDB-driven unicast.
    :param port: UDP destination port.
    :param learning: learn remote MACs from received packets.
    :param underlay: device the tunnel is bound to.
    :raises DeviceExists: a device of that name exists.
    """
    op: Op = {
        "op": "create_vxlan",
        "name": _dev(name, "name"),
        "vni": validate.int_range(vni, 1, 2**24 - 1, "vni"),
        "port": validate.int_range(port, 1, 65535, "port"),
        "learning": bool(learning),
    }
    if local is not None:
        op["local"] = str(ipaddress.ip_address(local))
    if group is not None:
        op["group"] = str(ipaddress.ip_address(group))
    if underlay is not None:
        op["underlay"] = _dev(underlay, "underlay")
    if ttl is not None:
        op["ttl"] = validate.int_range(ttl, 0, 255, "ttl")
    op.update(_link_options(mtu, None, master, up or None))
    priv_batch.execute_one(_ns(namespace), op)


def create_vlan(
    name: str,
    parent: str,
    vlan_id: int,
    *,
    namespace: str | None = None,
    mtu: int | None = None,
    up: bool = False,
) -> None:
    """Create an 802.1q device ``name`` on ``parent`` (needs the kernel's 8021q module).

    :param vlan_id: 1..4094.
    :raises DeviceExists: a device of that name exists.
    :raises DeviceNotFound: ``parent`` does not exist.
    :raises KernelError: e.g. EOPNOTSUPP when the kernel has no 802.1q support.
    """
    op: Op = {
        "op": "create_vlan",
        "name": _dev(name, "name"),
        "link": _dev(parent, "parent"),
        "vlan_id": validate.int_range(vlan_id, 1, 4094, "vlan_id"),
    }
    op.update(_link_options(mtu, None, None, up or None))
    priv_batch.execute_one(_ns(namespace), op)


def create_dummy(
    name: str,
    *,
    namespace: str | None = None,
    mtu: int | None = None,
    mac: str | None = None,
    up: bool = False,
) -> None:
    """Create a dummy device.

    :raises DeviceExists: a device of that name exists.
    """
    op: Op = {"op": "create_dummy", "name": _dev(name, "name")}
    op.update(_link_options(mtu, mac, None, up or None))
    priv_batch.execute_one(_ns(namespace), op)


def delete_device(name: str, *, namespace: str | None = None, missing_ok: bool = False) -> None:
    """Delete a device (deleting one end of a veth deletes both).

    :param missing_ok: return quietly if it does not exist.
    :raises DeviceNotFound: it does not exist and ``missing_ok`` is false.
    """
    try:
        priv_batch.execute_one(_ns(namespace), {"op": "delete_link", "name": _dev(name, "name")})
    except DeviceNotFound:
        if not missing_ok:
            raise


def set_link(
    name: str,
    *,
    namespace: str | None = None,
    mtu: int | None = None,
    mac: str | None = None,
    up: bool | None = None,
    master: str | None = None,
    nomaster: bool = False,
) -> None:
    """Change several properties of a device in one request.

    :param master: enslave the device to this bridge.
    :param nomaster: release the device from its master.
    :raises DeviceNotFound: no such device (or no such master).
    """
    if master is not None and nomaster:
        raise InvalidArgument("nomaster", nomaster, "master given too")
    op: Op = {"op": "set_link", "name": _dev(name, "name")}
    op.update(_link_options(mtu, mac, master, up))
    if nomaster:
        op["master"] = ""
    priv_batch.execute_one(_ns(namespace), op)


def _bridge_port_op(name: str, neigh_suppress: bool | None, learning: bool | None) -> Op:
    op: Op = {"op": "set_bridge_port", "name": _dev(name, "name")}
    for key, value in (("neigh_suppress", neigh_suppress), ("learning", learning)):
        if value is None:
            continue
        if not isinstance(value, bool):
            raise InvalidArgument(key, value, "bool expected")
        op[key] = value
    if len(op) == 2:
        raise InvalidArgument("flags", None, "neigh_suppress or learning expected")
    return op


def set_bridge_port(
    name: str,
    *,
    neigh_suppress: bool | None = None,
    learning: bool | None = None,
    namespace: str | None = None,
) -> None:
    """Set flags of the bridge port ``name`` (``bridge link set dev X neigh_suppress on``).

    :param neigh_suppress: the bridge answers ARP requests and IPv6 neighbour
        solicitations that would leave through this port from its own neighbour table
        (entries on the bridge device whose MAC has an FDB entry on a suppressing port),
        and does not send them, nor gratuitous ARP and unsolicited NA, out of this port.
    :param learning: the bridge learns source MACs of frames received on this port.
    :raises InvalidArgument: neither flag given, or not a bool.
    :raises DeviceNotFound: no such device.
    :raises KernelError: EOPNOTSUPP when ``name`` is not a bridge port.
    """
    op = _bridge_port_op(name, neigh_suppress, learning)
    priv_batch.execute_one(_ns(namespace), op)


def set_mtu(name: str, mtu: int, *, namespace: str | None = None) -> None:
    """Set the MTU of a device."""
    set_link(name, namespace=namespace, mtu=mtu)


def set_mac(name: str, mac: str, *, namespace: str | None = None) -> None:
    """Set the MAC address of a device."""
    set_link(name, namespace=namespace, mac=mac)


def set_up(name: str, *, namespace: str | None = None) -> None:
    """Bring a device up."""
    set_link(name, namespace=namespace, up=True)


def set_down(name: str, *, namespace: str | None = None) -> None:
    """Bring a device down."""
    set_link(name, namespace=namespace, up=False)


def set_master(name: str, master: str, *, namespace: str | None = None) -> None:
    """Enslave ``name`` to the bridge ``master``.

    :raises DeviceNotFound: either device is missing.
    """
    op = {"op": "set_link", "name": _dev(name, "name"), "master": _dev(master, "master")}
    priv_batch.execute_one(_ns(namespace), op)


def release(name: str, *, namespace: str | None = None) -> None:
    """Release ``name`` from its master (``ip link set X nomaster``)."""
    priv_batch.execute_one(_ns(namespace), {"op": "set_link", "name": _dev(name), "master": ""})


def _to_links(raw: list[dict[str, Any]]) -> list[Link]:
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
    master = raw["master"]
    links = _to_links([raw])
    if master:
        found = [item for item in priv_links.list_links(namespace) if item["index"] == master]
        master_name = found[0]["name"] if found else None
        links = [Link(**{**links[0].__dict__, "master": master_name})]
    return links[0]


def device_exists(name: str, *, namespace: str | None = None) -> bool:
    """Whether a device of that name exists in the namespace."""
    try:
        priv_links.get_link(_ns(namespace), _dev(name))
    except DeviceNotFound:
        return False
    return True


# --- addresses -------------------------------------------------------------------------


def add_address(
    device: str, interface: IPInterface, *, namespace: str | None = None, nodad: bool = False
) -> None:
    """Add an address, e.g. ``ipaddress.ip_interface("198.18.0.1/15")``.

    :param nodad: IPv6: usable at once, no duplicate address detection.
    :raises EntryExists: the address is already on the device.
    :raises DeviceNotFound: no such device.
    """
    priv_batch.execute_one(_ns(namespace), _address_op("add_address", device, interface, nodad))


def delete_address(device: str, interface: IPInterface, *, namespace: str | None = None) -> None:
    """Remove an address from a device.

    :raises EntryNotFound: the address is not on the device.
    """
    priv_batch.execute_one(_ns(namespace), _address_op("delete_address", device, interface))


def list_addresses(
    *, namespace: str | None = None, device: str | None = None, family: int = 0
) -> list[Address]:
    """Addresses of a namespace (one dump each for devices and addresses).

    :param device: only this device's addresses.
    :param family: 4, 6, or 0 for both.
    """
    if family not in (0, 4, 6):
        raise InvalidArgument("family", family, "0, 4 or 6")
    ns = _ns(namespace)
    if device is not None:
        _dev(device)
    names = {item["index"]: item["name"] for item in priv_links.list_links(ns)}
    result = []
    for item in priv_addresses.list_addresses(ns, family):
        name = names.get(item["index"], str(item["index"]))
        if device is None or name == device:
            iface = ipaddress.ip_interface(item["cidr"])
            result.append(Address(name, iface, item["scope"], item["flags"]))
    return result


# --- batches ---------------------------------------------------------------------------


class Batch:
    """Operations queued for one namespace, sent pipelined by :func:`batch`.

    Methods mirror the module functions; nothing is sent until the ``with`` block ends.
    Arguments are validated when a method is called.
    """

    def __init__(self, namespace: str | None) -> None:
        self.namespace = _ns(namespace)
        self.ops: list[Op] = []

    def __repr__(self) -> str:
        return f"Batch(namespace={self.namespace!r}, {len(self.ops)} ops)"

    def create_veth(
        self,
        name: str,
        peer: str,
        *,
        peer_namespace: str | None = None,
        mtu: int | None = None,
        peer_mtu: int | None = None,
        mac: str | None = None,
        peer_mac: str | None = None,
        master: str | None = None,
        up: bool = False,
        peer_up: bool = False,
    ) -> None:
        """Queue :func:`create_veth` (``peer_up`` needs the peer in this namespace)."""
        if peer_up and peer_namespace is not None:
            raise InvalidArgument("peer_up", peer_up, "peer is in another namespace")
        self.ops.append(
            _veth_op(name, peer, peer_namespace, mtu, peer_mtu, mac, peer_mac, master, up, peer_up)
        )

    def create_bridge(
        self, name: str, *, ageing_time: int = 300, forward_delay: int = 0, up: bool = False
    ) -> None:
        """Queue :func:`create_bridge`."""
        op: Op = {"op": "create_bridge", "name": _dev(name, "name"), "up": up}
        op["ageing_time"] = validate.int_range(ageing_time, 10, 1000000, "ageing_time")
        op["forward_delay"] = validate.int_range(forward_delay, 0, 30, "forward_delay")
        self.ops.append(op)

    def create_dummy(self, name: str, *, up: bool = False) -> None:
        """Queue :func:`create_dummy`."""
        self.ops.append({"op": "create_dummy", "name": _dev(name, "name"), "up": up})

    def delete_device(self, name: str) -> None:
        """Queue :func:`delete_device`."""
        self.ops.append({"op": "delete_link", "name": _dev(name, "name")})

    def set_link(
        self, name: str, *, mtu: int | None = None, mac: str | None = None, up: bool | None = None
    ) -> None:
        """Queue :func:`set_link`."""
        self.ops.append(
            {"op": "set_link", "name": _dev(name), **_link_options(mtu, mac, None, up)}
        )

    def set_bridge_port(
        self, name: str, *, neigh_suppress: bool | None = None, learning: bool | None = None
    ) -> None:
        """Queue :func:`set_bridge_port`."""
        self.ops.append(_bridge_port_op(name, neigh_suppress, learning))

    def set_mtu(self, name: str, mtu: int) -> None:
        """Queue :func:`set_mtu`."""
        self.set_link(name, mtu=mtu)

    def set_up(self, name: str) -> None:
        """Queue :func:`set_up`."""
        self.set_link(name, up=True)

    def set_down(self, name: str) -> None:
        """Queue :func:`set_down`."""
        self.set_link(name, up=False)

    def set_master(self, name: str, master: str) -> None:
        """Queue :func:`set_master`."""
        self.ops.append({"op": "set_link", "name": _dev(name), "master": _dev(master, "master")})

    def release(self, name: str) -> None:
        """Queue :func:`release`."""
        self.ops.append({"op": "set_link", "name": _dev(name), "master": ""})

    def add_address(self, device: str, interface: IPInterface, *, nodad: bool = False) -> None:
        """Queue :func:`add_address`."""
        self.ops.append(_address_op("add_address", device, interface, nodad))

    def delete_address(self, device: str, interface: IPInterface) -> None:
        """Queue :func:`delete_address`."""
        self.ops.append(_address_op("delete_address", device, interface))

    def add_raw(self, op: Op) -> None:
        """Queue an operation built by another linux module (routes, neighbours, FDB)."""
        self.ops.append(op)

    def apply(self) -> None:
        """Send the queued operations and clear the queue.

        :raises BatchError: some operations failed (the others were applied);
            ``errors()`` gives ``(index, typed exception)`` pairs.
        """
        ops, self.ops = self.ops, []
        if ops:
            priv_batch.execute(self.namespace, ops)


@contextmanager
def batch(namespace: str | None = None) -> Iterator[Batch]:
    """Queue operations in a ``with`` block and send them pipelined at its end.

    Nothing is sent if the block raises.

    :raises BatchError: some operations failed.
    """
    queued = Batch(namespace)
    yield queued
    queued.apply()
