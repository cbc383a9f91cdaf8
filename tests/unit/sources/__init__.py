"""Unit tests of the desired-state sources."""
