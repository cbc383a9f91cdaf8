"""Base exception of every error netagent raises on purpose."""

from __future__ import annotations


class NetagentError(Exception):
    """Base class. Subclasses must be rebuildable from their constructor arguments."""
