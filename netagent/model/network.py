"""Networks and subnets."""

from __future__ import annotations

import dataclasses
import enum

from netagent.model import validate as v
from netagent.model.validate import IPAddress, IPNetwork, Reader

MTU_MIN = 68
MTU_MAX = 65535
DEFAULT_MTU = 1500
#: IPv6 needs links of at least this MTU (RFC 8200 section 5).
IPV6_MIN_MTU = 1280
VXLAN_VNI_MAX = 2**24 - 1
VLAN_ID_MAX = 4094

IPV6_MODES = ("slaac", "dhcpv6-stateful", "dhcpv6-stateless")


class NetworkType(enum.StrEnum):
    """Segmentation types netagent wires."""

    FLAT = "flat"
    VXLAN = "vxlan"
    VLAN = "vlan"
    LOCAL = "local"


_NETWORK_TYPES = {member.value: member for member in NetworkType}


@dataclasses.dataclass(frozen=True, slots=True)
class Network:
    """A network and its (single) segment.

    :ivar segmentation_id: VXLAN VNI (1..16777215) or VLAN id (1..4094); ``None`` for
        flat and local networks.
    :ivar physical_network: required for flat and vlan, ``None`` otherwise.
    :ivar mtu: 68..65535.
    """

    id: str
    name: str
    network_type: NetworkType
    segmentation_id: int | None
    physical_network: str | None
    mtu: int = DEFAULT_MTU
    admin_state_up: bool = True

    @classmethod
    def from_api(cls, data: object) -> Network:
        """Parse a Neutron API network dict (``provider:*`` keys, ``mtu``...).

        :param data: untrusted value.
        :raises ModelError: on any invalid field.
        """
        r = Reader.root(data, "network")
        return cls._build(r, r.req("id", v.uuid), r.opt("name", v.name, ""), "provider:")

    @classmethod
    def from_device_details(cls, data: object) -> Network:
        """The network of an RPC ``get_devices_details_list*`` entry (segment inline).

        The entry has no network name, so ``name`` is ``""``.

        :raises ModelError: on any invalid field (kind ``network``, id = ``network_id``).
        """
        r = Reader(data, "network")
        r.object_id = r.req("network_id", v.uuid)
        return cls._build(r, r.object_id, "", "")

    @classmethod
    def _build(cls, r: Reader, network_id: str, name: str, prefix: str) -> Network:
        type_key = prefix + "network_type"
        seg_key = prefix + "segmentation_id"
        phys_key = prefix + "physical_network"
        network_type = r.req(type_key, v.choice(_NETWORK_TYPES))
        segmentation_id: int | None = None
        physical_network: str | None = None
        if network_type is NetworkType.VXLAN:
            segmentation_id = r.req(seg_key, v.int_range(1, VXLAN_VNI_MAX))
        elif network_type is NetworkType.VLAN:
            segmentation_id = r.req(seg_key, v.int_range(1, VLAN_ID_MAX))
        elif r.has(seg_key):
            r.fail(seg_key, f"must be null for a {network_type.value} network")
        if network_type in (NetworkType.FLAT, NetworkType.VLAN):
            physical_network = r.req(phys_key, v.physical_network)
        elif r.has(phys_key):
            r.fail(phys_key, f"must be null for a {network_type.value} network")
        return cls(
            id=network_id,
            name=name,
            network_type=network_type,
            segmentation_id=segmentation_id,
            physical_network=physical_network,
            mtu=r.opt("mtu", v.int_range(MTU_MIN, MTU_MAX), DEFAULT_MTU),
            admin_state_up=r.opt("admin_state_up", v.boolean, True),
        )


def ipv6_mtu_problem(network: Network, ipv6_user: str | None) -> str | None:
    """Why ``network`` cannot carry IPv6, when something on it uses IPv6.

    Both sources refuse such a network with this reason: the state file when it has an
    IPv6 subnet, the Neutron source when a port has an IPv6 fixed IP on it.

    :param ipv6_user: what uses IPv6 on the network (e.g. ``"IPv6 subnet <id>"``), or
        ``None`` when nothing does.
    """
    if ipv6_user is None or network.mtu >= IPV6_MIN_MTU:
        return None
    return f"{network.mtu} is below {IPV6_MIN_MTU}, the IPv6 minimum, and it has {ipv6_user}"


@dataclasses.dataclass(frozen=True, slots=True)
class Subnet:
    """A subnet of a network.

    :ivar cidr: the prefix, host bits clear.
    :ivar ip_version: 4 or 6, matching ``cidr``.
    :ivar gateway_ip: same family as ``cidr``, or ``None``.
    :ivar ipv6_ra_mode: ``None`` or one of slaac, dhcpv6-stateful, dhcpv6-stateless
        (IPv6 only); likewise ``ipv6_address_mode``.
    """

    id: str
    network_id: str
    cidr: IPNetwork
    ip_version: int
    gateway_ip: IPAddress | None = None
    enable_dhcp: bool = True
    ipv6_ra_mode: str | None = None
    ipv6_address_mode: str | None = None

    @classmethod
    def from_api(cls, data: object) -> Subnet:
        """Parse a Neutron API subnet dict.

        ``ip_version`` may be left out; it is then taken from ``cidr``.

        :raises ModelError: on any invalid field.
        """
        r = Reader.root(data, "subnet")
        return cls._build(r, r.req("network_id", v.uuid))

    @classmethod
    def from_router_port(cls, reader: Reader, network_id: str) -> Subnet:
        """Parse a ``subnets`` entry of a ``sync_routers`` port (no ``network_id`` in it).

        :param reader: reader positioned on the entry (errors name the router's field).
        :param network_id: the port's network.
        :raises ModelError: on any invalid field.
        """
        return cls._build(reader, network_id)

    @classmethod
    def _build(cls, r: Reader, network_id: str) -> Subnet:
        cidr = r.req("cidr", v.strict_cidr)
        ip_version = r.opt("ip_version", _ip_version, cidr.version)
        if ip_version != cidr.version:
            r.fail("ip_version", f"{ip_version} does not match cidr {cidr}")
        gateway = r.opt("gateway_ip", v.ip_address, None)
        if gateway is not None and gateway.version != cidr.version:
            r.fail("gateway_ip", f"IPv{gateway.version} gateway on an IPv{cidr.version} subnet")
        modes: list[str | None] = []
        for key in ("ipv6_ra_mode", "ipv6_address_mode"):
            mode = r.opt(key, v.choice({m: m for m in IPV6_MODES}), None)
            if mode is not None and cidr.version != 6:
                r.fail(key, "only valid on IPv6 subnets")
            modes.append(mode)
        return cls(
            id=r.req("id", v.uuid),
            network_id=network_id,
            cidr=cidr,
            ip_version=ip_version,
            gateway_ip=gateway,
            enable_dhcp=r.opt("enable_dhcp", v.boolean, True),
            ipv6_ra_mode=modes[0],
            ipv6_address_mode=modes[1],
        )


def _ip_version(value: object) -> int:
    if type(value) is int and value in (4, 6):
        return value
    raise v.FieldError(f"not 4 or 6: {v.show(value)}")
