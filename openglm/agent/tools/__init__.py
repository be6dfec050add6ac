"""Tools the agent can call, one registry (``base.agent_tools``)."""
