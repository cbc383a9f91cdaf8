"""The kernel layer's typed errors, for drivers (which do not import the privileged layer).

They are raised by :mod:`netagent.privileged` (the one place kernel errnos are translated)
and are the same classes: ``except DeviceNotFound`` in a driver catches what
:func:`netagent.linux.ip_lib.apply` raises and what :class:`~netagent.linux.ip_lib.Failed`
carries.
"""

from __future__ import annotations

from netagent.privileged.errors import (
    DeviceBusy,
    DeviceExists,
    DeviceNotFound,
    EntryExists,
    EntryNotFound,
    InvalidArgument,
    KernelError,
    NamespaceExists,
    NamespaceNotFound,
)

__all__ = [
    "DeviceBusy",
    "DeviceExists",
    "DeviceNotFound",
    "EntryExists",
    "EntryNotFound",
    "InvalidArgument",
    "KernelError",
    "NamespaceExists",
    "NamespaceNotFound",
]
