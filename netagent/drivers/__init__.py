"""netagent.drivers."""
