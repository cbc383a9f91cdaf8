"""Privileged ebtables calls: one ``ebtables-nft-restore`` per batch, ``ebtables-nft-save``.

The only functions in netagent that run ebtables. Only the nf_tables variant is used:
the legacy ebtables kernel tables are often not built (this kernel has no ebtables ``nat``
table), and ebtables-nft works in every network namespace. Restore input is checked line
by line against the small grammar :mod:`netagent.linux.ebtables` generates: the ``nat``
or ``filter`` table, netagent's own chains (``na-`` prefix), the one hook rule in
``PREROUTING`` (nat) or ``INPUT`` (filter), and rule bodies without quotes, backslashes,
``#`` or control characters.

A restore is atomic: ebtables-nft sends the whole input as one nf_tables transaction, so
on failure nothing of it is applied. With ``--noflush`` a ``:chain POLICY`` line creates
the chain or flushes an existing one.

:func:`restore` returns once the kernel has committed, not when the tool exits, as the
iptables restores do (:mod:`netagent.privileged.committed_restore`).
"""

from __future__ import annotations

import logging
import re
import subprocess

from netagent.common.exceptions import NetagentError
from netagent.privileged import committed_restore
from netagent.privileged.iptables import netns_prefix

LOG = logging.getLogger(__name__)

TIMEOUT = 120.0
_OWNED = r"na-[A-Za-z0-9_-]{1,28}"
_BODY = r"[A-Za-z0-9 _./:,!+-]*"
#: table -> the built-in chain holding the jump to netagent's hook chain
HOOKS = {"nat": "PREROUTING", "filter": "INPUT"}


#: The Neutron Linux bridge agent's ARP/MAC spoofing chains (``arp_protect``), named
#: after the tap; a takeover may unhook, flush and delete them, nothing else.
NEUTRON_LB_CHAIN = r"neutron(?:ARP|MAC)-tap[0-9a-f-]{11}"
_NEUTRON_JUMP = rf"-D PREROUTING(?: -p ARP)? -i tap[0-9a-f-]{{11}} -j {NEUTRON_LB_CHAIN}"


def _grammar(builtin: str) -> re.Pattern[str]:
    """The lines netagent writes into a table whose hook is in ``builtin``, as one pattern
    (one match per line instead of one per alternative)."""
    neutron = (rf"-[FX] {NEUTRON_LB_CHAIN}", _NEUTRON_JUMP) if builtin == "PREROUTING" else ()
    alternatives = (
        *neutron,
        rf":{_OWNED} RETURN",
        rf"-[FX] {_OWNED}",
        rf"-A {_OWNED} {_BODY}",
        rf"-I {builtin} 1 -j na-{builtin}",
        rf"-D {builtin} -j na-{builtin}",
    )
    return re.compile("|".join(f"(?:{a})" for a in alternatives))


_LINE_RES = {table: _grammar(builtin) for table, builtin in HOOKS.items()}
_LINE_NO_RE = re.compile(r"line:?\s+(\d+)")


class EbtablesError(NetagentError):
    """Base of the errors of this module."""


class EbtablesInputError(EbtablesError):
    """A restore input line is outside the grammar netagent generates."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line

    def __str__(self) -> str:
        return f"ebtables restore input line rejected: {self.line!r}"


class EbtablesRestoreError(EbtablesError):
    """``ebtables-nft-restore`` failed; ``line`` is the failing input line if known."""

    def __init__(self, returncode: int, stderr: str) -> None:
        super().__init__(returncode, stderr)
        self.returncode = returncode
        self.stderr = stderr
        match = _LINE_NO_RE.search(stderr)
        self.line: int | None = int(match.group(1)) if match else None

    def __str__(self) -> str:
        detail = "; ".join(x for x in self.stderr.strip().splitlines() if x)
        return f"ebtables restore failed (rc={self.returncode}): {detail}"


def check_restore_input(text: str, table: str = "nat") -> None:
    """Refuse input outside netagent's grammar for ``table``.

    :raises EbtablesInputError: naming the first offending line
    """
    grammar = _LINE_RES.get(table)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if grammar is None or len(lines) < 2 or lines[0] != f"*{table}" or lines[-1] != "COMMIT":
        raise EbtablesInputError(lines[0] if lines else "")
    for line in lines[1:-1]:
        if not grammar.fullmatch(line):
            raise EbtablesInputError(line)


def restore(namespace: str | None, text: str, *, table: str = "nat", settle: bool = False) -> None:
    """Apply netagent chains of ``table`` atomically (``--noflush``).

    Returns when the tool reports the commit done (:data:`.committed_restore.SYNC_MARKER`).

    :param namespace: network namespace name (None: the agent's own namespace)
    :param text: ``*<table>`` ... ``COMMIT`` in netagent's grammar
    :param table: ``nat`` or ``filter``
    :param settle: also wait for the tool's exit (the kernel's release of removed rules)
    :raises EbtablesInputError: the input is outside the grammar
    :raises EbtablesRestoreError: the tool failed (nothing was applied)
    """
    check_restore_input(text, table)
    argv = [*netns_prefix(namespace), "ebtables-nft-restore", "-v", "--noflush"]
    failed = committed_restore.run(
        argv, text, tool="ebtables-nft-restore", timeout=TIMEOUT, settle=settle
    )
    if failed is not None:
        raise EbtablesRestoreError(*failed)


def save(namespace: str | None, table: str = "nat", *, counters: bool = False) -> str:
    """``ebtables-nft-save`` of ``table`` (read-only); with ``counters`` each rule line
    starts with ``[packets:bytes]``.

    :returns: the save output (empty when the table does not exist)
    :raises EbtablesRestoreError: the tool failed
    """
    if table not in HOOKS:
        raise ValueError(f"unknown ebtables table {table!r}")
    argv = [*netns_prefix(namespace), "ebtables-nft-save", *(["-c"] if counters else []), "-t"]
    argv.append(table)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    if proc.returncode != 0:
        if "does not exist" in proc.stderr:
            return ""
        raise EbtablesRestoreError(proc.returncode, proc.stderr)
    return proc.stdout
