"""``POST /moderations``: the request's texts, and the checkers' hits written as both references answer them."""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..errors import InvalidFieldError
from ..protocol.moderations import (
    ModerationPart,
    ModerationRequest,
    ModerationResponse,
    ModerationResult,
    ModerationUsage,
    RiskResult,
)
from .checkers import Hit

# OpenAI's categories (every one is in each result) and which of OpenGLM's categories each reports.
OPENAI_CATEGORIES: dict[str, tuple[str, ...]] = {
    "harassment": (),
    "harassment/threatening": (),
    "hate": ("hate",),
    "hate/threatening": ("hate",),
    "illicit": ("drugs", "malware", "fraud", "weapons"),
    "illicit/violent": ("weapons",),
    "self-harm": ("self_harm",),
    "self-harm/instructions": ("self_harm",),
    "self-harm/intent": ("self_harm",),
    "sexual": ("sexual", "sexual_minors"),
    "sexual/minors": ("sexual_minors",),
    "violence": ("violence", "weapons"),
    "violence/graphic": (),
}


def moderation_texts(body: ModerationRequest) -> list[str]:
    items = body.input if isinstance(body.input, list) else [body.input]
    texts = []
    for item in items:
        if isinstance(item, ModerationPart):
            if item.type != "text" or item.text is None:
                raise InvalidFieldError(
                    f"input: only text can be moderated here, not {item.type!r} (no image checker is configured)"
                )
            texts.append(item.text)
        else:
            texts.append(item)
    return texts


def moderation_response(moderation_id: str, model: str, results: Sequence[Sequence[Hit]]) -> ModerationResponse:
    return ModerationResponse(
        id=moderation_id,
        model=model,
        created=int(time.time()),
        request_id=moderation_id,
        results=[openai_result(hits) for hits in results],
        result_list=[
            RiskResult(risk_level="REJECT" if hits else "PASS", risk_type=sorted({h.category for h in hits}))
            for hits in results
        ],
        usage=ModerationUsage(moderation_text={"call_count": len(results)}),
    )


def openai_result(hits: Sequence[Hit]) -> ModerationResult:
    ours = {h.category for h in hits}
    flags = {name: bool(ours.intersection(mapped)) for name, mapped in OPENAI_CATEGORIES.items()}
    return ModerationResult(
        flagged=bool(hits),
        categories=flags,
        category_scores={name: 1.0 if flag else 0.0 for name, flag in flags.items()},
        category_applied_input_types={name: ["text"] if flag else [] for name, flag in flags.items()},
        openglm_categories=sorted(ours),
        checkers=sorted({h.checker for h in hits}),
    )
