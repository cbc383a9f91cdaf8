"""Ports, their fixed IPs and allowed address pairs."""

from __future__ import annotations

import dataclasses

from netagent.common import names
from netagent.model import validate as v
from netagent.model.errors import ModelError
from netagent.model.network import Network, ipv6_mtu_problem
from netagent.model.validate import IPAddress, IPNetwork, Reader

#: Neutron's default ``max_fixed_ips_per_port`` is 5; this only bounds hostile input.
MAX_FIXED_IPS = 256
MAX_ADDRESS_PAIRS = 1024
MAX_SECURITY_GROUPS = 256


@dataclasses.dataclass(frozen=True, slots=True)
class FixedIP:
    """An address of a port on one of its network's subnets.

    :ivar subnet_id: ``None`` only in the ``security_group_info_for_devices`` shape, which
        lists bare addresses.
    """

    subnet_id: str | None
    ip_address: IPAddress


@dataclasses.dataclass(frozen=True, slots=True)
class AllowedAddressPair:
    """An extra address (host or prefix) a port may send from, and optionally its MAC.

    :ivar ip_address: a network; a bare address is a ``/32`` or ``/128``; host bits of a
        prefix are masked.
    :ivar mac_address: ``None`` means the port's own MAC.
    """

    ip_address: IPNetwork
    mac_address: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Port:
    """A Neutron port.

    :ivar mac_address: unicast, lower-case ``aa:bb:cc:dd:ee:ff``.
    :ivar host: ``binding:host_id``; ``None`` when unbound.
    :ivar device_owner: ``[a-z0-9:_.-]``, e.g. ``compute:nova``, ``network:router_interface``.
    :ivar security_groups: ids, duplicates removed, order kept; empty when
        ``port_security_enabled`` is false.
    :ivar device_id: the owner's id (a Nova instance, a router...), an opaque token of
        ``[A-Za-z0-9:_.-]`` since Neutron does not require a UUID there; ``None`` if empty.
    """

    id: str
    network_id: str
    mac_address: str
    fixed_ips: tuple[FixedIP, ...] = ()
    host: str | None = None
    device_owner: str = ""
    admin_state_up: bool = True
    port_security_enabled: bool = True
    security_groups: tuple[str, ...] = ()
    allowed_address_pairs: tuple[AllowedAddressPair, ...] = ()
    device_id: str | None = None

    @property
    def device_name(self) -> str:
        """The tap device Nova creates for this port (``tap`` + 11 characters of the id)."""
        return names.tap_device(self.id)

    @property
    def addresses(self) -> tuple[IPAddress, ...]:
        """The fixed IP addresses."""
        return tuple(fixed.ip_address for fixed in self.fixed_ips)

    @classmethod
    def from_api(cls, data: object) -> Port:
        """Parse a Neutron API port dict (``binding:host_id`` gives :attr:`host`).

        :raises ModelError: on any invalid field.
        """
        r = Reader.root(data, "port")
        return cls.from_reader(r)

    @classmethod
    def from_reader(cls, r: Reader, *, bare_fixed_ips: bool = False) -> Port:
        """Parse an API-shaped port from a reader (used for ports nested in routers).

        :param bare_fixed_ips: ``fixed_ips`` is a list of address strings
            (``security_group_info_for_devices``) instead of dicts.
        :raises ModelError: on any invalid field.
        """
        host = r.opt("binding:host_id", _optional_host, None)
        return cls._build(r, r.req("id", v.uuid), host, bare_fixed_ips=bare_fixed_ips)

    @classmethod
    def from_device_details(
        cls, data: object, *, host: str | None = None, security_groups: tuple[str, ...] = ()
    ) -> Port:
        """Parse an entry of ``get_devices_details_list_and_failed_devices``.

        The entry has neither ``security_groups`` nor the binding host; pass them in (the
        groups come from ``security_group_info_for_devices``, the host is the agent's).
        Use :meth:`Network.from_device_details` for the segment carried inline.

        :raises ModelError: on any invalid field, or when the entry has no ``port_id``
            (the server knows no bound port for that device).
        """
        r = Reader.root(data, "port", id_key="port_id")
        port_id = r.req("port_id", v.uuid)
        groups = tuple(
            dict.fromkeys(r.convert("security_groups", group, v.uuid) for group in security_groups)
        )
        port = cls._build(r, port_id, host, bare_fixed_ips=False)
        if groups and not port.port_security_enabled:
            r.fail("port_security_enabled", "false, but security groups were given")
        return dataclasses.replace(port, security_groups=groups)

    @classmethod
    def _build(cls, r: Reader, port_id: str, host: str | None, *, bare_fixed_ips: bool) -> Port:
        fixed_ips = _fixed_ips(r, bare=bare_fixed_ips)
        pairs = tuple(
            _address_pair(r.sub(path, item))
            for path, item in r.items("allowed_address_pairs", max_len=MAX_ADDRESS_PAIRS)
        )
        groups = _security_groups(r)
        security = r.opt("port_security_enabled", v.boolean, True)
        if not security and groups:
            r.fail("security_groups", "must be empty when port_security_enabled is false")
        if not security and pairs:
            r.fail("allowed_address_pairs", "must be empty when port_security_enabled is false")
        return cls(
            id=port_id,
            network_id=r.req("network_id", v.uuid),
            mac_address=r.req("mac_address", v.mac),
            fixed_ips=fixed_ips,
            host=host,
            device_owner=r.opt("device_owner", v.device_owner, ""),
            admin_state_up=r.opt("admin_state_up", v.boolean, True),
            port_security_enabled=security,
            security_groups=groups,
            allowed_address_pairs=pairs,
            device_id=r.opt("device_id", _optional_token, None),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceDetails:
    """One entry of ``get_devices_details_list_and_failed_devices`` ``devices``.

    :ivar device: the device string the agent asked for, echoed back.
    :ivar port: the port, or ``None`` when the server has no bound port for the device.
    :ivar network: the port's network (segment inline in the entry), or ``None``.
    :ivar no_active_binding: the port is bound to another host ("not for me").
    """

    device: str
    port: Port | None
    network: Network | None
    no_active_binding: bool = False

    @classmethod
    def from_rpc(cls, data: object, *, host: str | None = None) -> DeviceDetails:
        """Parse one details entry.

        :param host: the agent's host, recorded as the port's binding host.
        :raises ModelError: on any invalid field (kind ``port`` or ``network``).
        """
        r = Reader(data, "port")
        device = r.req("device", v.token)
        if not r.has("port_id"):
            return cls(device, None, None, r.opt("no_active_binding", v.boolean, False))
        port = Port.from_device_details(data, host=host)
        network = Network.from_device_details(data)
        ipv6 = next((a for a in port.addresses if a.version == 6), None)
        why = ipv6_mtu_problem(network, None if ipv6 is None else f"IPv6 address {ipv6}")
        if why is not None:
            raise ModelError("network", network.id, "mtu", why)
        return cls(device, port, network)


def _optional_host(value: object) -> str | None:
    return None if value == "" else v.hostname(value)


def _optional_token(value: object) -> str | None:
    return None if value == "" else v.token(value)


def _security_groups(r: Reader) -> tuple[str, ...]:
    groups = r.each("security_groups", v.uuid, max_len=MAX_SECURITY_GROUPS)
    return tuple(dict.fromkeys(groups))


def _fixed_ips(r: Reader, *, bare: bool) -> tuple[FixedIP, ...]:
    result: list[FixedIP] = []
    seen: set[IPAddress] = set()
    for path, item in r.items("fixed_ips", max_len=MAX_FIXED_IPS):
        if bare:
            fixed = FixedIP(None, r.convert(path, item, v.ip_address))
        else:
            entry = r.sub(path, item)
            fixed = FixedIP(entry.req("subnet_id", v.uuid), entry.req("ip_address", v.ip_address))
        if fixed.ip_address in seen:
            r.fail(path, f"duplicate address {fixed.ip_address}")
        seen.add(fixed.ip_address)
        result.append(fixed)
    return tuple(result)


def _address_pair(r: Reader) -> AllowedAddressPair:
    return AllowedAddressPair(
        ip_address=r.req("ip_address", v.host_or_cidr),
        mac_address=r.opt("mac_address", v.mac, None),
    )
