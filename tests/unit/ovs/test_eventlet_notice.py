"""python-ovs imports eventlet (when installed) to look for monkey-patching; the
deprecation notice that import prints must not reach netagent's output."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("eventlet") is None, reason="eventlet is not installed"
)


def _stderr(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stderr


def test_importing_python_ovs_through_netagent_prints_no_eventlet_notice() -> None:
    assert "Eventlet is deprecated" in _stderr("import ovs.poller")  # the notice exists
    assert "Eventlet is deprecated" not in _stderr("import netagent.ovs.ovsdb, ovs.poller")
