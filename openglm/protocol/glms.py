"""Wire models of the GLMs API (OpenGLM's own: ``/glms``). No logic here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ..glms.config import AgentConfig, Visibility
from .common import WireModel


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
