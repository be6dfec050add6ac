"""What a GLM is configured with: the part that is versioned. A pydantic model, so the API, the builder's
structured output and the store share one definition."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

BuiltinTool = Literal["code_interpreter", "web_browser", "drawing_tool", "retrieval"]
Visibility = Literal["private", "link", "listed"]


class AgentHttpApi(BaseModel):
    """An HTTP API the agent calls itself: an OpenAPI document given inline (never a path: a user must not make
    the server read its own files), the base URL and how to authenticate."""

    model_config = ConfigDict(extra="forbid")

    openapi: str = Field(min_length=2, max_length=200_000)
    base_url: str | None = Field(default=None, max_length=2000)
    auth: dict[str, str] = Field(default_factory=dict)

    @field_validator("openapi")
    @classmethod
    def inline_only(cls, value: str) -> str:
        if not value.lstrip().startswith(("{", "openapi", "swagger")):
            raise ValueError("give the OpenAPI document itself (JSON or YAML), not a path or URL")
        return value


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instructions: str = Field(default="", max_length=8000)
    model: str = Field(min_length=1, max_length=200)
    tools: list[BuiltinTool] = Field(default_factory=list, max_length=4)
    knowledge_ids: list[str] = Field(default_factory=list, max_length=8)
    http_apis: list[AgentHttpApi] = Field(default_factory=list, max_length=4)
    starter_prompts: list[str] = Field(default_factory=list, max_length=6)

    @field_validator("starter_prompts")
    @classmethod
    def short_prompts(cls, value: list[str]) -> list[str]:
        if any(not p.strip() or len(p) > 300 for p in value):
            raise ValueError("starter prompts are 1 to 300 characters each")
        return value

    @field_validator("tools", "knowledge_ids")
    @classmethod
    def distinct(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    def pinned_against(self, current: AgentConfig) -> AgentConfig:
        """This (an older version's) configuration as a conversation pinned to it runs now: its instructions,
        model, tools and prompts, but only the knowledge bases and HTTP APIs the current version still has (an API
        matched by its document and base URL, with the current version's auth), so that what a creator removes
        from an agent stops being reachable through old conversations."""
        knowledge = set(current.knowledge_ids)
        apis = {(api.openapi, api.base_url): api for api in current.http_apis}
        kept = [apis[(api.openapi, api.base_url)] for api in self.http_apis if (api.openapi, api.base_url) in apis]
        knowledge_ids = [k for k in self.knowledge_ids if k in knowledge]
        tools = [t for t in self.tools if t != "retrieval" or knowledge_ids]  # retrieval needs a knowledge base
        return self.model_copy(update={"knowledge_ids": knowledge_ids, "http_apis": kept, "tools": tools})
