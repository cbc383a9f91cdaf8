"""Privileged iptables calls: one ``iptables-restore``/``iptables-save`` process per table.

These are the only functions in netagent that run ``iptables-*-restore`` and
``iptables-*-save``. They take primitive arguments (privsep-friendly) and refuse any
restore input that would touch something netagent does not own: every line is checked
against the small grammar the manager in :mod:`netagent.linux.iptables` generates.

Restore returns once the kernel has committed, not when the tool exits. The input ends
with a comment line after ``COMMIT``; ``iptables-restore -v`` echoes comments to stdout
when it reaches them, i.e. after the commit succeeded (on a failure it exits first). With
nf_tables, closing the tool's netlink socket waits for the kernel's deferred release of
deleted rules (``nf_tables_trans_destroy_flush_work``: one RCU grace period, ~12 ms here)
whenever the commit removed rules; that exit is left to a reaper thread. See
doc/iptables.md.

Namespaces: the save and restore tools of a named namespace are started from a thread
that entered it (:func:`netagent.privileged.nsenter.call_in_namespace`); the child inherits
the thread's network namespace and nothing else changes. That spares the exec of an
``nsenter --net=/run/netns/NAME`` wrapper (what :func:`netns_prefix` builds for the other
tools), about 1-2 ms of the 3-4 ms a save costs here, which counts when an agent restart
reads the nat table of every router namespace. ``namespace=None`` means the root
namespace; tests never use it.
"""

from __future__ import annotations

import logging
import re
import subprocess

from netagent.common.exceptions import NetagentError
from netagent.privileged import committed_restore, nsenter
from netagent.privileged.errors import NamespaceNotFound

LOG = logging.getLogger(__name__)

BACKENDS = ("nft", "legacy")
TABLES = ("filter", "nat", "mangle", "raw")
FAMILIES = (4, 6)
#: Seconds ``-w`` waits for the xtables lock (legacy backend; shared by all namespaces).
LOCK_WAIT = 10
#: Upper bound for one restore/save process.
TIMEOUT = 120.0

_NETNS_RE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,254}$")
_OWNED = r"na[A-Za-z0-9_-]{0,26}"
_BUILTIN = r"(?:PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING)"
# The whole grammar of restore input netagent may send. Rule bodies are limited to a
# character set without quotes, backslashes, '#' or control characters.
# '&' and '=' only appear in u32 expressions, which rules.U32 builds from integers.
_BODY = r"[A-Za-z0-9 _./:,!+\[\]&=-]*"
#: The Neutron Linux bridge agent's chains (``iptables_manager`` names them after its
#: binary, ``neutron-linuxbri``, plus its shared ``neutron-filter-top``): a takeover may
#: flush, unhook and delete them, nothing else (doc/migration.md).
NEUTRON_LB_CHAIN = r"neutron-(?:linuxbri-[A-Za-z0-9_.-]{1,12}|filter-top)"
_LINE_RES = (
    re.compile(rf"^:{_OWNED} - \[0:0\]$"),
    re.compile(rf"^-[FX] {_OWNED}$"),
    re.compile(rf"^-A {_OWNED}(?: {_BODY})?$"),
    re.compile(rf"^-I {_BUILTIN} 1 -m comment --comment na:hook -j {_OWNED}$"),
    re.compile(rf"^-D {_BUILTIN} -m comment --comment na:hook -j {_OWNED}$"),
    re.compile(rf"^-[FX] {NEUTRON_LB_CHAIN}$"),
    re.compile(rf"^-D {_BUILTIN} -j {NEUTRON_LB_CHAIN}$"),
)
#: The same grammar as one pattern (one match per line instead of one per alternative).
_LINE_RE = re.compile("|".join(f"(?:{regex.pattern})" for regex in _LINE_RES))
_LINE_NO_RE = re.compile(r"line:?\s+(\d+)")


class IptablesError(NetagentError):
    """Base of the errors of this module."""


class IptablesInputError(IptablesError):
    """A restore input line is outside the grammar netagent generates."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line

    def __str__(self) -> str:
        return f"restore input line rejected: {self.line!r}"


class IptablesRestoreError(IptablesError):
    """``iptables-restore`` failed; ``line`` is the failing input line number if known."""

    def __init__(self, family: int, table: str, returncode: int, stderr: str) -> None:
        super().__init__(family, table, returncode, stderr)
        self.family = family
        self.table = table
        self.returncode = returncode
        self.stderr = stderr
        match = _LINE_NO_RE.search(stderr)
        self.line: int | None = int(match.group(1)) if match else None

    def __str__(self) -> str:
        first = self.stderr.strip().splitlines()
        detail = "; ".join(x for x in first if x and not x.startswith("Try "))
        return f"IPv{self.family} {self.table} restore failed (rc={self.returncode}): {detail}"


def netns_prefix(namespace: str | None) -> list[str]:
    """The argv prefix that runs a command in ``namespace`` (root namespace for None).

    :param namespace: a name under ``/run/netns`` or None
    :raises ValueError: the name is not a plain namespace name
    """
    if namespace is None:
        return []
    if not _NETNS_RE.fullmatch(namespace):
        raise ValueError(f"invalid namespace name {namespace!r}")
    return ["nsenter", f"--net=/run/netns/{namespace}", "--"]


def _binary(backend: str, family: int, tool: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if family not in FAMILIES:
        raise ValueError(f"family must be 4 or 6, got {family!r}")
    return f"{'ip6tables' if family == 6 else 'iptables'}-{backend}-{tool}"


def _check_table(table: str) -> None:
    if table not in TABLES:
        raise ValueError(f"table must be one of {TABLES}, got {table!r}")


def legacy_tables(namespace: str | None) -> dict[int, list[str]]:
    """The legacy (x_tables) tables that exist in ``namespace``, per family, read from
    ``/proc/net/ip{,6}_tables_names`` without touching them (a legacy tool reading a
    table instantiates it). Reads only.
    """

    def read() -> dict[int, list[str]]:
        found: dict[int, list[str]] = {}
        for family, name in ((4, "ip_tables_names"), (6, "ip6_tables_names")):
            try:
                # thread-self: the namespace of this thread (call_in_namespace's)
                with open(f"/proc/thread-self/net/{name}", encoding="ascii") as names:
                    found[family] = [t for t in names.read().split() if t in TABLES]
            except OSError:
                found[family] = []
        return found

    return nsenter.call_in_namespace(namespace, read)


def alternative() -> str | None:
    """The variant the ``iptables`` command runs (``legacy``/``nft``), None if unknown."""
    try:
        out = subprocess.run(
            ["iptables", "-V"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    if "legacy" in out:
        return "legacy"
    return "nft" if "nf_tables" in out else None


def check_restore_input(table: str, text: str) -> None:
    """Refuse restore input outside netagent's grammar (only netagent chains, no quotes).

    :raises IptablesInputError: naming the first offending line
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) < 2 or lines[0] != f"*{table}" or lines[-1] != "COMMIT":
        raise IptablesInputError(lines[0] if lines else "")
    for line in lines[1:-1]:
        if not _LINE_RE.fullmatch(line):
            raise IptablesInputError(line)


def restore(
    namespace: str | None,
    backend: str,
    family: int,
    table: str,
    text: str,
    *,
    settle: bool = True,
) -> None:
    """Load one table's worth of netagent chains with ``iptables-restore --noflush -w``.

    The restore is atomic per table: on failure nothing of ``text`` is applied. Returns as
    soon as the tool reports the commit done (see :mod:`.committed_restore`); unless
    ``settle``, the tool's exit, which with nf_tables may wait an RCU grace period, is
    reaped in the background.

    :param namespace: network namespace name (None: root namespace)
    :param backend: ``nft`` or ``legacy``
    :param family: 4 or 6
    :param table: filter, nat, mangle or raw
    :param text: restore input (``*table`` ... ``COMMIT``) in netagent's grammar
    :param settle: also wait for the tool's exit: with nf_tables the kernel releases the
        removed rules' side effects (ipset references, xtables destructors) only when the
        tool closes its socket; needed when the caller may destroy a set next
    :raises IptablesInputError: the input is outside the grammar
    :raises IptablesRestoreError: the tool failed; carries stderr and the failing line
    """
    _check_table(table)
    check_restore_input(table, text)
    netns_prefix(namespace)  # validates the name
    tool = _binary(backend, family, "restore")
    argv = [tool, "-v", "--noflush", "-w", str(LOCK_WAIT)]
    try:
        failed = committed_restore.run(
            argv, text, tool=tool, timeout=TIMEOUT, settle=settle, namespace=namespace
        )
    except NamespaceNotFound:
        failed = (1, f"network namespace {namespace} not found")
    if failed is not None:
        raise IptablesRestoreError(family, table, *failed)


def save(namespace: str | None, backend: str, family: int, table: str) -> str:
    """``iptables-save -t TABLE`` of one table (read-only).

    :returns: the save output; empty when the table does not exist yet
    :raises IptablesRestoreError: the tool failed for another reason
    """
    _check_table(table)
    netns_prefix(namespace)  # validates the name
    argv = [_binary(backend, family, "save"), "-t", table]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)

    try:
        proc = nsenter.call_in_namespace(namespace, run)
    except NamespaceNotFound:
        raise IptablesRestoreError(
            family, table, 1, f"network namespace {namespace} not found"
        ) from None
    if proc.returncode != 0:
        if "does not exist" in proc.stderr or "Table does not exist" in proc.stderr:
            return ""
        raise IptablesRestoreError(family, table, proc.returncode, proc.stderr)
    return proc.stdout
