"""netagent.model."""
