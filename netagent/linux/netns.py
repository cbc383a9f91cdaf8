"""Network namespaces for drivers: create, delete, list by prefix.

Names are validated (1..128 characters from ``[A-Za-z0-9_.-]``). Namespaces are bind
mounts under /run/netns, so ``ip netns`` sees them. No function here creates a namespace
as a side effect of a lookup.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TypeVar

from netagent.privileged import netns as priv_netns
from netagent.privileged import nlsocket as priv_nlsocket
from netagent.privileged import validate

LOG = logging.getLogger(__name__)
_T = TypeVar("_T")


def create(name: str, *, loopback_up: bool = True) -> None:
    """Create a namespace (and bring its ``lo`` up unless told otherwise).

    :raises NamespaceExists: it exists.
    """
    priv_netns.create_netns(validate.namespace_name(name), loopback_up)


def delete(name: str, *, missing_ok: bool = False) -> None:
    """Delete a namespace and close netagent's socket for it.

    :raises NamespaceNotFound: it does not exist and ``missing_ok`` is false.
    """
    if missing_ok and not exists(name):
        return
    priv_netns.delete_netns(validate.namespace_name(name))


def exists(name: str) -> bool:
    """Whether the namespace exists."""
    return priv_netns.netns_exists(validate.namespace_name(name))


def list_namespaces(prefix: str = "") -> list[str]:
    """Namespaces whose name starts with ``prefix`` (reads /run/netns, spawns nothing)."""
    return priv_netns.list_netns(prefix)


def connect(names: Sequence[str]) -> None:
    """Open netagent's netlink sockets of these namespaces ahead of use, all from one
    thread (many namespaces are about to be read); gone ones are skipped."""
    priv_nlsocket.open_sockets([validate.namespace_name(name) for name in names])
