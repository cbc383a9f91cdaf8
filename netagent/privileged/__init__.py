"""netagent.privileged."""
