"""What the interface driver plugs, decided without Neutron and without the kernel.

Neutron's DHCP agent names its end of the port ``ns-<port[:11]>`` (``prefix`` ``ns-``; the
L3 agent passes ``qr-``/``qg-``). The host end takes the same 11 characters behind
``tap``: :func:`netagent.common.names.tap_device` of the port, the name the agent wires like
a Nova tap. The functions here turn the driver's arguments into a checked
:class:`VethPlan`; :mod:`netagent.neutron_plugins.veth` carries it out.
"""

from __future__ import annotations

import dataclasses
import re

from netagent.common import constants as c
from netagent.common import names
from netagent.model import validate

#: Linux's minimum IPv4 MTU (ETH_MIN_MTU) and the largest a veth accepts.
MIN_MTU = 68
MAX_MTU = 65535
_DEVICE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


@dataclasses.dataclass(frozen=True, slots=True)
class VethPlan:
    """One DHCP (or router) port's veth pair.

    :ivar host_device: ``tap<port[:11]>``, left in the host's namespace for the agent.
    :ivar namespace_device: the agent's name for its end (``ns-<port[:11]>``).
    :ivar namespace: the namespace that end goes to; ``None``: the host's own.
    :ivar mac: the port's MAC, set on the namespace end (the address guests talk to).
    :ivar mtu: the network's MTU on both ends; ``None`` keeps the kernel default.
    """

    host_device: str
    namespace_device: str
    namespace: str | None
    mac: str
    mtu: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class OvsTarget:
    """Where the host end goes when the host's netagent runs Open vSwitch.

    :ivar bridge: the integration bridge.
    :ivar connection: the OVSDB server (ovsdbapp connection string).
    :ivar timeout: seconds per OVSDB transaction.
    """

    bridge: str
    connection: str
    timeout: int


def host_device(device_name: str, prefix: str | None = None) -> str:
    """The host end of the pair whose other end is ``device_name``.

    :param prefix: the agent's prefix of ``device_name`` (default ``ns-``).
    :raises ValueError: ``device_name`` does not start with ``prefix`` or the result is not
        a device name.
    """
    prefix = prefix or c.NAMESPACE_SIDE_PREFIX
    if not isinstance(device_name, str) or not _DEVICE_RE.match(device_name):
        raise ValueError(f"not a device name: {device_name!r}")
    if not device_name.startswith(prefix) or len(device_name) == len(prefix):
        raise ValueError(f"device {device_name!r} does not start with prefix {prefix!r}")
    name = c.TAP_PREFIX + device_name[len(prefix) :]
    if not _DEVICE_RE.match(name):
        raise ValueError(f"host end {name!r} of {device_name!r} is not a device name")
    return name


def mtu(value: object) -> int | None:
    """The MTU to set: ``None`` or 0 (the agent knows none) give ``None``.

    :raises ValueError: not an integer, or outside 68..65535.
    """
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"MTU must be an integer, got {value!r}")
    if not MIN_MTU <= value <= MAX_MTU:
        raise ValueError(f"MTU {value} outside {MIN_MTU}..{MAX_MTU}")
    return value


def plan(
    port_id: str,
    device_name: str,
    mac_address: str,
    namespace: str | None,
    *,
    prefix: str | None = None,
    mtu_value: object = None,
) -> VethPlan:
    """Check the driver's ``plug_new`` arguments and name both ends.

    The host end must be the port's own tap: a device name that does not carry the
    port's id would have the agent wire (and filter) it as another port.

    :raises ValueError: a bad name, MAC, MTU, or a device name of another port.
    """
    tap = host_device(device_name, prefix)
    expected = names.tap_device(port_id)
    if tap != expected:
        raise ValueError(f"device {device_name!r} is not port {port_id}'s (host end {expected})")
    try:
        mac = validate.mac(mac_address)
    except validate.FieldError as exc:
        raise ValueError(f"port {port_id}: {exc}") from exc
    return VethPlan(
        host_device=tap,
        namespace_device=device_name,
        namespace=namespace or None,
        mac=mac,
        mtu=mtu(mtu_value),
    )
