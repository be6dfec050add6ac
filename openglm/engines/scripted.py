"""``scripted``: a deterministic engine that answers from a script instead of weights.

For demos and for testing what sits above the engines (the agent loop, tool-call parsing, metering) with
conversations a small model could not hold. Each rule is ``{when = "text", reply = "text"}``: the first rule
whose ``when`` occurs in the rendered prompt gives the reply (``when = ""`` matches everything), streamed in
pieces of a few characters as if they were tokens, one every ``pace`` seconds (default 0: as fast as the event
loop goes; a pace makes calls overlap the way real generations do). Grammars are not applied. ``fail_after = N``
makes every generation fail (an engine error) after its first N tokens, as a crashed or disconnected engine does.
``adapter_script`` (rules of the same shape) makes the engine serve LoRA adapters: a generation that carries one
answers from those rules instead, so what sits above can tell the adapter's replies from the base's. A rule's
``probability`` (default 1) is what logprobs, when asked, say the model gave each of its pieces.

    [[models]]
    id = "scripted"
    engine = "scripted"
    source = "-"
    [[models.options.script]]
    when = "<tool_response>"
    reply = "The answer is 2."
    [[models.options.script]]
    when = ""
    reply = "<tool_call>{...}</tool_call>"
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ..catalog import ModelSpec
from ..config import Settings
from ..errors import EngineError, PromptTooLongError
from .base import Engine, GenerationChunk, GenerationHandle, GenerationRequest, TokenLogprob, engines

CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Rule:
    when: str
    reply: str
    probability: float = 1.0


class ScriptedHandle(GenerationHandle):
    def __init__(
        self,
        reply: str,
        prompt_tokens: int,
        max_tokens: int | None,
        pace: float = 0.0,
        fail_after: int | None = None,
        logprob: float | None = None,
    ):
        self.prompt_tokens = prompt_tokens
        self._logprob = logprob  # each piece's, when the request asked for logprobs
        self._reply = reply
        self._max_tokens = max_tokens
        self._pace = pace
        self._fail_after = fail_after
        self._cancelled = False

    def __aiter__(self) -> AsyncIterator[GenerationChunk]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[GenerationChunk]:
        pieces = [self._reply[i : i + CHARS_PER_TOKEN] for i in range(0, len(self._reply), CHARS_PER_TOKEN)]
        limit = len(pieces) if self._max_tokens is None else min(len(pieces), self._max_tokens)
        for n, piece in enumerate(pieces[:limit], start=1):
            if self._cancelled:
                return
            if self._fail_after is not None and n > self._fail_after:
                raise EngineError(f"scripted failure after {self._fail_after} tokens")
            await asyncio.sleep(self._pace)  # yield to the loop between "tokens", as a real engine does
            last = n == limit
            finish = ("stop" if limit == len(pieces) else "length") if last else None
            logprobs = [] if self._logprob is None else [TokenLogprob(piece, self._logprob, list(piece.encode()), [])]
            yield GenerationChunk(text=piece, logprobs=logprobs, finish_reason=finish)
        if limit == 0:
            yield GenerationChunk(text="", n_tokens=0, finish_reason="stop")

    def cancel(self) -> None:
        self._cancelled = True


@engines.register("scripted")
class ScriptedEngine(Engine):
    def __init__(self, spec: ModelSpec, settings: Settings):
        self.spec = spec
        self.rules = _rules(spec, "script")
        self.adapter_rules = _rules(spec, "adapter_script") if "adapter_script" in spec.options else None
        self.serves_adapters = self.adapter_rules is not None
        self.pace = float(spec.options.get("pace", 0.0))
        fail_after = spec.options.get("fail_after")
        self.fail_after = None if fail_after is None else int(fail_after)

    async def count_tokens(self, prompt: str) -> int:
        return max(1, len(prompt) // CHARS_PER_TOKEN)

    async def submit(self, request: GenerationRequest) -> GenerationHandle:
        self.refuse_adapter(request)
        prompt_tokens = max(1, len(request.prompt) // CHARS_PER_TOKEN)
        if prompt_tokens > self.spec.context_length:
            raise PromptTooLongError(f"prompt of {prompt_tokens} tokens exceeds {self.spec.context_length}")
        rules = self.rules if request.adapter is None or self.adapter_rules is None else self.adapter_rules
        rule = next((rule for rule in rules if rule.when in request.prompt), Rule("", ""))
        logprob = math.log(rule.probability) if request.sampling.logprobs else None
        return ScriptedHandle(rule.reply, prompt_tokens, request.max_tokens, self.pace, self.fail_after, logprob)


def _rules(spec: ModelSpec, option: str) -> list[Rule]:
    script: Any = spec.options.get(option, [])
    if not isinstance(script, list) or not all(isinstance(r, dict) and "reply" in r for r in script):
        raise EngineError(f"model {spec.id}: options.{option} must be a list of {{when, reply}} tables")
    rules = [Rule(str(r.get("when", "")), str(r["reply"]), r.get("probability", 1.0)) for r in script]
    for rule in rules:
        number = isinstance(rule.probability, int | float) and not isinstance(rule.probability, bool)
        if not (number and 0 < rule.probability <= 1):
            raise EngineError(f"model {spec.id}: options.{option}: a rule's probability is a number in (0, 1]")
    return rules
