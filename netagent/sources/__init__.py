"""netagent.sources."""
