"""The ``namespace`` L3 driver: legacy routers in ``qrouter-<id>`` network namespaces."""

from netagent.drivers.l3namespace.driver import NamespaceL3Driver

__all__ = ["NamespaceL3Driver"]
