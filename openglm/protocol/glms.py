"""Wire models of the GLMs API (OpenGLM's own: ``/glms``). No logic here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .common import WireModel

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


# What a GLM is configured with: the part that is versioned. One definition for the API, the builder's structured
# output and the store; what a conversation pinned to an older version runs is ``glms/config.py: pinned_against``.
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


class AgentCreate(WireModel):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=1000)
    avatar: str = Field(default="", max_length=500)
    visibility: Visibility = "private"
    config: AgentConfig


class AgentEdit(WireModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    avatar: str | None = Field(default=None, max_length=500)
    visibility: Visibility | None = None
    config: AgentConfig | None = None


class AgentOut(BaseModel):
    id: str
    object: Literal["glm"] = "glm"
    name: str
    description: str
    avatar: str
    visibility: str
    version: int
    uses: int
    recommended: int
    mine: bool
    config: AgentConfig | None = None  # the owner's view only: instructions and API auth are the creator's
    starter_prompts: list[str]
    tools: list[str]
    created_at: int
    updated_at: int


class AgentPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[AgentOut]
    total: int


class AgentVersionOut(BaseModel):
    version: int
    config: AgentConfig
    created_at: int


class AgentVersions(BaseModel):
    object: Literal["list"] = "list"
    data: list[AgentVersionOut]


class Recommendation(WireModel):
    """An operator's ranking of an agent in the center: 1 comes first; 0 takes the recommendation away."""

    rank: int = Field(ge=0, le=1_000_000)


class BuilderMessage(WireModel):
    role: str  # "user" or "assistant", checked by the builder so that the error names the message
    content: str = Field(max_length=8000)


class BuilderDraft(WireModel):
    """An agent being built; the same fields ``POST /glms`` takes, so a draft is saved as it is."""

    name: str = Field(default="", max_length=100)
    description: str = Field(default="", max_length=1000)
    avatar: str = Field(default="", max_length=500)
    visibility: Visibility = "private"
    config: AgentConfig


class BuilderRequest(WireModel):
    messages: list[BuilderMessage] = Field(max_length=100)
    draft: BuilderDraft | None = None
    model: str | None = Field(default=None, min_length=1, max_length=200)


class BuilderReply(BaseModel):
    reply: str
    draft: BuilderDraft


class AgentUsageDay(BaseModel):
    day: str
    calls: int
    tokens: int
    cost: str  # CNY, as /account/usage
    earnings: str


class AgentUsage(BaseModel):
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: str
    earnings: str
    by_day: list[AgentUsageDay]
