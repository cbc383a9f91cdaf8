"""Small helpers for the linux-layer functional tests (read-only ``ip`` and ``ping``, and
applying a list of typed operations)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from netagent.linux import ip_lib


def ping(namespace: str, address: str, count: int = 1, timeout: int = 2) -> bool:
    """One bounded ping from inside ``namespace``; True if answered."""
    cmd = ["ip", "netns", "exec", namespace, "ping", "-n", "-c", str(count), "-W", str(timeout)]
    if ":" in address:
        cmd.insert(5, "-6")
    result = subprocess.run([*cmd, address], capture_output=True, text=True, timeout=30)
    return result.returncode == 0


def ip_out(namespace: str, *args: str) -> str:
    return subprocess.run(
        ["ip", "-n", namespace, *args], capture_output=True, text=True, check=True
    ).stdout


def ip_do(namespace: str, *args: str) -> None:
    subprocess.run(["ip", "-n", namespace, *args], capture_output=True, text=True, check=True)


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Poll ``predicate`` every 50 ms until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def apply_all(namespace: str | None, *ops: ip_lib.Op) -> None:
    """Apply ``ops`` as one batch (the way drivers do) and fail on any refusal."""
    batch = ip_lib.Batch(namespace)
    for op in ops:
        batch.add(op, owner=op)
    failed = batch.send()
    assert not failed, [(f.op, str(f.error)) for f in failed]
