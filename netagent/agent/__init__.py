"""netagent.agent."""
