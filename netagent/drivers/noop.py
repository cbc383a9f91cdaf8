"""Drivers that do nothing: for hosts where one function is handled elsewhere."""

from __future__ import annotations

from netagent.drivers import base


class NoopL2Driver(base.L2Driver):
    """Wires nothing."""


class NoopFirewallDriver(base.FirewallDriver):
    """Filters nothing: ports are unfiltered."""


class NoopL3Driver(base.L3Driver):
    """Builds no routers."""
