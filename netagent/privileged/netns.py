"""Named network namespaces, compatible with ``ip netns``.

A namespace is created by a short-lived thread that unshares its network namespace and
bind-mounts ``/proc/thread-self/ns/net`` onto ``/run/netns/<name>`` (after making
/run/netns a shared mount, as iproute2 does). No process is forked. Lookups never create.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

from netagent.privileged import nlcodec as nl
from netagent.privileged import nlsocket, nsenter
from netagent.privileged import validate as v
from netagent.privileged.errors import KernelError, NamespaceExists, NamespaceNotFound

LOG = logging.getLogger(__name__)
_T = TypeVar("_T")


def create_netns(name: str, loopback_up: bool = True) -> None:
    """Create the namespace ``name``.

    :param loopback_up: bring ``lo`` up inside it (needed for anything local to work).
    :raises NamespaceExists: it exists already.
    """
    v.namespace_name(name)
    path = nsenter.netns_path(name)
    nsenter.prepare_run_dir()
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    except FileExistsError:
        raise NamespaceExists(name) from None
    try:
        nsenter.unshare_and_bind(path)
    except OSError as exc:
        os.unlink(path)
        raise KernelError(exc.errno or errno.EIO, "create_netns", name, None) from None
    LOG.info("Created network namespace %s", name)
    if loopback_up:
        msg = nl.ifinfmsg()  # lo is ifindex 1 in every namespace
        msg.update(
            {"family": 0, "ifi_type": 0, "index": 1, "flags": nl.IFF_UP, "change": nl.IFF_UP}
        )
        reply = nlsocket.get_socket(name).run([nlsocket.Request(nl.RTM_SETLINK, 0, msg)])[0]
        if reply.error:
            raise KernelError(reply.error, "set lo up", "lo", name)


def delete_netns(name: str) -> None:
    """Delete the namespace ``name`` (its devices go when the last user leaves).

    Closes netagent's cached socket of the namespace first.

    :raises NamespaceNotFound: no such namespace.
    """
    v.namespace_name(name)
    path = nsenter.netns_path(name)
    nlsocket.close_socket(name)
    if not os.path.exists(path):
        raise NamespaceNotFound(name)
    try:
        nsenter.unmount(path)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # not mounted: a stale file, remove it anyway
            raise KernelError(exc.errno or errno.EIO, "delete_netns", name, None) from None
    try:
        os.unlink(path)
    except FileNotFoundError:
        raise NamespaceNotFound(name) from None
    LOG.info("Deleted network namespace %s", name)


def netns_exists(name: str) -> bool:
    """Whether /run/netns/``name`` exists. Never creates anything."""
    return os.path.exists(nsenter.netns_path(v.namespace_name(name)))


def list_netns(prefix: str = "") -> list[str]:
    """Names of the namespaces under /run/netns starting with ``prefix``, sorted."""
    try:
        names = os.listdir(nsenter.NETNS_RUN_DIR)
    except FileNotFoundError:
        return []
    return sorted(name for name in names if name.startswith(prefix))


def run_in_netns(name: str, fn: Callable[..., _T], *args: Any) -> _T:
    """Call ``fn(*args)`` in a thread inside namespace ``name`` and return its result.

    Not a primitive-only function: it exists for in-process callers (packet sockets,
    sysctls, helper relays) and cannot cross a privsep boundary as is.

    :raises NamespaceNotFound: no such namespace.
    """
    return nsenter.call_in_namespace(v.namespace_name(name), fn, *args)
