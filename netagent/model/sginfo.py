"""The reply of ``security_group_info_for_devices`` (neutron-wire.md section 5.1)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from netagent.model import validate as v
from netagent.model.errors import ModelError
from netagent.model.port import Port
from netagent.model.secgroup import MAX_RULES, EtherType, SecurityGroup, SecurityGroupRule
from netagent.model.state import frozen_map
from netagent.model.validate import IPNetwork, Reader

MAX_MEMBERS = 65536
_ETHERTYPES = {member.value: member for member in EtherType}


@dataclasses.dataclass(frozen=True, slots=True)
class MemberAddress:
    """One ``sg_member_ips`` entry: an address or prefix, and the MAC of an allowed
    address pair (``None`` for fixed IPs and address-group prefixes)."""

    ip_address: IPNetwork
    mac_address: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class SecurityGroupInfo:
    """Parsed ``security_group_info_for_devices`` reply (``call_version`` 1.3 or 1.2).

    Each device, group and member list is parsed on its own: a bad one is left out and
    reported in :attr:`errors`, the rest is kept.

    :ivar devices: ports by id (``fixed_ips`` there are bare addresses, so
        :attr:`FixedIP.subnet_id` is ``None``).
    :ivar provider_rules: the per-port rules the server adds (DHCP, RA), by port id.
    :ivar security_groups: groups by id (no names in this reply).
    :ivar member_ips: remote group / address group id → ethertype → addresses.
    """

    devices: Mapping[str, Port]
    provider_rules: Mapping[str, tuple[SecurityGroupRule, ...]]
    security_groups: Mapping[str, SecurityGroup]
    member_ips: Mapping[str, Mapping[EtherType, tuple[MemberAddress, ...]]]
    errors: tuple[ModelError, ...] = ()

    @classmethod
    def from_rpc(cls, reply: object) -> SecurityGroupInfo:
        """Parse the reply.

        :raises ModelError: only when the reply itself is not a mapping of mappings.
        """
        top = Reader(reply, "security_group_info")
        errors: list[ModelError] = []
        devices: dict[str, Port] = {}
        provider: dict[str, tuple[SecurityGroupRule, ...]] = {}
        for key, value in _entries(top, "devices"):
            try:
                port, rules = _device(key, value)
            except ModelError as exc:
                errors.append(exc)
                continue
            devices[port.id] = port
            provider[port.id] = rules
        groups: dict[str, SecurityGroup] = {}
        for key, value in _entries(top, "security_groups"):
            try:
                group = SecurityGroup.from_rpc(key, value)
            except ModelError as exc:
                errors.append(exc)
                continue
            groups[group.id] = group
        members: dict[str, Mapping[EtherType, tuple[MemberAddress, ...]]] = {}
        for key, value in _entries(top, "sg_member_ips"):
            try:
                group_id, per_family = _members(key, value)
            except ModelError as exc:
                errors.append(exc)
                continue
            members[group_id] = per_family
        return cls(
            devices=frozen_map(devices),
            provider_rules=frozen_map(provider),
            security_groups=frozen_map(groups),
            member_ips=frozen_map(members),
            errors=tuple(errors),
        )


def _entries(top: Reader, key: str) -> list[tuple[object, object]]:
    section = top.raw(key)
    if section is None:
        return []
    if not isinstance(section, Mapping):
        top.fail(key, "expected a mapping")
    if len(section) > MAX_MEMBERS:
        top.fail(key, f"more than {MAX_MEMBERS} entries")
    return list(section.items())


def _device(key: object, value: object) -> tuple[Port, tuple[SecurityGroupRule, ...]]:
    r = Reader(value, "port")
    r.object_id = r.convert("<key>", key, v.uuid)
    port = Port.from_reader(r, bare_fixed_ips=True)
    if port.id != key:
        r.fail("id", f"differs from the key {key}")
    rules = tuple(
        SecurityGroupRule.from_reader(r.sub(path, item), None, rpc=True)
        for path, item in r.items("security_group_rules", max_len=MAX_RULES)
    )
    return port, rules


def _members(
    key: object, value: object
) -> tuple[str, Mapping[EtherType, tuple[MemberAddress, ...]]]:
    r = Reader(value, "security_group")
    group_id = r.convert("<key>", key, v.uuid)
    r.object_id = group_id
    result: dict[EtherType, tuple[MemberAddress, ...]] = {}
    for name, ethertype in _ETHERTYPES.items():
        entries: list[MemberAddress] = []
        for path, item in r.items(name, max_len=MAX_MEMBERS):
            if isinstance(item, list | tuple) and len(item) == 2:
                address = r.convert(path + "[0]", item[0], v.host_or_cidr)
                mac = None if item[1] is None else r.convert(path + "[1]", item[1], v.mac)
            else:
                address, mac = r.convert(path, item, v.host_or_cidr), None
            if address.version != ethertype.version:
                r.fail(path, f"IPv{address.version} address in the {name} list")
            entries.append(MemberAddress(address, mac))
        if entries or r.has(name):
            result[ethertype] = tuple(dict.fromkeys(entries))
    return group_id, frozen_map(result)
