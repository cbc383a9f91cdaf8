"""Privileged conntrack calls: many deletions in one ``conntrack --load-file`` process.

``conntrack -D`` with one filter per process costs a fork/exec each (about 3 ms here);
``conntrack -R -`` reads any number of ``-D`` filter lines from stdin in one process.
(pyroute2's ``Conntrack(netns=..., flags=0)`` also works inside a namespace, but deleting
by filter then means dumping the table into Python and deleting tuple by tuple; the
conntrack tool filters in C.) A filter that matches nothing is not an error.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess

from netagent.common.exceptions import NetagentError
from netagent.privileged.iptables import netns_prefix

TIMEOUT = 120.0
_DELETED_RE = re.compile(r"(\d+) flow entries have been deleted")


class ConntrackError(NetagentError):
    """The conntrack tool failed."""

    def __init__(self, returncode: int, stderr: str) -> None:
        super().__init__(returncode, stderr)
        self.returncode = returncode
        self.stderr = stderr

    def __str__(self) -> str:
        return f"conntrack failed (rc={self.returncode}): {self.stderr.strip()}"


def _filter_line(spec: dict[str, int | str]) -> str:
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


def delete_entries(namespace: str | None, filters: list[dict[str, int | str]]) -> int:
    """Delete the conntrack entries matching any of ``filters``, in one process.

    :param namespace: network namespace name (None: root namespace)
    :param filters: dicts with ``family`` (4/6), optional ``zone``, ``proto`` (number),
        ``src``/``dst`` (original-direction addresses)
    :returns: number of entries deleted
    :raises ValueError: bad filter
    :raises ConntrackError: the tool failed
    """
    if not filters:
        return 0
    text = "".join(_filter_line(f) + "\n" for f in filters)
    proc = subprocess.run(
        [*netns_prefix(namespace), "conntrack", "-R", "-"],
        input=text,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        raise ConntrackError(proc.returncode, proc.stderr)
    # In --load-file mode conntrack prints each deleted entry on stdout (no summary).
    summary = _DELETED_RE.findall(proc.stderr)
    if summary:
        return sum(int(n) for n in summary)
    return sum(1 for line in proc.stdout.splitlines() if line.strip())


def list_entries(namespace: str | None, family: int = 4) -> list[str]:
    """``conntrack -L`` lines of one family (read-only; for diagnostics and tests)."""
    proc = subprocess.run(
        [*netns_prefix(namespace), "conntrack", "-L", "-f", "ipv6" if family == 6 else "ipv4"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        raise ConntrackError(proc.returncode, proc.stderr)
    return [line for line in proc.stdout.splitlines() if line.strip()]
