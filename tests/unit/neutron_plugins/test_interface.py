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
from oslo_config import cfg

from netagent.neutron_plugins import plugging, veth

PORT = "3f1c2a9e-7b44-4c1d-9e0a-55aa66bb77cc"
NS = "qdhcp-8a6e6b0c-1111-4222-8333-944455556666"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    recorded: list[tuple[str, Any]] = []
    monkeypatch.setattr(veth, "plug", lambda plan: recorded.append(("plug", plan)))
    monkeypatch.setattr(veth, "unplug", lambda *args: recorded.append(("unplug", args)))
    monkeypatch.setattr(veth, "set_mtu", lambda *args: recorded.append(("set_mtu", args)))
    monkeypatch.setattr(
        veth,
        "plug_ovs",
        lambda plan, port, target: recorded.append(("plug_ovs", plan, port, target)),
    )
    monkeypatch.setattr(veth, "unplug_ovs", lambda *args: recorded.append(("unplug_ovs", args)))
    return recorded


def _make(conf: cfg.ConfigOpts) -> Any:
    interface = pytest.importorskip("neutron.agent.linux.interface")
    module = importlib.import_module("netagent.neutron_plugins.interface")
    drv = module.NetagentInterfaceDriver(conf)
    assert isinstance(drv, interface.LinuxInterfaceDriver)
    return drv


@pytest.fixture
def in_process() -> Iterator[None]:
    pytest.importorskip("neutron.agent.linux.interface")
    privsep = importlib.import_module("netagent.neutron_plugins.privsep")
    privsep.context.set_client_mode(False)
    yield
    privsep.context.set_client_mode(True)


@pytest.fixture
def driver(in_process: None) -> Any:
    return _make(cfg.ConfigOpts())


@pytest.fixture
def ovs_driver(in_process: None) -> Any:
    conf = cfg.ConfigOpts()
    _make(conf)  # registers [netagent]
    conf.set_override("l2_driver", "openvswitch", group="netagent")
    conf.set_override("ovsdb_connection", "unix:/x/db.sock", group="netagent")
    return _make(conf)


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


def test_linuxbridge_is_the_default_and_names_no_bridge(driver: Any) -> None:
    assert driver.ovs is None


def test_l2_driver_option_rejects_other_values() -> None:
    conf = cfg.ConfigOpts()
    _make(conf)
    with pytest.raises(ValueError):
        conf.set_override("l2_driver", "macvtap", group="netagent")


def test_openvswitch_plugs_into_the_integration_bridge(
    ovs_driver: Any, calls: list[tuple[str, Any]]
) -> None:
    target = plugging.OvsTarget("br-int", "unix:/x/db.sock", 10)
    ovs_driver.plug_new("net", PORT, "ns-3f1c2a9e-7b", "fa:16:3e:00:11:22", namespace=NS, mtu=1450)
    ovs_driver.unplug("ns-3f1c2a9e-7b", namespace=NS)
    assert calls == [
        (
            "plug_ovs",
            plugging.VethPlan("tap3f1c2a9e-7b", "ns-3f1c2a9e-7b", NS, "fa:16:3e:00:11:22", 1450),
            PORT,
            target,
        ),
        ("unplug_ovs", ("tap3f1c2a9e-7b", "ns-3f1c2a9e-7b", NS, target)),
    ]
