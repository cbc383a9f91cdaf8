"""Field validators and the dict reader every parser uses.

Each validator takes an untrusted JSON-like value and returns a clean Python value or raises
:class:`FieldError`. :class:`Reader` walks one object, applies validators to its fields and
turns :class:`FieldError` (and wrong shapes) into :class:`~netagent.model.errors.ModelError`
naming the object and the dotted field path. Nothing here raises anything else.

Strings that pass are restricted so that no later layer can be fed whitespace, quotes,
backslashes or control characters: identifiers and tokens by strict ASCII patterns, free
text (names) by Unicode category.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import NoReturn, TypeVar

from netagent.model.errors import ModelError

T = TypeVar("T")
D = TypeVar("D")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_NAME_LEN = 255
MAX_LIST_LEN = 4096

_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MAC_RE = re.compile(r"[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(?:\1[0-9a-fA-F]{2}){4}")
_HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_PHYSNET_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_OWNER_RE = re.compile(r"[a-z0-9:_.-]{0,255}")
_TOKEN_RE = re.compile(r"[A-Za-z0-9:_.-]{1,255}")
_LABEL_RE = re.compile(r"[A-Za-z0-9_.-]+(?: [A-Za-z0-9_.-]+){0,7}")
# Only the characters an address or prefix can have: no '%' scope ids, no spaces.
_ADDR_RE = re.compile(r"[0-9a-fA-F.:]{2,45}")
_PREFIX_RE = re.compile(r"[0-9a-fA-F.:]{2,45}/[0-9]{1,3}")
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp", "Pi", "Pf"})
_FORBIDDEN_CHARS = frozenset("\"'`\\")
#: What display names may contain beyond the identifier-safe set (see :func:`name`).
_NAME_ALLOWED = frozenset(" \"'")


class FieldError(Exception):
    """A value failed a validator; :class:`Reader` turns it into a ModelError.

    :param reason: what is wrong with the value.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def show(value: object) -> str:
    """Render an untrusted value for an error message: short, escaped, never raising.

    :param value: any value.
    :returns: a printable, single-line rendering of at most about 70 characters.
    """
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() > 64:
            return f"<integer of {value.bit_length()} bits>"
        return repr(value)
    if isinstance(value, str):
        text = ascii(value[:60])
        return text if len(value) <= 60 else text + "..."
    if isinstance(value, float):
        return repr(value)
    return f"<{type(value).__name__}>"


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def string(value: object) -> str:
    """Accept a ``str`` (of any content; callers check further)."""
    if not isinstance(value, str):
        raise FieldError(f"expected a string, got {_type_name(value)} {show(value)}")
    return value


def _match(pattern: re.Pattern[str], value: object, what: str) -> str:
    text = string(value)
    if not pattern.fullmatch(text):
        raise FieldError(f"not {what}: {show(value)}")
    return text


def uuid(value: object) -> str:
    """A lower-case, hyphenated UUID."""
    return _match(_UUID_RE, value, "a lower-case UUID")


def name(value: object) -> str:
    """Display text (names): at most 255 printable characters.

    Neutron allows spaces and quotes in names, so they are accepted here: names are only
    logged and shown, never rendered into iptables, ipset or nft text, nor used in device
    names. Control and format characters (newlines, tabs, bidi overrides, zero-width
    characters) and whitespace other than the plain space are refused, so a name cannot
    forge log lines.
    """
    text = string(value)
    if len(text) > MAX_NAME_LEN:
        raise FieldError(f"longer than {MAX_NAME_LEN} characters: {show(value)}")
    for char in text:
        if char in _NAME_ALLOWED:
            continue
        if char in _FORBIDDEN_CHARS or unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise FieldError(
                f"contains a control character or whitespace other than space: {show(value)}"
            )
    return text


def hostname(value: object) -> str:
    """A host name as Neutron's ``binding:host_id``: ``[A-Za-z0-9._-]``, 1..255 chars."""
    return _match(_HOST_RE, value, "a host name")


def physical_network(value: object) -> str:
    """A physical network name: 1..64 characters of ``[A-Za-z0-9_.-]``."""
    return _match(_PHYSNET_RE, value, "a physical network name ([A-Za-z0-9_.-]{1,64})")


def device_owner(value: object) -> str:
    """A port's ``device_owner``: ``[a-z0-9:_.-]``, at most 255 characters, may be empty."""
    return _match(_OWNER_RE, value, "a device owner ([a-z0-9:_.-]{0,255})")


def token(value: object) -> str:
    """An opaque identifier such as ``device_id``: 1..255 chars of ``[A-Za-z0-9:_.-]``."""
    return _match(_TOKEN_RE, value, "an identifier ([A-Za-z0-9:_.-]{1,255})")


def label(value: object) -> str:
    """A short label such as an agent type: words of ``[A-Za-z0-9_.-]`` with single spaces."""
    text = _match(_LABEL_RE, value, "a label")
    if len(text) > 64:
        raise FieldError(f"longer than 64 characters: {show(value)}")
    return text


def mac(value: object) -> str:
    """A unicast MAC address, normalised to lower-case ``aa:bb:cc:dd:ee:ff``."""
    text = _match(_MAC_RE, value, "a MAC address")
    normal = text.lower().replace("-", ":")
    if int(normal[:2], 16) & 1:
        raise FieldError(f"not a unicast MAC address: {show(value)}")
    if normal == "00:00:00:00:00:00":
        raise FieldError("the all-zero MAC address is not usable")
    return normal


def boolean(value: object) -> bool:
    """A JSON boolean (no strings, no integers)."""
    if not isinstance(value, bool):
        raise FieldError(f"expected a boolean, got {_type_name(value)} {show(value)}")
    return value


def integer(value: object, low: int, high: int) -> int:
    """A JSON integer within ``low..high`` (booleans and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(f"expected an integer, got {_type_name(value)} {show(value)}")
    if not low <= value <= high:
        raise FieldError(f"not in {low}..{high}: {show(value)}")
    return value


def int_range(low: int, high: int) -> Callable[[object], int]:
    """A validator for integers within ``low..high``."""

    def check(value: object) -> int:
        return integer(value, low, high)

    return check


def ip_address(value: object) -> IPAddress:
    """A bare IPv4 or IPv6 address (no prefix length, no scope id)."""
    text = _match(_ADDR_RE, value, "an IP address")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise FieldError(f"not an IP address: {show(value)}") from None


def ip_network(value: object, *, strict: bool) -> IPNetwork:
    """An address or prefix; a bare address becomes a ``/32`` or ``/128`` network.

    :param strict: refuse host bits set after the prefix length; otherwise mask them.
    """
    text = string(value)
    if _ADDR_RE.fullmatch(text):
        return ipaddress.ip_network(ip_address(text))
    return cidr(text, strict=strict)


def cidr(value: object, *, strict: bool = True) -> IPNetwork:
    """A prefix with an explicit length, e.g. ``192.0.2.0/24``.

    :param strict: refuse host bits set (``192.0.2.1/24``); otherwise mask them.
    """
    text = _match(_PREFIX_RE, value, "a CIDR")
    try:
        return ipaddress.ip_network(text, strict=strict)
    except ValueError as exc:
        reason = "host bits set" if "host bits" in str(exc) else "not a CIDR"
        raise FieldError(f"{reason}: {show(value)}") from None


def host_or_cidr(value: object) -> IPNetwork:
    """An address or a prefix; host bits of a prefix are masked (as the kernel would)."""
    return ip_network(value, strict=False)


def strict_cidr(value: object) -> IPNetwork:
    """A prefix with a length and no host bits set."""
    return cidr(value, strict=True)


def choice(options: Mapping[str, T]) -> Callable[[object], T]:
    """A validator mapping one of the given strings to its value."""

    def check(value: object) -> T:
        if isinstance(value, str) and value in options:
            return options[value]
        raise FieldError(f"not one of {', '.join(sorted(options))}: {show(value)}")

    return check


class Reader:
    """Reads the fields of one untrusted object and reports errors with their path.

    :param data: the untrusted value that should be a mapping.
    :param kind: object kind for errors (``"port"``...).
    :param object_id: id of the outermost object, once known.
    :param path: dotted path of ``data`` inside the outermost object (``""`` at the top).
    :raises ModelError: ``data`` is not a mapping.
    """

    __slots__ = ("_data", "kind", "object_id", "path")

    def __init__(
        self, data: object, kind: str, object_id: str | None = None, path: str = ""
    ) -> None:
        self.kind = kind
        self.object_id = object_id
        self.path = path
        if not isinstance(data, Mapping):
            got = _type_name(data)
            raise ModelError(kind, object_id, path or "<object>", f"expected a mapping, got {got}")
        self._data: Mapping[object, object] = data

    @classmethod
    def root(cls, data: object, kind: str, id_key: str = "id") -> Reader:
        """Start reading an object, taking its id from ``id_key`` (required, a UUID).

        :raises ModelError: not a mapping, or the id is missing or not a UUID.
        """
        reader = cls(data, kind)
        reader.object_id = reader.req(id_key, uuid)
        return reader

    def field(self, key: str) -> str:
        """The dotted path of ``key`` in this object."""
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, reason: str) -> NoReturn:
        """Raise a :class:`ModelError` for field ``key``."""
        raise ModelError(self.kind, self.object_id, self.field(key), reason)

    def has(self, key: str) -> bool:
        """Whether ``key`` is present with a non-null value."""
        return self._data.get(key) is not None

    def raw(self, key: str) -> object:
        """The unvalidated value of ``key`` (``None`` when absent)."""
        return self._data.get(key)

    def req(self, key: str, check: Callable[[object], T]) -> T:
        """A required field.

        :raises ModelError: missing, null, or refused by ``check``.
        """
        if key not in self._data:
            self.fail(key, "required field is missing")
        value = self._data[key]
        if value is None:
            self.fail(key, "required field is null")
        return self.convert(key, value, check)

    def opt(self, key: str, check: Callable[[object], T], default: D) -> T | D:
        """An optional field; absent or null gives ``default``."""
        value = self._data.get(key)
        if value is None:
            return default
        return self.convert(key, value, check)

    def convert(self, key: str, value: object, check: Callable[[object], T]) -> T:
        """Apply ``check`` to ``value`` and report failures against ``key``."""
        try:
            return check(value)
        except FieldError as exc:
            self.fail(key, exc.reason)

    def items(self, key: str, *, max_len: int = MAX_LIST_LEN) -> list[tuple[str, object]]:
        """The elements of an optional list field with their paths (``key[i]``).

        :raises ModelError: not a list, or longer than ``max_len``.
        """
        value = self._data.get(key)
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            self.fail(key, f"expected a list, got {_type_name(value)}")
        if len(value) > max_len:
            self.fail(key, f"more than {max_len} entries")
        return [(f"{key}[{index}]", item) for index, item in enumerate(value)]

    def each(
        self, key: str, check: Callable[[object], T], *, max_len: int = MAX_LIST_LEN
    ) -> tuple[T, ...]:
        """Apply ``check`` to every element of an optional list field."""
        return tuple(
            self.convert(path, item, check) for path, item in self.items(key, max_len=max_len)
        )

    def child(self, key: str, value: object | None = None) -> Reader:
        """A reader for a nested mapping (``value`` if given, else the field ``key``)."""
        data = self._data.get(key) if value is None else value
        return Reader(data, self.kind, self.object_id, self.field(key))

    def sub(self, path: str, value: object) -> Reader:
        """A reader for a list element returned by :meth:`items`."""
        return Reader(value, self.kind, self.object_id, self.field(path))

    def opt_child(self, key: str) -> Reader | None:
        """A reader for an optional nested mapping, ``None`` when absent or null."""
        return None if self._data.get(key) is None else self.child(key)
