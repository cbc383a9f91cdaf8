"""Load drivers by short name through stevedore and check their type."""

from __future__ import annotations

from importlib import metadata
from typing import Any, TypeVar

from stevedore import driver as stevedore_driver

from netagent.common.exceptions import NetagentError
from netagent.drivers import base

DriverT = TypeVar("DriverT", bound=base.DriverBase)


class DriverLoadError(NetagentError):
    """A configured driver is unknown, cannot be imported, or has the wrong type."""

    def __init__(self, namespace: str, name: str, reason: str, valid: tuple[str, ...]) -> None:
        self.namespace = namespace
        self.name = name
        self.reason = reason
        self.valid = valid
        super().__init__(namespace, name, reason, valid)

    def __str__(self) -> str:
        return (
            f"cannot load {self.namespace} driver {self.name!r}: {self.reason}; "
            f"valid names: {', '.join(self.valid) or '(none installed)'}"
        )


def available(namespace: str) -> tuple[str, ...]:
    """Names registered in an entry-point group, sorted."""
    return tuple(sorted({ep.name for ep in metadata.entry_points(group=namespace)}))


def load(kind: type[DriverT], name: str, conf: Any) -> DriverT:
    """Instantiate the driver ``name`` of ``kind`` (e.g. :class:`base.L2Driver`).

    Nothing on the host is touched: driver constructors have no side effects.

    :raises DriverLoadError: unknown name, import failure or wrong base class.
    """
    namespace = kind.namespace
    valid = available(namespace)
    if name not in valid:
        raise DriverLoadError(namespace, name, "no such driver", valid)
    try:
        manager: stevedore_driver.DriverManager[object] = stevedore_driver.DriverManager(
            namespace=namespace,
            name=name,
            invoke_on_load=True,
            invoke_args=(conf,),
        )
    except Exception as exc:  # import errors, constructor errors: report them all alike
        raise DriverLoadError(namespace, name, f"{type(exc).__name__}: {exc}", valid) from exc
    driver = manager.driver
    if not isinstance(driver, kind):
        raise DriverLoadError(
            namespace, name, f"{type(driver).__name__} is not a {kind.__name__}", valid
        )
    return driver
