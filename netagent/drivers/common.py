"""What the L2 drivers share: the per-resource error and the ``physnet:name`` mappings."""

from __future__ import annotations

from collections.abc import Iterable

from netagent.common.exceptions import NetagentError


class ResourceError(NetagentError):
    """A network or port cannot be wired; ``reason`` says why (rebuildable from args)."""

    def __init__(self, resource_id: str, reason: str) -> None:
        super().__init__(resource_id, reason)
        self.resource_id = resource_id
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def parse_mappings(entries: Iterable[str], option: str, max_len: int) -> dict[str, str]:
    """``["physnet1:eth1", ...]`` to ``{"physnet1": "eth1"}``.

    :param option: the option's name, for the error.
    :param max_len: the longest name the mapping may give.
    :raises ValueError: malformed entry, a name too long, duplicate physical network or
        name.
    """
    mappings: dict[str, str] = {}
    for entry in entries:
        physnet, sep, name = (part.strip() for part in entry.strip().partition(":"))
        if not sep or not physnet or not name or len(name) > max_len:
            raise ValueError(f"bad {option} entry {entry!r}")
        if physnet in mappings or name in mappings.values():
            raise ValueError(f"duplicate {option} entry {entry!r}")
        mappings[physnet] = name
    return mappings
