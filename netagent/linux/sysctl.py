"""Network sysctls inside a namespace, one typed function per setting.

Writes go to /proc/sys from a thread inside the namespace; the agent's own namespace is
touched only when ``namespace`` is None.
"""

from __future__ import annotations

import logging

from netagent.privileged import sysctl as priv_sysctl
from netagent.privileged import validate
from netagent.privileged.errors import InvalidArgument

LOG = logging.getLogger(__name__)


def _set(namespace: str | None, key: str, value: int) -> None:
    priv_sysctl.set_sysctl(validate.optional_namespace(namespace), key, value)


def set_ip_forwarding(namespace: str | None, enabled: bool, *, family: int = 4) -> None:
    """Enable or disable routing (``net.ipv4.ip_forward`` / ``net.ipv6.conf.all.forwarding``)."""
    if family not in (4, 6):
        raise InvalidArgument("family", family, "4 or 6")
    key = "net.ipv4.ip_forward" if family == 4 else "net.ipv6.conf.all.forwarding"
    _set(namespace, key, int(enabled))


def set_proxy_arp(namespace: str | None, device: str, enabled: bool) -> None:
    """Answer ARP on ``device`` for addresses routed elsewhere."""
    _set(namespace, f"net.ipv4.conf.{validate.device_name(device)}.proxy_arp", int(enabled))


def set_send_redirects(namespace: str | None, device: str, enabled: bool) -> None:
    """Whether ICMP redirects are sent for packets forwarded back out of ``device``
    (``all``/``default`` accepted; the kernel sends them if ``all`` or the device says so)."""
    name = device if device in ("all", "default") else validate.device_name(device)
    _set(namespace, f"net.ipv4.conf.{name}.send_redirects", int(enabled))


def set_accept_ra(namespace: str | None, device: str, value: int) -> None:
    """IPv6 router advertisements on ``device``: 0 ignore, 1 accept, 2 accept when forwarding."""
    validate.int_range(value, 0, 2, "accept_ra")
    _set(namespace, f"net.ipv6.conf.{validate.device_name(device)}.accept_ra", value)


def set_disable_ipv6(namespace: str | None, device: str, disabled: bool = True) -> None:
    """Turn IPv6 off (or on) on ``device``: no link-local address, RS, DAD or MLD.

    ``device`` must not contain a dot (dotted sysctl keys).
    """
    disable_ipv6(namespace, [device], disabled)


def disable_ipv6(namespace: str | None, devices: list[str], disabled: bool = True) -> None:
    """:func:`set_disable_ipv6` for several devices, from one entry into the namespace."""
    settings = [
        (f"net.ipv6.conf.{_sysctl_device(device)}.disable_ipv6", int(disabled))
        for device in devices
    ]
    priv_sysctl.set_sysctls(validate.optional_namespace(namespace), settings)


def _sysctl_device(device: str) -> str:
    name = validate.device_name(device)
    if "." in name:
        raise InvalidArgument("device", device, "sysctl keys do not support dotted names")
    return name


def set_bridge_nf_call(namespace: str | None, *, iptables: bool, ip6tables: bool) -> None:
    """Whether bridged IPv4/IPv6 frames traverse iptables (needs br_netfilter loaded).

    :raises FileNotFoundError: br_netfilter is not loaded.
    """
    _set(namespace, "net.bridge.bridge-nf-call-iptables", int(iptables))
    _set(namespace, "net.bridge.bridge-nf-call-ip6tables", int(ip6tables))


def get(namespace: str | None, key: str) -> int:
    """Read one of the sysctls the setters above write (dotted key)."""
    return priv_sysctl.get_sysctl(validate.optional_namespace(namespace), key)
