"""GLM-4 All Tools: the agent loop and its tools, a layer above the chat service."""
