"""Linux bridge L2 driver (entry point ``linuxbridge`` in ``netagent.l2``)."""

from __future__ import annotations

from netagent.drivers.linuxbridge.driver import LinuxBridgeDriver

__all__ = ["LinuxBridgeDriver"]
