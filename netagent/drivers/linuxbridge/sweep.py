"""Removing the Linux bridge devices netagent owns and nobody wants any more.

Ownership is by name: ``nvx-``/``nvl-`` devices are netagent's alone; ``brq`` bridges are
netagent's (or a Neutron Linux bridge agent's, whose naming netagent shares) *unless*
something else was put in them. A bridge with a member that is not a tap, not a netagent
uplink and not a mapped physical interface belongs to someone else's setup and is kept.

A kept bridge loses its taps (detached and set down): nothing filters them once the
firewall's chains are gone, so a tap left there would forward whatever its VM sends.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Set
from typing import NamedTuple

from netagent.common import constants as c
from netagent.common.exceptions import NetagentError
from netagent.drivers.linuxbridge.kernel import Kernel, Link

LOG = logging.getLogger(__name__)

OWN_UPLINK_PREFIXES = (c.VXLAN_DEVICE_PREFIX, c.VLAN_DEVICE_PREFIX)


def detach_stray_ports(kernel: Kernel, wanted: Set[str], dry_run: bool) -> list[str]:
    """Release ``tap`` devices from netagent bridges when no wanted port owns them.

    The device itself is the hypervisor's and stays; detached, it forwards nothing.
    """
    links = kernel.links()
    bridges = {
        link.index
        for link in links.values()
        if link.kind == "bridge" and link.name.startswith(c.NETWORK_BRIDGE_PREFIX)
    }
    prefix = "NOOP: " if dry_run else ""
    actions: list[str] = []
    for link in sorted(links.values(), key=lambda item: item.name):
        if link.master not in bridges or not link.name.startswith(c.TAP_PREFIX):
            continue
        if link.name in wanted:
            continue
        line = f"detach {link.name} from bridge {_name(links, link.master)}: no wanted port"
        LOG.info("%s%s", prefix, line)
        actions.append(prefix + line)
        if dry_run:
            continue
        try:
            kernel.set_link(link.name, nomaster=True)
        except NetagentError as exc:
            LOG.warning("%s failed: %s", line, exc)
            actions[-1] += f" (failed: {exc})"
    return actions


def _name(links: dict[str, Link], index: int | None) -> str:
    return next((link.name for link in links.values() if link.index == index), "?")


class Removed(NamedTuple):
    """What :func:`remove_owned` did."""

    actions: list[str]
    #: bridges deleted
    deleted: set[str]
    #: taps that stay in a kept bridge because detaching them failed
    exposed: list[str]


def remove_owned(kernel: Kernel, keep: Set[str], physical: Set[str], dry_run: bool) -> Removed:
    """Delete netagent's devices whose names are not in ``keep``: uplinks, then bridges.
    A bridge kept for its foreign members has its taps detached and set down.

    :param kernel: the kernel layer of the namespace.
    :param keep: device names still wanted.
    :param physical: mapped physical interfaces (netagent may have enslaved them; they
        are released, never deleted, when their bridge goes).
    :param dry_run: log and report with a ``NOOP:`` prefix, change nothing.
    """
    links = kernel.links()
    actions: list[str] = []
    deleted: set[str] = set()
    exposed: list[str] = []
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
            plural = "s" if len(foreign) > 1 else ""
            why = f"bridge kept: foreign member{plural} {', '.join(foreign)}"
            for member in ordered:
                if member.master != link.index or not member.name.startswith(c.TAP_PREFIX):
                    continue
                tap = member.name
                release = functools.partial(kernel.set_link, tap, nomaster=True, up=False)
                if not act(f"detach {tap} from {link.name} ({why}) and set it down", release):
                    exposed.append(tap)
            continue
        name = link.name
        if act(f"delete bridge {name}", functools.partial(kernel.delete_link, name)):
            deleted.add(name)
    return Removed(actions, deleted, exposed)
