"""netagent.cmd."""
