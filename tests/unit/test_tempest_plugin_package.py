"""tempest_plugin/: a distribution of its own, found by tempest through its entry point,
kept apart from the agent in both directions, using only tempest's stable interfaces."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIST = REPO / "tempest_plugin"
PLUGIN_PACKAGE = PLUGIN_DIST / "netagent_tempest_plugin"

#: tempest modules a plugin may use (tempest's documented stable interfaces, plus the
#: TempestPlugin base class the entry point must subclass)
STABLE_TEMPEST = (
    "tempest.lib",
    "tempest.config",
    "tempest.test",
    "tempest.clients",
    "tempest.scenario.manager",
    "tempest.test_discover.plugins",
)


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # what is imported: a module or a name, named under its module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_entry_point_names_the_plugin_class() -> None:
    meta = tomllib.loads((PLUGIN_DIST / "pyproject.toml").read_text())
    entry = meta["project"]["entry-points"]["tempest.test_plugins"]["netagent"]
    module, _, cls = entry.partition(":")
    assert module == "netagent_tempest_plugin.plugin"
    tree = ast.parse((PLUGIN_PACKAGE / "plugin.py").read_text())
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    assert cls in classes
    methods = {n.name for n in classes[cls].body if isinstance(n, ast.FunctionDef)}
    assert {"load_tests", "register_opts", "get_opt_lists"} <= methods


def test_agent_distribution_does_not_ship_or_import_the_plugin() -> None:
    setup_cfg = (REPO / "setup.cfg").read_text()
    assert "tempest" not in setup_cfg
    for path in (REPO / "netagent").rglob("*.py"):
        for name in _imports(path):
            assert not _under(name, "netagent_tempest_plugin"), path
            assert not _under(name, "tempest"), path


def test_plugin_uses_only_stable_tempest_interfaces_and_no_netagent() -> None:
    modules = sorted(PLUGIN_PACKAGE.rglob("*.py"))
    assert len(modules) >= 8
    for path in modules:
        for name in _imports(path):
            assert not _under(name, "netagent"), f"{path}: {name}"
            if _under(name, "tempest"):
                assert any(_under(name, s) for s in STABLE_TEMPEST), f"{path}: {name}"
