"""netagent.linux."""
