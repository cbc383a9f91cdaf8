"""netagent.ml2."""
