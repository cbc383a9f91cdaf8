"""Open vSwitch L2 driver (entry point ``openvswitch`` in ``netagent.l2``)."""

from __future__ import annotations

from netagent.drivers.openvswitch.driver import OpenvswitchDriver

__all__ = ["OpenvswitchDriver"]
