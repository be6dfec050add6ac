"""``Safety``: which checkers a call passes (its ``Policy``) and the checking itself — input before the engine
(a hit refuses the call with 1301), output while it streams or once collected (a hit ends it as ``sensitive``),
and ``POST /moderations``. Every hit is recorded (``hits.py``).

Which checkers: the catalog's ``[safety]`` lists, replaced per model by the model's ``safety``; a key's ``safety``
setting (an operator's) decides what the request's ``sensitive_word_check`` may change:

    on        the checks run; a request cannot turn them off (the default, as on Zhipu's platform)
    optional  a request's ``sensitive_word_check: {status: "DISABLE"}`` turns them off for that request
    off       no checks for this key (an operator's evaluation or red-team key)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal

from ..errors import SensitiveContentError
from ..protocol.chat import ChatCompletion, ChatCompletionChunk, Completion
from ..protocol.common import SensitiveWordCheck
from ..serving.usage import Tally
from .checkers import Checker, Hit, check_all, pick
from .config import ModelSafety, SafetyConfig
from .guard import OnHit, Within, guard_completion, guard_stream, guard_text, guard_text_stream
from .hits import HitRecord, HitStore

KeySafety = Literal["on", "optional", "off"]
Stage = Literal["input", "output", "moderations"]


@dataclass(frozen=True)
class Policy:
    input: tuple[Checker, ...] = ()
    output: tuple[Checker, ...] = ()

    @property
    def streamed_output(self) -> tuple[Checker, ...]:
        """The output checkers that can read a stream as it grows (an LLM judge cannot)."""
        return tuple(c for c in self.output if c.incremental)

    @property
    def whole_output(self) -> tuple[Checker, ...]:
        """The output checkers that read a streamed answer whole, as it finishes (an LLM judge)."""
        return tuple(c for c in self.output if not c.incremental)


OFF = Policy()


@dataclass(frozen=True)
class Subject:
    """What a hit is recorded against."""

    account_id: str
    key_id: str | None
    model: str
    endpoint: str
    request_id: str


class Safety:
    def __init__(self, config: SafetyConfig, checkers: dict[str, Checker], hits: HitStore):
        self.config = config
        self.checkers = checkers
        self.hits = hits
        self._default = Policy(
            pick(checkers, config.input, "[safety] input"), pick(checkers, config.output, "[safety] output")
        )
        self.moderation_checkers = pick(checkers, config.moderations, "[safety] moderations")

    def policy(self, model: ModelSafety | None, key: KeySafety, request: SensitiveWordCheck | None = None) -> Policy:
        if key == "off" or (key == "optional" and request is not None and request.status == "DISABLE"):
            return OFF
        if model is None:
            return self._default
        return Policy(
            self._default.input if model.input is None else pick(self.checkers, model.input, "model safety.input"),
            self._default.output if model.output is None else pick(self.checkers, model.output, "model safety.output"),
        )

    async def check_input(self, policy: Policy, texts: Iterable[str], subject: Subject) -> None:
        """Refuse the call (1301) when ``texts`` (read as one: one judge call, not one per message) hit; the hit
        is recorded first."""
        if not policy.input:
            return
        hits = await check_all(policy.input, "\n\n".join(texts))
        if hits:
            await self.record(subject, "input", hits[:1])
            raise SensitiveContentError(
                "系统检测到输入或生成内容可能包含不安全或敏感内容，请您避免输入易产生敏感内容的提示语，感谢您的配合。"
                f" / The input was refused by content safety ({hits[0].category}); request {subject.request_id}."
            )

    def guard_stream(
        self,
        policy: Policy,
        chunks: AsyncIterator[ChatCompletionChunk],
        subject: Subject,
        tally: Tally,
        include_usage: bool,
        within: Within = nullcontext,
    ) -> AsyncIterator[ChatCompletionChunk]:
        """``within``: around each whole-answer check (a judge's call: who pays for it)."""
        checkers, whole = policy.streamed_output, policy.whole_output
        if not checkers and not whole:
            return chunks
        return guard_stream(chunks, checkers, self._recorder(subject), tally, include_usage, whole, within)

    async def guard_completion(self, policy: Policy, completion: ChatCompletion, subject: Subject) -> ChatCompletion:
        if not policy.output:
            return completion
        return await guard_completion(completion, policy.output, self._recorder(subject))

    def guard_text_stream(
        self,
        policy: Policy,
        chunks: AsyncIterator[Completion],
        subject: Subject,
        tally: Tally,
        within: Within = nullcontext,
    ) -> AsyncIterator[Completion]:
        checkers, whole = policy.streamed_output, policy.whole_output
        if not checkers and not whole:
            return chunks
        return guard_text_stream(chunks, checkers, self._recorder(subject), tally, whole, within)

    async def guard_text(self, policy: Policy, completion: Completion, subject: Subject) -> Completion:
        if not policy.output:
            return completion
        return await guard_text(completion, policy.output, self._recorder(subject))

    def _recorder(self, subject: Subject) -> OnHit:
        async def on_hit(hit: Hit) -> None:
            await self.record(subject, "output", [hit])

        return on_hit

    async def moderate(self, texts: Sequence[str], checkers: Sequence[Checker], subject: Subject) -> list[list[Hit]]:
        """``POST /moderations``: each text's hits (every checker's, every hit), recorded."""
        results = []
        for text in texts:
            hits = await check_all(checkers, text)
            results.append(hits)
            if hits:
                await self.record(subject, "moderations", hits)
        return results

    async def record(self, subject: Subject, stage: Stage, hits: Sequence[Hit]) -> None:
        await self.hits.add(
            [
                HitRecord(
                    account_id=subject.account_id,
                    key_id=subject.key_id,
                    model=subject.model,
                    endpoint=subject.endpoint,
                    request_id=subject.request_id,
                    stage=stage,
                    checker=hit.checker,
                    category=hit.category,
                    matched=hit.matched,
                )
                for hit in hits
            ]
        )
