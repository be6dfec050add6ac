"""Content safety in the run service: the ``Safety`` checkers applied to a call (its policy from the model, the
key and the request), the judge's model calls (billed to whoever's text is judged, nested in their call), and
``POST /moderations``.

The judge's checker is built once, at startup; which caller its model call is billed to is the task's
``_payer``, set around every check that may reach it."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ..accounts.auth import Principal
from ..agent.loop import AgentEvent, Finished, FunctionCall, Text, ToolCallsEnd, ToolInput
from ..errors import InvalidFieldError
from ..glms.chat_request import message_text
from ..protocol.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage, Completion
from ..protocol.common import SensitiveWordCheck
from ..protocol.moderations import ModerationHitList, ModerationHitOut, ModerationRequest, ModerationResponse
from ..safety.checkers import BuildContext, Checker, Hit, build_checkers, check_all, pick
from ..safety.config import ModelSafety, SafetyConfig
from ..safety.guard import SENSITIVE, TextGuard
from ..safety.hits import HitStore
from ..safety.moderations import moderation_response, moderation_texts
from ..safety.service import Policy, Safety, Subject
from ..serving.responses import collect_chat
from ..serving.service import ChatService
from ..serving.usage import Tally
from .metered import Metering
from .targets import Targets

# (who pays, nested in a call already admitted?)
_payer: ContextVar[tuple[Principal, bool] | None] = ContextVar("openglm_moderation_payer", default=None)
JUDGE_MAX_TOKENS = 8


class ModerationRuns:
    def __init__(self, config: SafetyConfig, hits: HitStore, chat: ChatService, targets: Targets, metering: Metering):
        self.chat = chat
        self.targets = targets
        self.metering = metering
        self.safety = Safety(config, build_checkers(config.checkers, BuildContext(ask=self._ask)), hits)

    def check_catalog(self, models: Iterable[tuple[str, ModelSafety | None]]) -> None:
        """Every model's own checker names exist (at startup: a typo is the operator's, said before serving)."""
        for name, safety in models:
            if safety is None:
                continue
            try:
                self.safety.policy(safety, "on")
            except InvalidFieldError as exc:
                raise ValueError(f"catalog model {name!r}: {exc.message}") from None

    def policy(self, principal: Principal, model: ModelSafety | None, request: SensitiveWordCheck | None) -> Policy:
        return self.safety.policy(model, principal.safety, request)  # type: ignore[arg-type]

    async def check_input(self, principal: Principal, policy: Policy, texts: Iterable[str], subject: Subject) -> None:
        with paying(principal):
            await self.safety.check_input(policy, texts, subject)

    async def guard_completion(
        self, principal: Principal, policy: Policy, completion: ChatCompletion, subject: Subject
    ) -> ChatCompletion:
        with paying(principal):
            return await self.safety.guard_completion(policy, completion, subject)

    async def guard_text(
        self, principal: Principal, policy: Policy, completion: Completion, subject: Subject
    ) -> Completion:
        with paying(principal):
            return await self.safety.guard_text(policy, completion, subject)

    def guard_stream(
        self,
        principal: Principal,
        policy: Policy,
        chunks: AsyncIterator[ChatCompletionChunk],
        subject: Subject,
        tally: Tally,
        include_usage: bool,
    ) -> AsyncIterator[ChatCompletionChunk]:
        """A streamed chat answer guarded as it streams; a judge reads each choice whole as it finishes, billed to
        ``principal``."""
        return self.safety.guard_stream(policy, chunks, subject, tally, include_usage, within=lambda: paying(principal))

    def guard_text_stream(
        self,
        principal: Principal,
        policy: Policy,
        chunks: AsyncIterator[Completion],
        subject: Subject,
        tally: Tally,
    ) -> AsyncIterator[Completion]:
        """A streamed legacy completion, guarded as ``guard_stream`` guards chat."""
        return self.safety.guard_text_stream(policy, chunks, subject, tally, within=lambda: paying(principal))

    def guard_events(
        self, principal: Principal, policy: Policy, events: AsyncIterator[AgentEvent], subject: Subject
    ) -> AsyncIterator[AgentEvent]:
        """An agent's events with its text held by a ``TextGuard`` (flushed whole before any tool step) and every
        tool input and function call checked whole: a hit withholds what is pending and ends the run as
        ``sensitive``. A judge (``whole_output``) reads each round whole — what it wrote, its code, its calls —
        before its tools run and before the run finishes, billed to ``principal``."""
        checkers, whole = policy.streamed_output, policy.whole_output
        if not checkers and not whole:
            return events
        return self._guarded_events(principal, checkers, whole, events, subject)

    async def _guarded_events(
        self,
        principal: Principal,
        checkers: tuple[Checker, ...],
        whole: tuple[Checker, ...],
        events: AsyncIterator[AgentEvent],
        subject: Subject,
    ) -> AsyncIterator[AgentEvent]:
        guard = TextGuard(checkers)
        code: dict[str, str] = {}
        written: list[str] = []  # this round's text, code and call arguments, for the judge
        async for event in events:
            hit: Hit | None = None
            if isinstance(event, Text):
                released, hit = await guard.feed(event.text, final=False)
                if hit is None:
                    if released:
                        written.append(released)
                        yield Text(released)
                    continue
            else:
                released, hit = await guard.feed("", final=True)
                if hit is None and released:
                    written.append(released)
                    yield Text(released)
                if hit is None and isinstance(event, ToolInput):
                    code[event.call_id] = code.get(event.call_id, "") + event.fragment
                    written.append(event.fragment)
                    hit = next(iter(await check_all(checkers, code[event.call_id])), None)
                if hit is None and isinstance(event, FunctionCall):
                    written.append(event.arguments)
                    hit = next(iter(await check_all(checkers, event.arguments)), None)
                if hit is None and whole and isinstance(event, ToolCallsEnd | Finished) and "".join(written):
                    with paying(principal):
                        hit = next(iter(await check_all(whole, "".join(written))), None)
                    written.clear()
            if hit is not None:
                await self.safety.record(subject, "output", [hit])
                yield Finished(SENSITIVE, "failed")
                return
            yield event

    async def moderate(self, principal: Principal, body: ModerationRequest) -> ModerationResponse:
        """``POST /moderations``: the request's texts through the checkers its ``model`` names (a configured
        checker, or a judge's catalog model), or the operator's ``[safety] moderations`` checkers. A judge's
        tokens are billed like any call of its model."""
        checkers = self._moderation_checkers(body.model)
        texts = moderation_texts(body)
        name = body.model or "+".join(c.name for c in checkers) or "none"
        subject = Subject(principal.account_id, principal.key_id, name, "moderations", new_moderation_id())
        with paying(principal, nested=False):
            results = await self.safety.moderate(texts, checkers, subject)
        return moderation_response(subject.request_id, name, results)

    async def hits(
        self,
        account_id: str | None,
        *,
        limit: int,
        after: str | None = None,
        category: str | None = None,
        stage: str | None = None,
    ) -> ModerationHitList:
        """Recorded hits, newest first: one account's (its console), or everyone's (``None``: the operator's).
        ``after``: the last hit of the previous page."""
        rows = await self.safety.hits.page(account_id, limit=limit + 1, after=after, category=category, stage=stage)
        data = [
            ModerationHitOut(
                id=row.id,
                account_id=row.account_id,
                key_id=row.key_id,
                model=row.model,
                endpoint=row.endpoint,
                request_id=row.request_id,
                stage=row.stage,  # type: ignore[arg-type]
                checker=row.checker,
                category=row.category,
                matched=row.matched,
                created_at=int(row.created_at.timestamp()),
            )
            for row in rows[:limit]
        ]
        return ModerationHitList(data=data, has_more=len(rows) > limit)

    def _moderation_checkers(self, model: str | None) -> tuple[Checker, ...]:
        if model is None or model in ("default", "omni-moderation-latest", "text-moderation-latest", "moderation"):
            return self.safety.moderation_checkers
        if model in self.safety.checkers:
            return pick(self.safety.checkers, [model], "model")
        judges = [c for c in self.safety.checkers.values() if getattr(c, "model", None) == model]
        if judges:
            return (judges[0],)
        known = ", ".join(sorted(self.safety.checkers)) or "none"
        raise InvalidFieldError(f"model: {model!r} is no moderation checker or judge model here; checkers: {known}")

    async def _ask(self, model: str, system: str, text: str) -> str:
        """The judge's question to ``model``, billed to the payer of the check (``moderations``)."""
        payer = _payer.get()
        if payer is None:
            raise RuntimeError("a judge was asked outside a call: nobody to bill")
        principal, nested = payer
        served, adapter = await self.targets.chat_model(principal.account_id, model)
        request = ChatCompletionRequest(
            model=model,
            messages=[ChatMessage(role="system", content=system), ChatMessage(role="user", content=text)],
            max_tokens=JUDGE_MAX_TOKENS,
            temperature=0.0,
        )
        planned = await self.chat.plan(request, adapter)
        call = await self.metering.admit(
            principal, served.spec, "moderations", planned.usage_bound(), usage_id=planned.id, nested=nested
        )

        async def answer() -> str:
            run = await call.guard(self.chat.submit(planned))
            call.tally.prompt_tokens = run.prompt_tokens
            completion = await collect_chat(self.chat, run, call.tally)
            return completion.choices[0].message.content or ""

        return await self.metering.result(call, answer())


@contextmanager
def paying(principal: Principal, *, nested: bool = True) -> Iterator[None]:
    token = _payer.set((principal, nested))
    try:
        yield
    finally:
        _payer.reset(token)


def request_texts(body: ChatCompletionRequest) -> list[str]:
    """The texts of a chat request that content safety reads: every message's text (the caller writes the
    history too) and every tool call's arguments."""
    texts = [message_text(m.content) for m in body.messages]
    texts += [
        c.function.arguments if isinstance(c.function.arguments, str) else json.dumps(c.function.arguments)
        for m in body.messages
        for c in m.tool_calls or []
    ]
    return [t for t in texts if t]


def new_moderation_id() -> str:
    return f"modr-{secrets.token_hex(12)}"
