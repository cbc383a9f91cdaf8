"""Drivers that do nothing: for hosts where one function is handled elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from netagent.drivers import base

if TYPE_CHECKING:
    from netagent.model import DesiredState, Router

#: Why a router of this host is not built.
NOT_APPLIED = "not applied: l3_driver is noop (this host builds no routers)"


class NoopL2Driver(base.L2Driver):
    """Wires nothing."""


class NoopFirewallDriver(base.FirewallDriver):
    """Filters nothing: ports are unfiltered."""


class NoopL3Driver(base.L3Driver):
    """Builds no routers: the agent reports every router of this host as not applied."""

    builds_routers = False

    def apply_routers(self, routers: Sequence[Router], state: DesiredState) -> base.Outcome:
        return base.Outcome(failed={r.id: NOT_APPLIED for r in routers})
