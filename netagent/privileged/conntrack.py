"""Privileged conntrack calls: deletion by filter over ctnetlink, listing with the tool.

:func:`delete_entries` validates the filters, then dumps the namespace's table once over
ctnetlink and deletes only the matching entries (:mod:`netagent.privileged.ctnetlink`).
The ``conntrack`` tool is no longer used for deletions: it re-reads the table for every
filter line and costs about 10 ms per line even on an empty table. A filter that matches
nothing is not an error, and when nothing matches nothing is sent.
"""

from __future__ import annotations

import ipaddress

from netagent.common.exceptions import NetagentError
from netagent.privileged import ctnetlink
from netagent.privileged.errors import KernelError

TIMEOUT = 120.0
_KEYS = frozenset({"family", "zone", "proto", "src", "dst"})

#: A checked filter: family, zone, proto, src, dst (None = any).
Match = tuple[int, int | None, int | None, str | None, str | None]


class ConntrackError(NetagentError):
    """The conntrack tool failed."""

    def __init__(self, returncode: int, stderr: str) -> None:
        super().__init__(returncode, stderr)
        self.returncode = returncode
        self.stderr = stderr

    def __str__(self) -> str:
        return f"conntrack failed (rc={self.returncode}): {self.stderr.strip()}"


def _filter_line(spec: dict[str, int | str]) -> str:
    """The filter as ``conntrack -D`` options (validates it; for logs and messages)."""
    family = spec.get("family", 4)
    if family not in (4, 6):
        raise ValueError(f"family must be 4 or 6, got {family!r}")
    args = ["-D", "-f", "ipv6" if family == 6 else "ipv4"]
    if "zone" in spec:
        zone = spec["zone"]
        if isinstance(zone, bool) or not isinstance(zone, int) or not 0 <= zone <= 65535:
            raise ValueError(f"zone must be 0..65535, got {zone!r}")
        args += ["-w", str(zone)]
    if "proto" in spec:
        proto = spec["proto"]
        if isinstance(proto, bool) or not isinstance(proto, int) or not 0 <= proto <= 255:
            raise ValueError(f"proto must be 0..255, got {proto!r}")
        args += ["-p", str(proto)]
    for key, option in (("src", "-s"), ("dst", "-d")):
        if key in spec:
            addr = ipaddress.ip_address(spec[key])
            if addr.version != family:
                raise ValueError(f"{key}: {addr} is not IPv{family}")
            args += [option, str(addr)]
    unknown = set(spec) - {"family", "zone", "proto", "src", "dst"}
    if unknown:
        raise ValueError(f"unknown conntrack filter keys {sorted(unknown)}")
    return " ".join(args)


def check_filter(spec: dict[str, int | str]) -> Match:
    """Validate one filter dict and return it as a :data:`Match` tuple.

    :raises ValueError: unknown key, wrong type or range, address of the other family
    """
    _filter_line(spec)
    family = int(spec.get("family", 4))
    zone = spec.get("zone")
    proto = spec.get("proto")
    src = spec.get("src")
    dst = spec.get("dst")
    return (
        family,
        None if zone is None else int(zone),
        None if proto is None else int(proto),
        None if src is None else str(ipaddress.ip_address(src)),
        None if dst is None else str(ipaddress.ip_address(dst)),
    )


class _Matcher:
    """Entries matching any of the filters; filters indexed by source and destination."""

    def __init__(self, matches: list[Match]) -> None:
        self.by_src: dict[tuple[int, str], list[Match]] = {}
        self.by_dst: dict[tuple[int, str], list[Match]] = {}
        self.other: list[Match] = []
        for m in matches:
            family, _, _, src, dst = m
            if src is not None:
                self.by_src.setdefault((family, src), []).append(m)
            elif dst is not None:
                self.by_dst.setdefault((family, dst), []).append(m)
            else:
                self.other.append(m)

    def __call__(self, entry: ctnetlink.Entry) -> bool:
        src, dst = str(entry.src), str(entry.dst)
        candidates = (
            self.by_src.get((entry.family, src), ()),
            self.by_dst.get((entry.family, dst), ()),
            self.other,
        )
        for group in candidates:
            for family, zone, proto, f_src, f_dst in group:
                if (
                    family == entry.family
                    and (zone is None or zone == entry.zone)
                    and (proto is None or proto == entry.proto)
                    and (f_src is None or f_src == src)
                    and (f_dst is None or f_dst == dst)
                ):
                    return True
        return False


def delete_entries(namespace: str | None, filters: list[dict[str, int | str]]) -> int:
    """Delete the conntrack entries matching any of ``filters``: one ctnetlink dump,
    then deletion of the matching entries only (nothing sent when none match).

    :param namespace: network namespace name (None: root namespace)
    :param filters: dicts with ``family`` (4/6), optional ``zone``, ``proto`` (number),
        ``src``/``dst`` (original-direction addresses)
    :returns: number of entries deleted
    :raises ValueError: bad filter
    :raises ConntrackError: the kernel refused the dump or a deletion
    """
    if not filters:
        return 0
    matcher = _Matcher([check_filter(f) for f in filters])
    try:
        return ctnetlink.delete_matching(namespace, matcher)
    except KernelError as exc:
        raise ConntrackError(exc.errno, str(exc)) from exc
