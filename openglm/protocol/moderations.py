"""Wire models of ``POST /moderations`` (both prefixes). One answer carries both references' fields: OpenAI's
``results`` (``flagged``, ``categories``, ``category_scores``) and Zhipu's ``result_list`` (``risk_level`` PASS |
REJECT, ``risk_type``), so either SDK reads it. No logic here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from .common import WireModel

MAX_MODERATION_INPUTS = 64
MAX_MODERATION_CHARS = 200_000  # per text


class ModerationPart(WireModel):
    """A multi-modal input item; only text can be checked here."""

    type: str
    text: Annotated[str, Field(max_length=MAX_MODERATION_CHARS)] | None = None
    image_url: dict[str, Any] | str | None = None


ModerationText = Annotated[str, Field(max_length=MAX_MODERATION_CHARS)]


class ModerationRequest(WireModel):
    model: str | None = Field(default=None, max_length=200)
    input: (
        ModerationText
        | Annotated[list[ModerationText], Field(min_length=1, max_length=MAX_MODERATION_INPUTS)]
        | Annotated[list[ModerationPart], Field(min_length=1, max_length=MAX_MODERATION_INPUTS)]
        | ModerationPart
    )


class ModerationResult(BaseModel):
    """OpenAI's: every category it knows, true or false, and a score (1.0 or 0.0: word lists and a judge's
    verdict have no graded score)."""

    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[str]]
    # OpenGLM's own categories that hit (its lists' and judge's names) and the checkers that said so.
    openglm_categories: list[str] = Field(default_factory=list)
    checkers: list[str] = Field(default_factory=list)


class RiskResult(BaseModel):
    """Zhipu's."""

    content_type: Literal["text"] = "text"
    risk_level: Literal["PASS", "REVIEW", "REJECT"]
    risk_type: list[str]


class ModerationUsage(BaseModel):
    moderation_text: dict[str, int]


class ModerationResponse(BaseModel):
    id: str
    object: Literal["moderation"] = "moderation"
    model: str
    created: int
    request_id: str
    results: list[ModerationResult]
    result_list: list[RiskResult]
    usage: ModerationUsage


class ModerationHitOut(BaseModel):
    """A recorded content-safety hit (the console's list)."""

    id: str
    object: Literal["moderation.hit"] = "moderation.hit"
    account_id: str
    key_id: str | None = None
    model: str
    endpoint: str
    request_id: str
    stage: Literal["input", "output", "moderations"]
    checker: str
    category: str
    matched: str
    created_at: int


class ModerationHitList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModerationHitOut]
    has_more: bool
