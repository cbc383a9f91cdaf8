"""OpenFlow changes through ``ovs-ofctl --bundle``: the one place netagent runs ovs-ofctl.

A bundle is applied atomically by ovs-vswitchd (OpenFlow 1.4 bundles): either every line
of it is in the table or none. Lines are the ``add-flows`` file format, where a line may
start with ``delete``; callers build them with :mod:`netagent.ovs.flows`. The target is a
bridge's management socket (``unix:<rundir>/<bridge>.mgmt``), never a remote controller
address.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence

from netagent.common.exceptions import NetagentError
from netagent.privileged.errors import InvalidArgument

_TARGET_RE = re.compile(r"^unix:/[A-Za-z0-9_./-]+\.mgmt$")
_LINE_RE = re.compile(r"^[A-Za-z0-9_ =,.:/()\[\]>+-]+$")
_COOKIE_RE = re.compile(r"cookie=0x([0-9a-f]+)")
_TIMEOUT = 60


class OpenFlowError(NetagentError):
    """ovs-ofctl failed; for a bundle, nothing of it was applied."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(target, reason)
        self.target = target
        self.reason = reason

    def __str__(self) -> str:
        return f"OpenFlow on {self.target}: {self.reason}"


def _target(target: str) -> str:
    if not isinstance(target, str) or not _TARGET_RE.fullmatch(target):
        raise InvalidArgument("target", target, "unix:/path/<bridge>.mgmt")
    return target


def _ofctl(args: list[str], target: str, stdin: str | None = None) -> str:
    try:
        proc = subprocess.run(
            ["ovs-ofctl", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OpenFlowError(target, str(exc)) from exc
    if proc.returncode != 0:
        raise OpenFlowError(target, proc.stderr.strip() or f"exit {proc.returncode}")
    return proc.stdout


def bundle(target: str, lines: Sequence[str]) -> None:
    """Apply flow additions and deletions as one atomic bundle.

    :param lines: ``add-flows`` lines, e.g. ``cookie=0x..,table=0,priority=1,actions=drop``
        or ``delete cookie=0x../-1``.
    :raises InvalidArgument: bad target or a line with characters flows never need.
    :raises OpenFlowError: ovs-ofctl or ovs-vswitchd refused it (nothing applied).
    """
    _target(target)
    for line in lines:
        if not isinstance(line, str) or not _LINE_RE.fullmatch(line):
            raise InvalidArgument("flow", line, "one line of flow syntax")
    if not lines:
        return
    _ofctl(["--bundle", "add-flows", target, "-"], target, "\n".join(lines) + "\n")


def cookies(target: str, cookie: int, mask: int) -> list[int]:
    """The cookies of the flows whose cookie matches ``cookie``/``mask`` (one per flow).

    :raises OpenFlowError: the bridge cannot be reached.
    """
    _target(target)
    if not (0 <= cookie < 1 << 64 and 0 < mask < 1 << 64):
        raise InvalidArgument("cookie", (cookie, mask), "64-bit values")
    out = _ofctl(["--no-stats", "dump-flows", target, f"cookie=0x{cookie:x}/0x{mask:x}"], target)
    return [int(m.group(1), 16) for m in map(_COOKIE_RE.search, out.splitlines()) if m]
