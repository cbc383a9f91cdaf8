"""``tools/vmctl.py`` (a script, not a package) loaded as the module :data:`vmctl`, so
that tests create their "VMs" exactly as the tool does."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

TOOL = Path(__file__).resolve().parents[2] / "tools" / "vmctl.py"


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("vmctl", TOOL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


vmctl = _load()
