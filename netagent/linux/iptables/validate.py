"""Validators for every string that can reach an iptables or ipset restore input.

Each returns its argument unchanged or raises :class:`ValueError` naming the field; none
lets through a space, quote, newline, ``#`` or any other character that could change the
meaning of a restore line.
"""

from __future__ import annotations

import re

from netagent.common import constants as c
from netagent.common.memo import pass_memo

_CHAIN_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]+\+?$")
_SET_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_OWNED_SG_RE = re.compile(r"^na[io][0-9a-z]{25}$")

BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
}


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string, got {value!r}")
    return value


def chain_name(value: object, field: str = "chain") -> str:
    """Any iptables chain name: ``[A-Za-z0-9_-]``, 1..28 characters."""
    name = _text(value, field)
    if not _CHAIN_RE.fullmatch(name) or len(name) > c.MAX_CHAIN_NAME_LEN:
        raise ValueError(f"{field}: invalid chain name {name!r}")
    return name


def is_owned_chain(name: str) -> bool:
    """True for chain names netagent owns: ``na-*`` and the security-group ``nai``/``nao``."""
    return name.startswith(c.CHAIN_PREFIX) or bool(_OWNED_SG_RE.fullmatch(name))


def owned_chain_name(value: object, field: str = "chain") -> str:
    """A chain name netagent owns (see :func:`is_owned_chain`)."""
    name = chain_name(value, field)
    if not is_owned_chain(name):
        raise ValueError(f"{field}: {name!r} is not a netagent chain (prefix {c.CHAIN_PREFIX})")
    return name


def interface_name(value: object, field: str = "interface", wildcard: bool = True) -> str:
    """A device name (IFNAMSIZ), optionally ending with iptables' ``+`` wildcard."""
    if isinstance(value, str):  # memoised: a few thousand taps per pass
        return _interface_name(str(value), field, wildcard)
    raise ValueError(f"{field} must be a string, got {value!r}")


@pass_memo
def _interface_name(name: str, field: str, wildcard: bool) -> str:
    bare = name[:-1] if wildcard and name.endswith("+") else name
    if (
        not bare
        or not _IFNAME_RE.fullmatch(bare)
        or bare.endswith("+")
        or len(bare) > c.MAX_DEVICE_NAME_LEN
        or bare in (".", "..")
    ):
        raise ValueError(f"{field}: invalid interface name {name!r}")
    return name


def set_name(value: object, field: str = "set") -> str:
    """An ipset name: ``[A-Za-z0-9_-]``, 1..31 characters."""
    name = _text(value, field)
    if not _SET_RE.fullmatch(name) or len(name) > c.MAX_IPSET_NAME_LEN:
        raise ValueError(f"{field}: invalid ipset name {name!r}")
    return name


def owned_set_name(value: object, field: str = "set") -> str:
    """An ipset name with netagent's prefix (``na``), 1..31 characters."""
    name = set_name(value, field)
    if not name.startswith(c.IPSET_PREFIX) or len(name) <= len(c.IPSET_PREFIX):
        raise ValueError(f"{field}: {name!r} is not a netagent ipset (prefix {c.IPSET_PREFIX})")
    return name


def mac_address(value: object, field: str = "mac") -> str:
    """A colon-separated MAC address, returned upper-case as iptables prints it."""
    if isinstance(value, str):  # memoised (errors are not cached)
        return _mac_address(str(value), field)
    raise ValueError(f"{field} must be a string, got {value!r}")


@pass_memo
def _mac_address(mac: str, field: str) -> str:
    if not _MAC_RE.fullmatch(mac):
        raise ValueError(f"{field}: invalid MAC address {mac!r}")
    return mac.upper()


def tag(value: object, field: str = "tag") -> str:
    """A rule tag for comments: ``[A-Za-z0-9_.-]``, 1..64 characters (ids, not prose)."""
    text = _text(value, field)
    if not _TAG_RE.fullmatch(text):
        raise ValueError(f"{field}: invalid tag {text!r}")
    return text


def integer(value: object, field: str, low: int, high: int) -> int:
    """An int (not bool) within ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{field} must be an integer in {low}..{high}, got {value!r}")
    return value


def table_name(value: object) -> str:
    """One of filter, nat, mangle, raw."""
    if value not in BUILTIN_CHAINS:
        raise ValueError(f"table must be one of {sorted(BUILTIN_CHAINS)}, got {value!r}")
    return str(value)


def family(value: object) -> int:
    """4 or 6."""
    if value not in (4, 6) or isinstance(value, bool):
        raise ValueError(f"family must be 4 or 6, got {value!r}")
    return int(str(value))


def builtin_chain(table: str, value: object) -> str:
    """A built-in chain of ``table``."""
    if value not in BUILTIN_CHAINS[table_name(table)]:
        raise ValueError(f"chain {value!r} is not a built-in chain of table {table}")
    return str(value)
