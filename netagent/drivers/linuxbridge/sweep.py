"""Removing the Linux bridge devices netagent owns and nobody wants any more.

Ownership is by name: ``nvx-``/``nvl-`` devices are netagent's alone; ``brq`` bridges are
netagent's (or a Neutron Linux bridge agent's, whose naming netagent shares) *unless*
something else was put in them. A bridge with a member that is not a tap, not a netagent
uplink and not a mapped physical interface belongs to someone else's setup and is kept.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Set

from netagent.common import constants as c
from netagent.common.exceptions import NetagentError
from netagent.drivers.linuxbridge.kernel import Kernel

LOG = logging.getLogger(__name__)

OWN_UPLINK_PREFIXES = (c.VXLAN_DEVICE_PREFIX, c.VLAN_DEVICE_PREFIX)


def remove_owned(
    kernel: Kernel, keep: Set[str], physical: Set[str], dry_run: bool
) -> tuple[list[str], set[str]]:
    """Delete netagent's devices whose names are not in ``keep``: uplinks, then bridges.

    :param kernel: the kernel layer of the namespace.
    :param keep: device names still wanted.
    :param physical: mapped physical interfaces (netagent may have enslaved them; they
        are released, never deleted, when their bridge goes).
    :param dry_run: log and report with a ``NOOP:`` prefix, change nothing.
    :returns: one line per action (or refusal), and the names of deleted bridges.
    """
    links = kernel.links()
    actions: list[str] = []
    deleted: set[str] = set()
    prefix = "NOOP: " if dry_run else ""

    def act(line: str, fn: Callable[[], None]) -> bool:
        LOG.info("%s%s", prefix, line)
        actions.append(prefix + line)
        if dry_run:
            return True
        try:
            fn()
        except NetagentError as exc:
            LOG.warning("%s failed: %s", line, exc)
            actions[-1] += f" (failed: {exc})"
            return False
        return True

    gone: set[int] = set()
    ordered = sorted(links.values(), key=lambda item: item.name)
    for link in ordered:
        if link.name in keep or not link.name.startswith(OWN_UPLINK_PREFIXES):
            continue
        if link.kind in ("vxlan", "vlan"):
            name = link.name
            act(f"delete {link.kind} device {name}", functools.partial(kernel.delete_link, name))
            gone.add(link.index)
    for link in ordered:
        if link.name in keep or link.kind != "bridge":
            continue
        if not link.name.startswith(c.NETWORK_BRIDGE_PREFIX):
            continue
        foreign = sorted(
            member.name
            for member in links.values()
            if member.master == link.index
            and member.index not in gone
            and not member.name.startswith((c.TAP_PREFIX, *OWN_UPLINK_PREFIXES))
            and member.name not in physical
        )
        if foreign:
            line = f"keep bridge {link.name}: it has foreign members {', '.join(foreign)}"
            LOG.warning("%s", line)
            actions.append(line)
            continue
        name = link.name
        if act(f"delete bridge {name}", functools.partial(kernel.delete_link, name)):
            deleted.add(name)
    return actions, deleted
