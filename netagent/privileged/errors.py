"""Typed errors of the kernel layer, and the one place kernel errnos are translated.

Every exception here is rebuildable from its constructor arguments (``cls(*exc.args)``),
because a privsep daemon placed in front of :mod:`netagent.privileged` later re-raises
exceptions by class name and arguments.
"""

from __future__ import annotations

import errno as errno_mod
import os

from netagent.common.exceptions import NetagentError


class InvalidArgument(NetagentError, ValueError):  # noqa: N818
    """An argument was rejected before anything was sent to the kernel."""

    def __init__(self, field: str, value: object, reason: str = "") -> None:
        super().__init__(field, value, reason)
        self.field = field
        self.value = value
        self.reason = reason

    def __str__(self) -> str:
        tail = f": {self.reason}" if self.reason else ""
        return f"invalid {self.field} {self.value!r}{tail}"


class KernelError(NetagentError):
    """The kernel refused an operation for a reason without a more specific class.

    :param errno: the errno the kernel returned.
    :param operation: what was attempted, e.g. ``"create_veth"``.
    :param target: the resource the operation was about (device, address, ...).
    :param namespace: the network namespace, ``None`` for the agent's own.
    """

    def __init__(
        self, errno: int, operation: str = "", target: str = "", namespace: str | None = None
    ) -> None:
        super().__init__(errno, operation, target, namespace)
        self.errno = errno
        self.operation = operation
        self.target = target
        self.namespace = namespace

    def __str__(self) -> str:
        where = f" in namespace {self.namespace}" if self.namespace else ""
        name = errno_mod.errorcode.get(self.errno, str(self.errno))
        return f"{self.operation} {self.target}{where} failed: {name} ({os.strerror(self.errno)})"


class DeviceNotFound(KernelError):  # noqa: N818
    """No such network device (ENODEV)."""


class DeviceExists(KernelError):  # noqa: N818
    """A device with that name already exists (EEXIST on a link operation)."""


class DeviceBusy(KernelError):  # noqa: N818
    """The device is in use (EBUSY), e.g. already enslaved or an ifindex is taken."""


class EntryExists(KernelError):  # noqa: N818
    """An address, route, rule, neighbour or FDB entry already exists (EEXIST)."""


class EntryNotFound(KernelError):  # noqa: N818
    """An address, route, rule, neighbour or FDB entry does not exist."""


class NamespaceNotFound(NetagentError):  # noqa: N818
    """The named network namespace does not exist under /run/netns."""

    def __init__(self, namespace: str) -> None:
        super().__init__(namespace)
        self.namespace = namespace

    def __str__(self) -> str:
        return f"network namespace {self.namespace!r} does not exist"


class NamespaceExists(NetagentError):  # noqa: N818
    """A network namespace with that name already exists."""

    def __init__(self, namespace: str) -> None:
        super().__init__(namespace)
        self.namespace = namespace

    def __str__(self) -> str:
        return f"network namespace {self.namespace!r} already exists"


_LINK_OPS = frozenset({"link"})
_NOT_FOUND = frozenset({errno_mod.ENOENT, errno_mod.ESRCH, errno_mod.EADDRNOTAVAIL})


def translate(
    err: int, kind: str, operation: str, target: str, namespace: str | None
) -> KernelError:
    """Map a kernel errno to the typed exception for it.

    :param err: positive errno from the kernel (netlink error, ioctl or syscall).
    :param kind: ``"link"`` for device operations, anything else for table entries
        (addresses, routes, rules, neighbours, FDB).
    :param operation: name of the attempted operation, for the message.
    :param target: the resource name, for the message.
    :param namespace: the namespace the operation ran in.
    :returns: an exception instance; the caller raises it.
    """
    args = (err, operation, target, namespace)
    if err == errno_mod.ENODEV:
        return DeviceNotFound(*args)
    if err == errno_mod.EBUSY:
        return DeviceBusy(*args)
    if err == errno_mod.EEXIST:
        return DeviceExists(*args) if kind in _LINK_OPS else EntryExists(*args)
    if kind not in _LINK_OPS and err in _NOT_FOUND:
        return EntryNotFound(*args)
    return KernelError(*args)
