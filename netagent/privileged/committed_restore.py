"""Run an nf_tables restore tool and return once the kernel has committed its input.

Used by the iptables and ebtables restores. The input ends with a comment line after
``COMMIT`` (:data:`SYNC_MARKER`); with ``-v`` the tools echo it only after the commit
succeeded (on a failure they exit before reaching it). Closing the tool's netlink socket
then waits, under the namespace's nf_tables commit mutex, for the deferred release of the
rules the commit removed (one RCU grace period, 10-15 ms here); unless the caller needs
that release (``settle``), the exit is reaped by a background thread.
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import threading
import time
from collections.abc import Sequence

from netagent.privileged import nsenter

LOG = logging.getLogger(__name__)

#: Appended after ``COMMIT``; ``-v`` echoes it once the commit is done. netagent's own
#: restore inputs never contain ``#`` (their grammars refuse it).
SYNC_MARKER = "# netagent: committed"


def run(
    argv: Sequence[str],
    text: str,
    *,
    tool: str,
    timeout: float,
    settle: bool,
    namespace: str | None = None,
) -> tuple[int, str] | None:
    """Feed ``text`` (plus the marker) to the restore tool run by ``argv``.

    :param tool: the tool's name, for logs.
    :param settle: also wait for the tool's exit.
    :param namespace: a validated namespace name to start the tool in (from a thread that
        entered it; the child inherits it), ``None`` for the caller's.
    :returns: ``None`` once committed, else ``(returncode, stderr)`` of the failed tool.
    """
    # stdin and stderr are memory files: only stdout, which carries nothing but the echoed
    # marker, is a pipe, so nothing can block on a full pipe.
    stdin = _memfile(f"{text}{SYNC_MARKER}\n")
    stderr = _memfile("")
    try:

        def spawn() -> subprocess.Popen[bytes]:
            return subprocess.Popen(list(argv), stdin=stdin, stdout=subprocess.PIPE, stderr=stderr)

        proc = nsenter.call_in_namespace(namespace, spawn)
    finally:
        os.close(stdin)
    try:
        if _wait_for_marker(proc, time.monotonic() + timeout, tool, timeout):
            if settle:
                _reap(proc, tool, timeout)
            else:
                threading.Thread(target=_reap, args=(proc, tool, timeout), daemon=True).start()
            return None
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return proc.returncode or 1, os.pread(stderr, 1 << 16, 0).decode(errors="replace")
    finally:
        os.close(stderr)


def _memfile(text: str) -> int:
    fd = os.memfd_create("netagent-restore", os.MFD_CLOEXEC)
    os.write(fd, text.encode())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _wait_for_marker(
    proc: subprocess.Popen[bytes], deadline: float, tool: str, timeout: float
) -> bool:
    """Read the tool's stdout until the marker line (True) or EOF/timeout (False)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    marker = f"{SYNC_MARKER}\n".encode()
    out = b""
    try:
        while marker not in out:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                LOG.error("%s timed out after %.0f s, killing it", tool, timeout)
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


def _reap(proc: subprocess.Popen[bytes], tool: str, timeout: float) -> None:
    """Wait for a restore that already reported its commit; its exit status is moot."""
    try:
        returncode = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        returncode = proc.wait()
    if returncode != 0:
        LOG.warning("%s exited with %d after committing", tool, returncode)
