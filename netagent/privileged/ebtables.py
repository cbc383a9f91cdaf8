"""Privileged ebtables calls: one ``ebtables-nft-restore`` per batch, ``ebtables-nft-save``.

The only functions in netagent that run ebtables. Only the nf_tables variant is used:
the legacy ebtables kernel tables are often not built (this kernel has no ebtables ``nat``
table), and ebtables-nft works in every network namespace. Restore input is checked line
by line against the small grammar :mod:`netagent.linux.ebtables` generates: the ``nat``
table, netagent's own chains (``na-`` prefix), the one hook rule in ``PREROUTING``, and
rule bodies without quotes, backslashes, ``#`` or control characters.

A restore is atomic: ebtables-nft sends the whole input as one nf_tables transaction, so
on failure nothing of it is applied. With ``--noflush`` a ``:chain POLICY`` line creates
the chain or flushes an existing one.

:func:`restore` returns once the kernel has committed, not when the tool exits: the input
ends with a comment after ``COMMIT``, which ``-v`` echoes only after the commit succeeded
(on a failure the tool exits first). Closing the tool's netlink socket waits, under the
namespace's nf_tables commit mutex, for the deferred release of the rules the commit
removed (one RCU grace period, 10-15 ms here); that exit is reaped by a thread. The same
is done for iptables (:mod:`netagent.privileged.iptables`).
"""

from __future__ import annotations

import logging
import os
import re
import select
import subprocess
import threading
import time

from netagent.common.exceptions import NetagentError
from netagent.privileged.iptables import netns_prefix

LOG = logging.getLogger(__name__)

TIMEOUT = 120.0
#: Appended after ``COMMIT``; ``-v`` echoes it once the commit is done. Netagent's own
#: input never contains ``#`` (see the grammar below).
SYNC_MARKER = "# netagent: committed"
_OWNED = r"na-[A-Za-z0-9_-]{1,28}"
_BODY = r"[A-Za-z0-9 _./:,!+-]*"
_LINE_RES = (
    re.compile(rf":{_OWNED} RETURN"),
    re.compile(rf"-[FX] {_OWNED}"),
    re.compile(rf"-A {_OWNED} {_BODY}"),
    re.compile(r"-I PREROUTING 1 -j na-PREROUTING"),
    re.compile(r"-D PREROUTING -j na-PREROUTING"),
)
#: The same grammar as one pattern (one match per line instead of one per alternative).
_LINE_RE = re.compile("|".join(f"(?:{regex.pattern})" for regex in _LINE_RES))
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


def check_restore_input(text: str) -> None:
    """Refuse input outside netagent's grammar.

    :raises EbtablesInputError: naming the first offending line
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) < 2 or lines[0] != "*nat" or lines[-1] != "COMMIT":
        raise EbtablesInputError(lines[0] if lines else "")
    for line in lines[1:-1]:
        if not _LINE_RE.fullmatch(line):
            raise EbtablesInputError(line)


def restore(namespace: str | None, text: str, *, settle: bool = False) -> None:
    """Apply netagent chains of the ``nat`` table atomically (``--noflush``).

    Returns when the tool reports the commit done (:data:`SYNC_MARKER`).

    :param namespace: network namespace name (None: the agent's own namespace)
    :param text: ``*nat`` ... ``COMMIT`` in netagent's grammar
    :param settle: also wait for the tool's exit (the kernel's release of removed rules)
    :raises EbtablesInputError: the input is outside the grammar
    :raises EbtablesRestoreError: the tool failed (nothing was applied)
    """
    check_restore_input(text)
    argv = [*netns_prefix(namespace), "ebtables-nft-restore", "-v", "--noflush"]
    # stdin and stderr are memory files: only stdout (the echoed marker) is a pipe.
    stdin = _memfile(f"{text}{SYNC_MARKER}\n")
    stderr = _memfile("")
    try:
        proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr)
    finally:
        os.close(stdin)
    try:
        if _wait_for_marker(proc, time.monotonic() + TIMEOUT):
            if settle:
                _reap(proc)
            else:
                threading.Thread(target=_reap, args=(proc,), daemon=True).start()
            return
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        message = os.pread(stderr, 1 << 16, 0).decode(errors="replace")
    finally:
        os.close(stderr)
    raise EbtablesRestoreError(proc.returncode or 1, message)


def _memfile(text: str) -> int:
    fd = os.memfd_create("netagent-ebtables", os.MFD_CLOEXEC)
    os.write(fd, text.encode())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _wait_for_marker(proc: subprocess.Popen[bytes], deadline: float) -> bool:
    """Read the tool's stdout until the marker line (True) or EOF/timeout (False)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    marker = f"{SYNC_MARKER}\n".encode()
    out = b""
    try:
        while marker not in out:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                LOG.error("ebtables-nft-restore timed out after %.0f s, killing it", TIMEOUT)
                proc.kill()
                return False
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    return False
                out += chunk
        return True
    finally:
        proc.stdout.close()


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Wait for a restore that already reported its commit; its exit status is moot."""
    try:
        returncode = proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        returncode = proc.wait()
    if returncode != 0:
        LOG.warning("ebtables-nft-restore exited with %d after committing", returncode)


def save(namespace: str | None) -> str:
    """``ebtables-nft-save`` of the ``nat`` table (read-only).

    :returns: the save output (empty when the table does not exist)
    :raises EbtablesRestoreError: the tool failed
    """
    argv = [*netns_prefix(namespace), "ebtables-nft-save", "-t", "nat"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    if proc.returncode != 0:
        if "does not exist" in proc.stderr:
            return ""
        raise EbtablesRestoreError(proc.returncode, proc.stderr)
    return proc.stdout
