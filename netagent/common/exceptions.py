"""Base exception of every error netagent raises on purpose."""

from __future__ import annotations


class NetagentError(Exception):
    """Base class. Subclasses must be rebuildable from their constructor arguments."""


class PreflightError(NetagentError):
    """A preflight check failed: a kernel feature, tool or resource is missing.

    The message says what is missing and, where it can, what to do.
    """
