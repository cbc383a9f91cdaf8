"""The host guard kept by the L2 drivers (fake kernel), and the Open vSwitch driver's use
of it with the hybrid plug: no port is wired while the guard cannot be written."""

from __future__ import annotations

from typing import Any

import pytest
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from netagent.common.exceptions import NetagentError
from netagent.conf import agent as agent_conf
from netagent.conf import ovs as ovs_conf
from netagent.drivers import hostguard
from netagent.drivers.base import PortPlan
from netagent.drivers.openvswitch import OpenvswitchDriver, plumbing
from netagent.model import Network, NetworkType, Port

NET = Network("9b8e0000-0000-4000-8000-000000000001", "n", NetworkType.VXLAN, 1001, None)
PORT = Port(
    id="3f1c2a8e-5d0b-4c57-9a57-0d5f8b5d2e11", network_id=NET.id, mac_address="fa:16:3e:12:34:56"
)


class FakeGuardKernel:
    def __init__(self) -> None:
        self.refuse: str | None = None
        self.written: list[list[str]] = []
        self.tampered: list[str] = []

    def ensure_host_guard(self, ports: list[str]) -> None:
        if self.refuse:
            raise NetagentError(self.refuse)
        self.written.append(list(ports))

    def check_host_guard(self) -> list[str]:
        found, self.tampered = self.tampered, []
        return found

    def remove_host_guard(self) -> None:
        self.written.clear()


def test_guard_error_until_written_and_rewritten_when_tampered() -> None:
    kernel = FakeGuardKernel()
    guard = hostguard.HostGuard(["tap+", "qvb+"])
    assert guard.error == hostguard.NOT_WRITTEN
    assert guard.check(kernel) == 0  # nothing to check before it is written
    kernel.refuse = "ebtables: no such table"
    assert not guard.ensure(kernel)
    assert guard.error == "ebtables: no such table"
    kernel.refuse = None
    assert guard.ensure(kernel) and guard.error is None
    assert kernel.written == [["tap+", "qvb+"]]
    kernel.tampered = ["na-INPUT"]
    assert guard.check(kernel) == 1
    assert kernel.written == [["tap+", "qvb+"]] * 2


class _NoOvsdb:
    on_interface: Any = None


def _driver(firewall: str) -> OpenvswitchDriver:
    conf = cfg.ConfigOpts()
    ovs_conf.register_opts(conf)
    agent_conf.register_opts(conf)
    fixture = config_fixture.Config(conf)
    fixture.setUp()
    fixture.config(group="agent", firewall_driver=firewall)
    return OpenvswitchDriver(conf, ovsdb=_NoOvsdb())  # type: ignore[arg-type]


@pytest.mark.parametrize(("firewall", "hybrid"), [("iptables", True), ("noop", False)])
def test_hybrid_plug_follows_the_firewall(firewall: str, hybrid: bool) -> None:
    driver = _driver(firewall)
    assert (driver._guard is not None) is hybrid
    assert driver.describe()["host_guard"] == (hostguard.NOT_WRITTEN if hybrid else None)


def test_ovs_driver_wires_no_port_while_the_guard_cannot_be_written() -> None:
    driver = _driver("iptables")
    kernel = FakeGuardKernel()
    kernel.refuse = "ebtables refused"
    driver._guard_kernel = kernel  # type: ignore[assignment]
    out = driver.plug_ports([PortPlan(PORT, NET)])
    assert out.failed == {PORT.id: "host guard missing: ebtables refused"}
    assert not out.succeeded
    assert plumbing.HYBRID_GUARDED_PORTS == ("tap+", "qvb+")
