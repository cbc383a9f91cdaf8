"""The trunk driver inside Neutron's real trunk plugin (skipped without Neutron)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest


@pytest.fixture
def trunk_plugin(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Neutron's trunk plugin module, with a callback registry of this test's own."""
    plugin = pytest.importorskip("neutron.services.trunk.plugin")
    registry = importlib.import_module("neutron_lib.callbacks.registry")
    manager = importlib.import_module("neutron_lib.callbacks.manager")
    monkeypatch.setattr(registry, "_CALLBACK_MANAGER", manager.CallbacksManager())
    return plugin


def _mech_driver() -> Any:
    return importlib.import_module("netagent.neutron_plugins.ml2").NetagentMechanismDriver()


def test_trunk_plugin_refuses_to_start_without_the_driver(trunk_plugin: Any) -> None:
    exceptions = importlib.import_module("neutron.services.trunk.exceptions")
    with pytest.raises(exceptions.IncompatibleTrunkPluginConfiguration):
        trunk_plugin.TrunkPlugin()


def test_trunk_plugin_starts_with_the_driver_the_mechanism_driver_creates(
    trunk_plugin: Any,
) -> None:
    _mech_driver().initialize()
    plugin = trunk_plugin.TrunkPlugin()
    (driver,) = [d for d in plugin.registered_drivers if d.name == "netagent"]
    assert driver.is_loaded
    assert driver.agent_type == "Netagent agent"
    assert set(driver.interfaces) == {"tap", "ovs"}
    assert driver.can_trunk_bound_port  # so that the driver's own refusal is what answers
    assert plugin.start_rpc_listeners() == []  # netagent's agents consume no trunk RPC
    assert "vlan" in plugin._segmentation_types
