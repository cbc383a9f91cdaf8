"""The layer rules of doc/design (one direction: cmd -> sources/rpc, agent -> drivers ->
linux -> privileged), checked on the import statements of every module."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "netagent"

#: package -> imports it must never make (prefix match on the dotted module name)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "netagent.common": (
        "netagent.model",
        "netagent.agent",
        "netagent.drivers",
        "netagent.linux",
        "netagent.privileged",
        "netagent.rpc",
        "netagent.sources",
        "netagent.conf",
        "oslo",
        "pyroute2",
        "stevedore",
        "yaml",
    ),
    "netagent.model": (
        "netagent.agent",
        "netagent.drivers",
        "netagent.linux",
        "netagent.privileged",
        "netagent.rpc",
        "netagent.sources",
        "oslo",
        "pyroute2",
        "yaml",
    ),
    "netagent.privileged": (
        "netagent.linux",
        "netagent.drivers",
        "netagent.agent",
        "netagent.rpc",
        "netagent.sources",
        "oslo_messaging",
    ),
    "netagent.linux": (
        "netagent.drivers",
        "netagent.agent",
        "netagent.rpc",
        "netagent.sources",
        "oslo_messaging",
        "pyroute2",
    ),
    "netagent.ovs": (
        "netagent.drivers",
        "netagent.agent",
        "netagent.rpc",
        "netagent.sources",
        "netagent.linux",
        "oslo_messaging",
        "pyroute2",
    ),
    "netagent.drivers": (
        "netagent.agent",
        "netagent.rpc",
        "netagent.sources",
        "netagent.privileged",
        "oslo_messaging",
        "pyroute2",
    ),
    "netagent.agent": (
        "netagent.rpc",
        "netagent.privileged",
        "oslo_messaging",
        "pyroute2",
        "netagent.drivers.linuxbridge",
        "netagent.drivers.iptables_firewall",
        "netagent.drivers.noop",
        "netagent.drivers.openvswitch",
        "netagent.ovs",
    ),
    # runs inside Neutron's processes: may use the kernel layer, never the agent
    "netagent.neutron_plugins": (
        "netagent.agent",
        "netagent.cmd",
        "netagent.drivers",
        "netagent.privileged",
        "netagent.rpc",
        "netagent.sources",
        "oslo_messaging",
        "pyroute2",
    ),
    "netagent.explain": (
        "netagent.agent",
        "netagent.rpc",
        "netagent.sources",
        "netagent.privileged",
        "netagent.cmd",
        "oslo",
        "pyroute2",
        "netagent.drivers.linuxbridge",
        "netagent.drivers.noop",
    ),
    "netagent.rpc": (
        "netagent.drivers",
        "netagent.linux",
        "netagent.privileged",
        "netagent.agent.core",
        "pyroute2",
    ),
}
#: the one package that runs inside Neutron's processes and may import neutron/neutron_lib
NEUTRON_PLUGINS = "netagent.neutron_plugins"
#: the composition root may name concrete pieces (lazily) to wire them together
COMPOSITION_ROOTS = {"netagent.agent.service"}


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def imports_of(path: Path, module: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = module.split(".")[: -node.level or None]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


ALL = list(modules())


@pytest.mark.parametrize(("module", "path"), ALL, ids=[m for m, _ in ALL])
def test_module_respects_layers(module: str, path: Path) -> None:
    imported = imports_of(path, module)
    assert not any(i == "eventlet" or i.startswith("eventlet.") for i in imported)
    assert not any(i.startswith("tests") for i in imported), "production code imports tests"
    if not module.startswith(NEUTRON_PLUGINS + "."):
        assert not any(i.split(".")[0] in ("neutron", "neutron_lib") for i in imported)
        assert not any(i.startswith(NEUTRON_PLUGINS) for i in imported)
    if module in COMPOSITION_ROOTS:
        return
    for package, forbidden in FORBIDDEN.items():
        if module == package or module.startswith(package + "."):
            bad = sorted(i for i in imported if i.startswith(forbidden))
            assert not bad, f"{module} must not import {bad}"


def test_only_the_neutron_plugins_package_imports_neutron() -> None:
    importers = {
        module
        for module, path in ALL
        if any(i.split(".")[0] in ("neutron", "neutron_lib") for i in imports_of(path, module))
    }
    assert importers == {f"{NEUTRON_PLUGINS}.{m}" for m in ("ml2", "interface", "trunk")}


def test_the_checker_sees_violations(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("from netagent.rpc import clients\nimport pyroute2\n")
    assert {"netagent.rpc", "netagent.rpc.clients", "pyroute2"} <= imports_of(
        sample, "netagent.drivers.x"
    )
