"""What a conversation pinned to an older GLM version runs. The configuration itself, the part of a GLM that
is versioned, is a wire model: ``protocol/glms.py: AgentConfig``."""

from __future__ import annotations

from ..protocol.glms import AgentConfig


def pinned_against(old: AgentConfig, current: AgentConfig) -> AgentConfig:
    """An older version's configuration as a conversation pinned to it runs now: its instructions, model, tools
    and prompts, but only the knowledge bases and HTTP APIs the current version still has (an API matched by its
    document and base URL, with the current version's auth), so that what a creator removes from an agent stops
    being reachable through old conversations."""
    knowledge = set(current.knowledge_ids)
    apis = {(api.openapi, api.base_url): api for api in current.http_apis}
    kept = [apis[(api.openapi, api.base_url)] for api in old.http_apis if (api.openapi, api.base_url) in apis]
    knowledge_ids = [k for k in old.knowledge_ids if k in knowledge]
    tools = [t for t in old.tools if t != "retrieval" or knowledge_ids]  # retrieval needs a knowledge base
    return old.model_copy(update={"knowledge_ids": knowledge_ids, "http_apis": kept, "tools": tools})
