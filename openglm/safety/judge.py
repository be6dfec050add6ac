"""The ``llm_judge`` checker: a catalog chat model asked, with a fixed rubric, whether a text breaks the policy.

Options: ``model`` (a catalog chat model; required) and ``max_chars`` (how much of a long text the judge reads:
its start and its end, default 6,000 characters). The model's call is billed to whoever's text it judged, like
any other call (the run service supplies ``ask``). It reads whole texts only: on a stream it reads each answer
as it finishes, and each agent round before its tools run (``guard.py``, ``runs/moderation.py``); word lists read
streams as they grow."""

from __future__ import annotations

import re
from typing import Any

from .checkers import CATEGORIES, CHECKER_KINDS, Ask, BuildContext, Hit

RUBRIC = (
    "You are a content safety classifier. Read the text between <text> and </text>. It breaks the policy if it "
    "asks for, gives or praises: violence against people (violence); making weapons or explosives (weapons); "
    "sexual content involving minors (sexual_minors); explicit sexual content (sexual); hatred or attacks on a "
    "group (hate); suicide or self-harm methods (self_harm); making or buying illegal drugs (drugs); malicious "
    "software (malware); scams, theft or fraud (fraud). Everyday topics, news, history, fiction without "
    "instructions, medicine and safety advice are safe. Answer with one word: safe, or the category's name."
)
_WORD = re.compile(r"[a-z_]+")


class LlmJudge:
    incremental = False
    before = 0

    def holdback(self, text: str) -> int:
        return 0  # whole texts only: never asked about a stream still growing

    def __init__(self, name: str, model: str, ask: Ask, max_chars: int = 6000):
        self.name = name
        self.model = model
        self.ask = ask
        self.max_chars = max_chars

    async def check(self, text: str, *, partial: bool = False) -> list[Hit]:
        if partial or not text.strip():
            return []
        if len(text) > self.max_chars:
            half = self.max_chars // 2
            text = text[:half] + "\n…\n" + text[-half:]
        reply = await self.ask(self.model, RUBRIC, f"<text>\n{text}\n</text>")
        category = verdict(reply)
        return [] if category is None else [Hit(self.name, category)]


def verdict(reply: str) -> str | None:
    """The category a reply names first, or None for "safe" (or a reply that names nothing the rubric knows:
    a judge that cannot answer the question does not block)."""
    words: list[str] = _WORD.findall(reply.casefold())
    for word in words:
        if word == "safe":
            return None
        if word in CATEGORIES:
            return word
    return None


@CHECKER_KINDS.register("llm_judge")
def llm_judge(name: str, options: dict[str, Any], context: BuildContext) -> LlmJudge:
    model = options.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError(f"moderation checker {name!r} (llm_judge) needs options.model, a catalog chat model")
    if context.ask is None:
        raise ValueError(f"moderation checker {name!r} (llm_judge) needs the run service to call its model")
    return LlmJudge(name, model, context.ask, int(options.get("max_chars", 6000)))
