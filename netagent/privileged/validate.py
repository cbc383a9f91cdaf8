"""Checks applied to every name and value before anything reaches the kernel.

Pure functions without side effects; :mod:`netagent.linux` calls them first, and the
privileged functions call them again, because they may one day sit behind privsep.
"""

from __future__ import annotations

import re

from netagent.common import constants as c
from netagent.privileged.errors import InvalidArgument

_DEVICE_RE = re.compile(rf"^[A-Za-z0-9_.-]{{1,{c.MAX_DEVICE_NAME_LEN}}}$")
_NETNS_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def device_name(name: object, field: str = "device") -> str:
    """Return ``name`` if it is a valid Linux interface name.

    1 to 15 characters from ``[A-Za-z0-9_.-]``, and not ``.`` or ``..`` (the kernel's
    ``dev_valid_name`` also forbids ``/``, ``:`` and whitespace; this is stricter).

    :param name: the candidate name.
    :param field: the argument name reported in the error.
    :returns: the name, unchanged.
    :raises InvalidArgument: the name is not acceptable.
    """
    if not isinstance(name, str) or not _DEVICE_RE.fullmatch(name) or name in (".", ".."):
        raise InvalidArgument(field, name, "1..15 characters from [A-Za-z0-9_.-]")
    return name


def namespace_name(name: object, field: str = "namespace") -> str:
    """Return ``name`` if it is a valid network namespace name (a file in /run/netns).

    :param name: the candidate name.
    :param field: the argument name reported in the error.
    :returns: the name, unchanged.
    :raises InvalidArgument: the name is not acceptable.
    """
    if not isinstance(name, str) or not _NETNS_RE.fullmatch(name) or name in (".", ".."):
        raise InvalidArgument(field, name, "1..128 characters from [A-Za-z0-9_.-]")
    return name


def optional_namespace(name: object, field: str = "namespace") -> str | None:
    """Like :func:`namespace_name`, but ``None`` (the agent's own namespace) is allowed."""
    if name is None:
        return None
    return namespace_name(name, field)


def mac_address(mac: object, field: str = "mac") -> str:
    """Return a MAC address in lower-case ``aa:bb:cc:dd:ee:ff`` form.

    :raises InvalidArgument: not six colon-separated hex bytes.
    """
    if not isinstance(mac, str) or not _MAC_RE.fullmatch(mac.lower()):
        raise InvalidArgument(field, mac, "expected aa:bb:cc:dd:ee:ff")
    return mac.lower()


def int_range(value: object, low: int, high: int, field: str) -> int:
    """Return ``value`` if it is an int (not bool) in ``low..high``.

    :raises InvalidArgument: wrong type or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgument(field, value, f"integer in {low}..{high} expected")
    return value
