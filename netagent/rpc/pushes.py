"""The server's object pushes (§4.5), read as "these groups' members may have changed".

Neutron's legacy security-group casts miss two changes that remote-group and
address-group member lists depend on: ``security_groups_member_updated`` is cast when a
port's fixed IPs or groups change, not when its allowed address pairs (which are
members too) or its MAC change, and an address group's change has no legacy cast at all.
Agents on other hosts would only learn of them at their next periodic resync. The server
pushes every Port and AddressGroup change to every agent as an oslo.versionedobjects
primitive on ``neutron-vo-<Type>-<version>``. netagent reads only what decides
membership from it and marks the groups concerned, as a member update would: the member
lists themselves still come from ``security_group_info_for_devices``.

Ports change far more often than their membership (every status report is pushed too),
so :class:`MembershipTracker` remembers a digest of each port's membership fields and
marks its groups only when that digest changes.
"""

from __future__ import annotations

import threading
from typing import Any

from netagent.model import validate as v
from netagent.rpc.rejects import REJECTIONS

METHOD = "push"
#: Ports whose membership digest is remembered; past this the memory starts afresh (a
#: forgotten port's next push marks its groups once more, which is harmless).
MAX_TRACKED = 200_000

_NAME = "versioned_object.name"
_DATA = "versioned_object.data"


def _data(primitive: object, kind: str) -> dict[str, Any]:
    """The ``versioned_object.data`` of a primitive of type ``kind``."""
    if not isinstance(primitive, dict) or primitive.get(_NAME) != kind:
        raise v.FieldError(f"not a {kind} object")
    data = primitive.get(_DATA)
    if not isinstance(data, dict):
        raise v.FieldError("its data is not an object")
    return data


def _items(data: dict[str, Any], field: str) -> list[Any]:
    value = data.get(field) or []
    if not isinstance(value, list) or len(value) > v.MAX_LIST_LEN:
        raise v.FieldError(f"{field} is not a list")
    return value


def port_membership(data: dict[str, Any]) -> tuple[str, frozenset[str], tuple[object, ...]]:
    """``(port id, group ids, membership fields)`` of a Port primitive's data.

    :raises v.FieldError: a field has the wrong shape or value.
    """
    port_id = v.uuid(data.get("id"))
    groups = frozenset(v.uuid(g) for g in _items(data, "security_group_ids"))
    mac = v.mac(data["mac_address"]) if data.get("mac_address") is not None else None
    fixed = sorted(
        str(v.ip_address(_data(ip, "IPAllocation").get("ip_address")))
        for ip in _items(data, "fixed_ips")
    )
    pairs = sorted(
        (
            str(v.host_or_cidr(pair.get("ip_address"))),
            v.mac(pair["mac_address"]) if pair.get("mac_address") is not None else None,
        )
        for pair in (_data(p, "AllowedAddressPair") for p in _items(data, "allowed_address_pairs"))
    )
    return port_id, groups, (mac, tuple(fixed), tuple(pairs), tuple(sorted(groups)))


class MembershipTracker:
    """Turns pushes into the group ids whose members may have changed (thread-safe)."""

    def __init__(self, max_tracked: int = MAX_TRACKED) -> None:
        self._lock = threading.Lock()
        self._max = max_tracked
        #: port id -> (groups, digest of the membership fields) at its last push
        self._ports: dict[str, tuple[frozenset[str], int]] = {}

    def groups_changed(self, resource_list: object, event_type: object) -> set[str]:
        """Group ids whose members may differ after this push; bad objects are rejected
        (logged once per kind) and the others still count."""
        if not isinstance(resource_list, list) or event_type not in ("updated", "deleted"):
            REJECTIONS.reject(METHOD, "not a list of objects with a known event", event_type)
            return set()
        changed: set[str] = set()
        for primitive in resource_list:
            try:
                changed |= self._one(primitive, event_type)
            except (v.FieldError, KeyError) as exc:
                reason = exc.reason if isinstance(exc, v.FieldError) else "a field is missing"
                REJECTIONS.reject(METHOD, f"object skipped: {reason}", primitive)
        return changed

    def _one(self, primitive: object, event_type: object) -> set[str]:
        if isinstance(primitive, dict) and primitive.get(_NAME) == "AddressGroup":
            return {v.uuid(_data(primitive, "AddressGroup").get("id"))}
        data = _data(primitive, "Port")
        if event_type == "deleted":  # the legacy member update covers the departure
            with self._lock:
                self._ports.pop(v.uuid(data.get("id")), None)
            return set()
        port_id, groups, fields = port_membership(data)
        digest = hash(fields)
        with self._lock:
            before = self._ports.get(port_id)
            if before is not None and before[1] == digest:
                return set()
            if before is None and len(self._ports) >= self._max:
                self._ports.clear()
            self._ports[port_id] = (groups, digest)
        return set(groups | (before[0] if before else frozenset()))
