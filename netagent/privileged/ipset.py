"""Privileged ipset calls: batched ``ipset restore``, listing and destroying netagent sets.

ipsets live per network namespace in the kernel; every function takes the namespace and
runs the tool there through ``nsenter --net`` (see :mod:`netagent.privileged.iptables`).
Restore input is checked line by line against the grammar the manager in
:mod:`netagent.linux.ipset` generates: netagent set names only (``na``/``nt`` prefix),
addresses in plain IP/CIDR characters.
"""

from __future__ import annotations

import re
import subprocess

from netagent.common.exceptions import NetagentError
from netagent.privileged.iptables import netns_prefix

TIMEOUT = 120.0
_SET = r"n[at][A-Za-z0-9_-]{1,29}"
_LINE_RES = (
    re.compile(
        rf"^create {_SET} hash:(?:net|ip) family inet6? hashsize \d{{1,8}} maxelem \d{{1,8}}$"
    ),
    re.compile(rf"^(?:flush|destroy) {_SET}$"),
    re.compile(rf"^swap {_SET} {_SET}$"),
    re.compile(rf"^(?:add|del) {_SET} [0-9a-fA-F.:]+(?:/\d{{1,3}})?$"),
)
_LINE_NO_RE = re.compile(r"[Ee]rror in line (\d+)")
#: The Neutron Linux bridge agent's remote-group sets (``NIPv4``/``NIPv6`` + group id,
#: and their ``-n`` swap twins), destroyed by a takeover (doc/migration.md).
NEUTRON_SET = r"NIPv[46][0-9a-f-]{1,26}"


class IpsetError(NetagentError):
    """``ipset`` failed; ``line`` is the failing restore line (1-based) when known."""

    def __init__(self, returncode: int, stderr: str) -> None:
        super().__init__(returncode, stderr)
        self.returncode = returncode
        self.stderr = stderr
        match = _LINE_NO_RE.search(stderr)
        self.line: int | None = int(match.group(1)) if match else None

    def __str__(self) -> str:
        return f"ipset failed (rc={self.returncode}): {self.stderr.strip()}"


class IpsetInUseError(IpsetError):
    """The set is referenced (by an iptables rule) and cannot be destroyed."""


class IpsetInputError(NetagentError):
    """A restore line is outside the grammar netagent generates."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line

    def __str__(self) -> str:
        return f"ipset restore line rejected: {self.line!r}"


def _run(namespace: str | None, args: list[str], text: str | None = None) -> str:
    proc = subprocess.run(
        [*netns_prefix(namespace), "ipset", *args],
        input=text,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        if "in use by a kernel component" in proc.stderr:
            raise IpsetInUseError(proc.returncode, proc.stderr)
        raise IpsetError(proc.returncode, proc.stderr)
    return proc.stdout


def restore(namespace: str | None, text: str) -> None:
    """Run one ``ipset restore -exist`` with ``text`` (create/flush/add/del/swap/destroy
    lines; ``-exist`` makes adding a present member and deleting an absent one no-ops).

    Processing stops at the first failing line; earlier lines stay applied.

    :raises IpsetInputError: a line is outside netagent's grammar
    :raises IpsetError: the tool failed (``line`` tells where)
    """
    for line in text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"):
        if not any(regex.fullmatch(line) for regex in _LINE_RES):
            raise IpsetInputError(line)
    _run(namespace, ["restore", "-exist"], text)


def list_names(namespace: str | None) -> list[str]:
    """Names of all sets in the namespace (read-only)."""
    return _run(namespace, ["list", "-n"]).split()


def save(namespace: str | None) -> str:
    """``ipset save`` of every set in the namespace (read-only)."""
    return _run(namespace, ["save"])


def destroy(namespace: str | None, name: str) -> None:
    """Destroy netagent set ``name``; a missing set is not an error.

    :raises IpsetInUseError: a rule still references the set
    """
    _destroy(namespace, name, _SET)


def destroy_neutron(namespace: str | None, name: str) -> None:
    """Destroy a Neutron Linux bridge agent set; a missing set is not an error.

    :raises IpsetInUseError: a rule still references the set
    """
    _destroy(namespace, name, NEUTRON_SET)


def _destroy(namespace: str | None, name: str, pattern: str) -> None:
    if not re.fullmatch(pattern, name):
        raise IpsetInputError(name)
    try:
        _run(namespace, ["destroy", name])
    except IpsetInUseError:
        raise
    except IpsetError as exc:
        if "does not exist" not in exc.stderr:
            raise
