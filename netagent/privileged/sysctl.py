"""Network sysctls inside a namespace.

/proc/sys/net shows the network namespace of the task that opens the file, so the file is
opened from a thread that entered the namespace. Only a fixed set of keys is writable:
no caller can reach an arbitrary /proc path.
"""

from __future__ import annotations

import logging
import re

from netagent.privileged import nsenter
from netagent.privileged import validate as v
from netagent.privileged.errors import InvalidArgument

LOG = logging.getLogger(__name__)

_ALLOWED = (
    re.compile(r"^net\.ipv4\.ip_forward$"),
    re.compile(r"^net\.ipv6\.conf\.all\.forwarding$"),
    re.compile(
        r"^net\.ipv4\.conf\.(?P<dev>[^.]+|all|default)\.(proxy_arp|arp_ignore|"
        r"arp_announce|rp_filter|send_redirects|forwarding)$"
    ),
    re.compile(
        r"^net\.ipv6\.conf\.(?P<dev>[^.]+|all|default)\.(accept_ra|forwarding|"
        r"disable_ipv6|proxy_ndp|accept_dad)$"
    ),
    re.compile(r"^net\.bridge\.bridge-nf-call-(iptables|ip6tables|arptables)$"),
)


def _path(key: str) -> str:
    for pattern in _ALLOWED:
        match = pattern.fullmatch(key)
        if match:
            dev = match.groupdict().get("dev")
            if dev not in (None, "all", "default"):
                v.device_name(dev, "sysctl device")
            return "/proc/sys/" + key.replace(".", "/")
    raise InvalidArgument("sysctl", key, "not a sysctl netagent manages")


def set_sysctl(namespace: str | None, key: str, value: int) -> None:
    """Write an integer sysctl in ``namespace``.

    :param key: dotted name, e.g. ``net.ipv4.conf.eth1.proxy_arp`` (a device name
        with dots is not supported).
    :raises InvalidArgument: key not in the allowed set or value not an int.
    :raises FileNotFoundError: the device or the sysctl does not exist there.
    """
    set_sysctls(namespace, [(key, value)])


def set_sysctls(namespace: str | None, settings: list[tuple[str, int]]) -> None:
    """Write integer sysctls in ``namespace``, in order, from one entry into it.

    All keys and values are checked before the first write.

    :raises InvalidArgument: a key not in the allowed set or a value not an int.
    :raises FileNotFoundError: a device or a sysctl does not exist there (the settings
        before it were written).
    """
    paths = [
        (_path(key), v.int_range(value, -(2**31), 2**31 - 1, "value")) for key, value in settings
    ]
    v.optional_namespace(namespace)

    def write() -> None:
        for path, value in paths:
            with open(path, "w") as handle:
                handle.write(f"{value}\n")

    nsenter.call_in_namespace(namespace, write)
    for key, value in settings:
        LOG.info("sysctl %s=%d (namespace %s)", key, value, namespace)


def get_sysctl(namespace: str | None, key: str) -> int:
    """Read an integer sysctl in ``namespace`` (same keys as :func:`set_sysctl`)."""
    path = _path(key)
    v.optional_namespace(namespace)

    def read() -> int:
        with open(path) as handle:
            return int(handle.read().split()[0])

    return nsenter.call_in_namespace(namespace, read)
