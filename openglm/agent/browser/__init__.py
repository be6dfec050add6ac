"""The web browser tool: search providers, safe page fetching, text extraction, per-conversation sessions."""
