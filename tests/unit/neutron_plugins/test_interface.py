"""The interface driver class against Neutron's base class (skipped without Neutron).

The privsep context runs its entry points in-process here and the veth module is replaced
by a recorder: what reaches the kernel is covered by
tests/functional/linux/test_interface_veth.py, the daemon by the interop tier.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Iterator
from typing import Any

import pytest

from netagent.neutron_plugins import plugging, veth

PORT = "3f1c2a9e-7b44-4c1d-9e0a-55aa66bb77cc"
NS = "qdhcp-8a6e6b0c-1111-4222-8333-944455556666"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    recorded: list[tuple[str, Any]] = []
    monkeypatch.setattr(veth, "plug", lambda plan: recorded.append(("plug", plan)))
    monkeypatch.setattr(veth, "unplug", lambda *args: recorded.append(("unplug", args)))
    monkeypatch.setattr(veth, "set_mtu", lambda *args: recorded.append(("set_mtu", args)))
    return recorded


@pytest.fixture
def driver() -> Iterator[Any]:
    interface = pytest.importorskip("neutron.agent.linux.interface")
    privsep = importlib.import_module("netagent.neutron_plugins.privsep")
    privsep.context.set_client_mode(False)
    module = importlib.import_module("netagent.neutron_plugins.interface")
    drv = module.NetagentInterfaceDriver(types.SimpleNamespace())
    assert isinstance(drv, interface.LinuxInterfaceDriver)
    yield drv
    privsep.context.set_client_mode(True)


def test_device_name_is_ns_plus_11(driver: Any) -> None:
    assert driver.get_device_name(types.SimpleNamespace(id=PORT)) == "ns-3f1c2a9e-7b"


def test_plug_new_plans_the_pair(driver: Any, calls: list[tuple[str, Any]]) -> None:
    driver.plug_new("net", PORT, "ns-3f1c2a9e-7b", "fa:16:3e:00:11:22", namespace=NS, mtu=1450)
    assert calls == [
        (
            "plug",
            plugging.VethPlan("tap3f1c2a9e-7b", "ns-3f1c2a9e-7b", NS, "fa:16:3e:00:11:22", 1450),
        )
    ]


def test_plug_new_refuses_another_ports_name(driver: Any, calls: list[tuple[str, Any]]) -> None:
    with pytest.raises(ValueError):
        driver.plug_new("net", PORT, "ns-00000000-00", "fa:16:3e:00:11:22", namespace=NS)
    assert calls == []


def test_unplug_and_set_mtu(driver: Any, calls: list[tuple[str, Any]]) -> None:
    driver.unplug("ns-3f1c2a9e-7b", namespace=NS)
    driver.set_mtu("ns-3f1c2a9e-7b", 1400, namespace=NS)
    driver.set_mtu("ns-3f1c2a9e-7b", 0, namespace=NS)  # no MTU known: nothing to do
    driver.unplug("eth0", namespace=NS)  # not ours: logged, nothing touched
    assert calls == [
        ("unplug", ("tap3f1c2a9e-7b", "ns-3f1c2a9e-7b", NS)),
        ("set_mtu", ("tap3f1c2a9e-7b", "ns-3f1c2a9e-7b", NS, 1400)),
    ]
