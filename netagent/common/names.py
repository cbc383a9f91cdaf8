"""Every device, namespace, chain and set name netagent uses, from pure functions.

Interop names (``tap``, ``qbr``/``qvb``/``qvo``, ``brq``, ``qrouter-``, ``qr-``, ``qg-``)
follow Nova and Neutron exactly, so devices created by Nova/os-vif or a previous Neutron
agent are recognised. They keep 11 characters of the id, as Nova does: two ports whose ids
share those 11 characters cannot both exist on one host, nor two networks whose ids do:
the agent refuses the newcomer (:func:`netagent.agent.planning.compute`).

netagent's own names that are keyed by a full UUID (security-group chains, ipsets) encode
all 128 bits in 25 base-36 characters, so distinct ids always give distinct names.
Bad input raises :class:`ValueError`; no function guesses a name.
"""

from __future__ import annotations

import re
import uuid
from typing import Literal

from netagent.common import constants as c

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_COMPACT_LEN = 25  # ceil(128 / log2(36))

Direction = Literal["ingress", "egress"]
Family = Literal[4, 6]


def _check_uuid(value: str, what: str) -> str:
    if not isinstance(value, str) or not _UUID_RE.match(value):
        raise ValueError(f"{what} must be a lower-case UUID, got {value!r}")
    return value


def _interop(prefix: str, resource_id: str, what: str) -> str:
    _check_uuid(resource_id, what)
    name = prefix + resource_id[: c.INTEROP_ID_CHARS]
    assert len(name) <= c.MAX_DEVICE_NAME_LEN
    return name


def compact_id(resource_id: str) -> str:
    """Encode a UUID injectively in 25 lower-case base-36 characters."""
    number = uuid.UUID(_check_uuid(resource_id, "id")).int
    digits = []
    for _ in range(_COMPACT_LEN):
        number, rest = divmod(number, 36)
        digits.append(_B36[rest])
    return "".join(reversed(digits))


def port_id_prefix(port_id: str) -> str:
    """The part of a port id that interop device names carry."""
    return _check_uuid(port_id, "port id")[: c.INTEROP_ID_CHARS]


def tap_device(port_id: str) -> str:
    """The VM NIC Nova/libvirt creates for a port: ``tap`` + 11 chars of the id."""
    return _interop(c.TAP_PREFIX, port_id, "port id")


def namespace_side_device(port_id: str) -> str:
    """The DHCP agent's end of its port's veth pair: ``ns-`` + 11 chars of the id.

    Neutron's DHCP agent names it (``LinuxInterfaceDriver.get_device_name`` with prefix
    ``ns-``); the host end is :func:`tap_device` of the same port.
    """
    return _interop(c.NAMESPACE_SIDE_PREFIX, port_id, "port id")


def hybrid_bridge(port_id: str) -> str:
    return _interop(c.HYBRID_BRIDGE_PREFIX, port_id, "port id")


def hybrid_veth_bridge_side(port_id: str) -> str:
    return _interop(c.HYBRID_VETH_BRIDGE_PREFIX, port_id, "port id")


def hybrid_veth_ovs_side(port_id: str) -> str:
    return _interop(c.HYBRID_VETH_OVS_PREFIX, port_id, "port id")


def network_bridge(network_id: str) -> str:
    """The Linux bridge of a network, as Nova's bridge VIF expects: ``brq`` + 11 chars."""
    return _interop(c.NETWORK_BRIDGE_PREFIX, network_id, "network id")


def router_namespace(router_id: str) -> str:
    return c.ROUTER_NAMESPACE_PREFIX + _check_uuid(router_id, "router id")


def router_internal_device(port_id: str) -> str:
    return _interop(c.ROUTER_INTERNAL_PREFIX, port_id, "port id")


def router_gateway_device(port_id: str) -> str:
    return _interop(c.ROUTER_GATEWAY_PREFIX, port_id, "port id")


def vxlan_device(vni: int) -> str:
    """netagent's VXLAN device for a VNI (1..2**24-1): ``nvx-<vni>``, at most 12 chars."""
    if isinstance(vni, bool) or not isinstance(vni, int) or not 1 <= vni <= 2**24 - 1:
        raise ValueError(f"VXLAN VNI must be an integer in 1..16777215, got {vni!r}")
    return f"{c.VXLAN_DEVICE_PREFIX}{vni}"


def vlan_device(network_id: str) -> str:
    """netagent's 802.1q sub-interface for a VLAN network: ``nvl-`` + 11 chars."""
    return _interop(c.VLAN_DEVICE_PREFIX, network_id, "network id")


def port_chain(direction: Direction, port_id: str) -> str:
    """Per-port filter chain, e.g. ``na-i-3f1c2a8e5d0`` (ingress) or ``na-o-...``.

    Unique on a host because the port's tap name (same 11 chars) is.
    """
    if direction not in ("ingress", "egress"):
        raise ValueError(f"direction must be ingress or egress, got {direction!r}")
    kind = "i" if direction == "ingress" else "o"
    return f"{c.CHAIN_PREFIX}{kind}-{port_id_prefix(port_id)}"


def port_spoof_chain(port_id: str) -> str:
    """Per-port anti-spoofing chain: ``na-s-`` + 11 chars."""
    return f"{c.CHAIN_PREFIX}s-{port_id_prefix(port_id)}"


def security_group_chain(direction: Direction, group_id: str) -> str:
    """Shared per-group rule chain: ``na`` + i/o + 25-char compact id (28 chars)."""
    if direction not in ("ingress", "egress"):
        raise ValueError(f"direction must be ingress or egress, got {direction!r}")
    kind = "i" if direction == "ingress" else "o"
    name = f"{c.CHAIN_PREFIX[:2]}{kind}{compact_id(group_id)}"
    assert len(name) <= c.MAX_CHAIN_NAME_LEN
    return name


def ipset_name(family: Family, group_id: str, *, temporary: bool = False) -> str:
    """ipset of a remote group's addresses: ``na4``/``na6`` + compact id (28 chars).

    ``temporary`` gives the name used to build a replacement before ``ipset swap``.
    """
    if family not in (4, 6):
        raise ValueError(f"family must be 4 or 6, got {family!r}")
    head = "nt" if temporary else c.IPSET_PREFIX
    name = f"{head}{family}{compact_id(group_id)}"
    assert len(name) <= c.MAX_IPSET_NAME_LEN
    return name
