"""Tempest plugin for netagent (entry point ``netagent`` in ``tempest.test_plugins``)."""
