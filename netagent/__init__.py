"""netagent: a network agent for OpenStack compute and network nodes."""
