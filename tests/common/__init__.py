"""Helpers shared by the fullstack and interop tiers."""
