"""Unit tests of the typed model."""
