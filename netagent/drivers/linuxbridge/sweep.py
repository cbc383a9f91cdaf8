"""Removing the Linux bridge devices netagent owns and nobody wants any more.

Ownership is by name: ``nvx-``/``nvl-`` devices are netagent's alone; ``brq`` bridges are
netagent's (or a Neutron Linux bridge agent's, whose naming netagent shares) *unless*
something else was put in them. A bridge with a member that is not a tap, not a netagent
uplink and not a mapped physical interface belongs to someone else's setup and is kept.

A kept bridge loses its taps (detached and set down): nothing filters them once the
firewall's chains are gone, so a tap left there would forward whatever its VM sends.
"""

from __future__ import annotations

import logging
from collections.abc import Set
from typing import NamedTuple

from netagent.common import constants as c
from netagent.drivers.linuxbridge.kernel import Kernel
from netagent.drivers.linuxbridge.links import Links
from netagent.linux.ip_lib import DeleteLink, Op, SetLink

LOG = logging.getLogger(__name__)

OWN_UPLINK_PREFIXES = (c.VXLAN_DEVICE_PREFIX, c.VLAN_DEVICE_PREFIX)


def detach_stray_ports(kernel: Kernel, links: Links, wanted: Set[str], dry_run: bool) -> list[str]:
    """Release ``tap`` devices from netagent bridges when no wanted port owns them.

    The device itself is the hypervisor's and stays; detached, it forwards nothing.
    """
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
        line = f"detach {link.name} from bridge {links.name_of(link.master)}: no wanted port"
        LOG.info("%s%s", prefix, line)
        actions.append(prefix + line)
        if not dry_run:
            _run(kernel, SetLink(name=link.name, nomaster=True), line, actions)
    return actions


def _run(kernel: Kernel, op: Op, line: str, actions: list[str]) -> bool:
    """Apply ``op``; a failure is logged and appended to the last action line."""
    error = kernel.apply([op]).get(0)
    if error is None:
        return True
    LOG.warning("%s failed: %s", line, error)
    actions[-1] += f" (failed: {error})"
    return False


class Removed(NamedTuple):
    """What :func:`remove_owned` did."""

    actions: list[str]
    #: bridges deleted
    deleted: set[str]
    #: taps that stay in a kept bridge because detaching them failed
    exposed: list[str]


def remove_owned(
    kernel: Kernel, links: Links, keep: Set[str], physical: Set[str], dry_run: bool
) -> Removed:
    """Delete netagent's devices whose names are not in ``keep``: uplinks, then bridges.
    A bridge kept for its foreign members has its taps detached and set down.

    :param kernel: the kernel layer of the namespace.
    :param links: its devices (one dump).
    :param keep: device names still wanted.
    :param physical: mapped physical interfaces (netagent may have enslaved them; they
        are released, never deleted, when their bridge goes).
    :param dry_run: log and report with a ``NOOP:`` prefix, change nothing.
    """
    actions: list[str] = []
    deleted: set[str] = set()
    exposed: list[str] = []
    prefix = "NOOP: " if dry_run else ""

    def act(line: str, op: Op) -> bool:
        LOG.info("%s%s", prefix, line)
        actions.append(prefix + line)
        return dry_run or _run(kernel, op, line, actions)

    gone: set[int] = set()
    ordered = sorted(links.values(), key=lambda item: item.name)
    for link in ordered:
        if link.name in keep or not link.name.startswith(OWN_UPLINK_PREFIXES):
            continue
        if link.kind in ("vxlan", "vlan"):
            name = link.name
            act(f"delete {link.kind} device {name}", DeleteLink(name=name))
            gone.add(link.index)
    for link in ordered:
        if link.name in keep or link.kind != "bridge":
            continue
        if not link.name.startswith(c.NETWORK_BRIDGE_PREFIX):
            continue
        members = links.members(link.index)
        foreign = sorted(
            member.name
            for member in members
            if member.index not in gone
            and not member.name.startswith((c.TAP_PREFIX, *OWN_UPLINK_PREFIXES))
            and member.name not in physical
        )
        if foreign:
            line = f"keep bridge {link.name}: it has foreign members {', '.join(foreign)}"
            LOG.warning("%s", line)
            actions.append(line)
            plural = "s" if len(foreign) > 1 else ""
            why = f"bridge kept: foreign member{plural} {', '.join(foreign)}"
            for member in members:
                if not member.name.startswith(c.TAP_PREFIX):
                    continue
                tap = member.name
                release = SetLink(name=tap, nomaster=True, up=False)
                if not act(f"detach {tap} from {link.name} ({why}) and set it down", release):
                    exposed.append(tap)
            continue
        name = link.name
        if act(f"delete bridge {name}", DeleteLink(name=name)):
            deleted.add(name)
    return Removed(actions, deleted, exposed)
