"""Entering network namespaces from a thread: the only use of setns(2) in netagent.

A network namespace is a per-thread attribute on Linux, so a short-lived thread that calls
``setns(fd, CLONE_NEWNET)`` runs code inside the namespace while the rest of the process
stays where it is. Sockets keep the namespace they were created in, which is how the
per-namespace netlink and packet sockets are opened. No process is forked; a subprocess
started from such a thread inherits its namespace.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from netagent.privileged.errors import NamespaceNotFound

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000

_T = TypeVar("_T")
_libc = ctypes.CDLL(None, use_errno=True)


def netns_path(name: str) -> str:
    """The bind-mount file of a named namespace, as ``ip netns`` uses it."""
    return os.path.join(NETNS_RUN_DIR, name)


def open_netns(name: str) -> int:
    """Open a named namespace for setns(2).

    :param name: an already validated namespace name.
    :returns: a file descriptor the caller must close.
    :raises NamespaceNotFound: no such namespace.
    """
    try:
        return os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NamespaceNotFound(name) from None


def libc_call(name: str, *args: Any) -> None:
    """Call a libc function that returns -1 and sets errno on failure.

    :raises OSError: with the errno the call set.
    """
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def setns_fd(fd: int) -> None:
    """Move the calling thread into the network namespace open at ``fd``."""
    libc_call("setns", fd, CLONE_NEWNET)


def call_in_namespace(namespace: str | None, fn: Callable[..., _T], *args: Any) -> _T:
    """Run ``fn(*args)`` in a fresh thread inside ``namespace`` and return its result.

    ``None`` runs ``fn`` directly in the caller's namespace. Exceptions raised by ``fn``
    are re-raised in the caller.

    :raises NamespaceNotFound: the namespace does not exist.
    """
    if namespace is None:
        return fn(*args)
    fd = open_netns(namespace)
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            setns_fd(fd)
            box["result"] = fn(*args)
        except BaseException as exc:  # re-raised in the caller below
            box["error"] = exc

    try:
        thread = threading.Thread(target=runner, name=f"netns-{namespace}", daemon=True)
        thread.start()
        thread.join()
    finally:
        os.close(fd)
    if "error" in box:
        raise box["error"]
    result: _T = box["result"]
    return result


def unshare_and_bind(path: str) -> None:
    """In a new thread: unshare a new network namespace and bind-mount it onto ``path``.

    ``path`` must exist as an empty file. /proc/thread-self is used because /proc/self
    names the thread-group leader, which stays in its own namespace.
    """
    box: dict[str, BaseException] = {}

    def runner() -> None:
        try:
            libc_call("unshare", CLONE_NEWNET)
            libc_call("mount", b"/proc/thread-self/ns/net", path.encode(), b"none", _MS_BIND, None)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=runner, name="netns-create", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]


_MS_BIND = 4096
_MS_REC = 16384
_MS_SHARED = 1 << 20
_MNT_DETACH = 2


def prepare_run_dir() -> None:
    """Make /run/netns a shared mount point, as ``ip netns add`` does.

    Shared propagation lets namespaces created later show up in other mount namespaces
    (for example in processes started with ``ip netns exec``).
    """
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    run_dir = NETNS_RUN_DIR.encode()
    try:
        libc_call("mount", b"", run_dir, b"none", _MS_SHARED | _MS_REC, None)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        # Not a mount point yet: bind it onto itself, then share it (iproute2 does this).
        libc_call("mount", run_dir, run_dir, b"none", _MS_BIND | _MS_REC, None)
        libc_call("mount", b"", run_dir, b"none", _MS_SHARED | _MS_REC, None)


def unmount(path: str) -> None:
    """Lazily unmount ``path`` (MNT_DETACH); the namespace dies with its last user."""
    libc_call("umount2", path.encode(), _MNT_DETACH)
