"""Chat completions, whatever the name means: a served or fine-tuned model (grounded in knowledge bases when the
request has ``retrieval`` tools), a catalog All Tools agent (perhaps on the model ``agent_model`` names), or a GLM
(its conversation stored, pinned to the version it started with); and legacy text completions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from ..accounts.auth import Principal
from ..agent.browser.images import ImageInputs
from ..agent.stream import AllToolsWriter
from ..errors import InvalidFieldError, ModelNotFoundError
from ..glms.chat_request import glm_request, turn_user_text
from ..glms.conversations import ConversationStore, new_conversation_id
from ..glms.recording import TurnSaver
from ..glms.store import AgentRecord
from ..knowledge.chat import Grounding, question_of, retrieval_tools
from ..knowledge.service import KnowledgeService
from ..protocol.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    RetrievalCitation,
    WebSearchItem,
)
from ..safety.service import Subject
from ..serving.completions import collect_completion, completion_chunks, plan_completion, start_completion
from ..serving.responses import collect_chat, stream_chat
from ..serving.service import ChatPlan, ChatService, has_image_parts
from ..serving.usage import UsageBound, new_usage_id, token_bound
from ..websearch.chat import grounded, items, web_search_tool, without_web_search
from ..websearch.search import WebResult, WebSearch
from .agents import AgentRuns
from .metered import Metering
from .moderation import ModerationRuns, request_texts
from .outcome import Outcome, Streamed
from .targets import GLM_ID, AgentPlan, Targets


class ChatRuns:
    def __init__(
        self,
        chat: ChatService,
        targets: Targets,
        agents: AgentRuns,
        conversations: ConversationStore,
        knowledge: KnowledgeService,
        metering: Metering,
        moderation: ModerationRuns,
        web: WebSearch,
        images: ImageInputs,
    ):
        self.moderation = moderation
        self.web = web
        self.images = images
        self.chat = chat
        self.targets = targets
        self.agents = agents
        self.conversations = conversations
        self.knowledge = knowledge
        self.metering = metering

    async def chat_completion(self, principal: Principal, body: ChatCompletionRequest, base_url: str) -> Outcome:
        plan = self.targets.catalog_agent(body.model)
        if plan is not None:
            if body.agent_model is not None:
                plan = await self.targets.retargeted(plan, body.agent_model, principal.account_id)
            return await self.agent(principal, body, plan, base_url)
        if body.agent_model is not None:
            raise InvalidFieldError(
                "agent_model: only a catalog All Tools agent runs on a model the request chooses (a GLM runs on "
                "its creator's; a model is itself)"
            )
        if GLM_ID.fullmatch(body.model):
            glm = await self.targets.glm(principal.account_id, body.model)
            if glm is None:
                raise ModelNotFoundError(f"模型不存在 / model or agent {body.model!r} does not exist")
            return await self.glm(principal, body, glm, base_url)
        return await self.model(principal, body)

    async def model(self, principal: Principal, body: ChatCompletionRequest) -> Outcome:
        """A served or fine-tuned model; ``retrieval`` tools ground it first (the query's embedding billed as a
        call of its own)."""
        served, adapter = await self.targets.chat_model(principal.account_id, body.model)
        grounding = Grounding()
        search = web_search_tool(body)
        found: list[WebResult] = []
        policy = self.moderation.policy(principal, served.spec.safety, body.sensitive_word_check)

        def subject(request_id: str) -> Subject:
            return Subject(principal.account_id, principal.key_id, body.model, "chat.completions", request_id)

        async def plan() -> Any:
            nonlocal body, grounding, found
            refused_id = str(body.request_id or new_usage_id("chatcmpl"))
            await self.moderation.check_input(principal, policy, request_texts(body), subject(refused_id))
            if served.spec.vision and has_image_parts(body):
                body = await self.images.resolved(body)  # fetched here, safely: never by the engine's server
            if search is not None and search.options is None:
                body = without_web_search(body)
            elif search is not None and search.options is not None:
                await self.chat.plan(without_web_search(body), adapter)  # a bad request is refused before searching
                found = await self.web.search(search.options)
                body = grounded(body, found, search.prompt)
            if retrieval_tools(body):
                await self.chat.plan(body, adapter)  # a bad request is refused before anything is retrieved or billed
                body, grounding = await self.ground(principal, body)
            return await self.chat.plan(body, adapter)

        started = await self.metering.engine_run(
            principal,
            served.spec,
            "chat.completions",
            plan,
            lambda planned: self.chat.submit(in_background(planned) if principal.channel == "batch" else planned),
            request_id=lambda planned: planned.request_id,
        )
        citations = grounding.citations() if grounding.chunks else None
        web = items(found) if search is not None and search.show_results else None
        answered = subject(started.plan.request_id)
        if body.stream:
            chunks = stream_chat(self.chat, started.run, started.call.tally)
            guarded = self.moderation.guard_stream(
                principal, policy, chunks, answered, started.call.tally, started.plan.include_usage
            )
            return started.stream(with_sources(guarded, citations, web))

        async def answer() -> ChatCompletion:
            completion = await collect_chat(self.chat, started.run, started.call.tally)
            completion = await self.moderation.guard_completion(principal, policy, completion, answered)
            completion.retrieval = citations
            completion.web_search = web
            return completion

        return started.collect(answer())

    async def ground(
        self, principal: Principal, body: ChatCompletionRequest
    ) -> tuple[ChatCompletionRequest, Grounding]:
        """``retrieval`` tools: the question answered from knowledge bases; the query's embedding is billed (a
        nested call: the chat call holds the key's slot)."""
        tools = retrieval_tools(body)
        base = await self.knowledge.store.get(principal.account_id, tools[0].knowledge_id)
        spec = self.knowledge.embeddings.resolve(base.embedding_model)
        bound = UsageBound(prompt_tokens=token_bound(question_of(body)[1]) * len(tools))  # the question, per base
        call = await self.metering.admit(principal, spec, "knowledge.retrieve", bound, kind="ret", nested=True)

        async def retrieve() -> tuple[ChatCompletionRequest, Grounding]:
            grounded, grounding = await self.knowledge.ground(principal.account_id, body)
            call.tally.prompt_tokens = grounding.query_tokens
            return grounded, grounding

        return await self.metering.result(call, retrieve())

    async def agent(
        self,
        principal: Principal,
        body: ChatCompletionRequest,
        plan: AgentPlan,
        base_url: str,
        turn: TurnSaver | None = None,
    ) -> Streamed[Any]:
        """An All Tools agent (a catalog one, or a GLM): the tool loop, in the glm-4-alltools format."""
        if not body.stream:
            raise InvalidFieldError("stream: All Tools agents answer as a stream only; set stream=true")
        run = self.agents.prepare(body, principal, plan, base_url)
        writer = AllToolsWriter(run, body.model)
        request_id = str(body.request_id or writer.id)
        return await self.agents.stream(
            principal, plan, run, writer, body=body, endpoint="chat.completions", request_id=request_id, turn=turn
        )

    async def glm(
        self, principal: Principal, body: ChatCompletionRequest, glm: AgentRecord, base_url: str
    ) -> Streamed[Any]:
        """A GLM in chat: run as an All Tools agent on its creator's configuration. The conversation is stored
        under its ``conversation_id`` (one is made when none is given) with the GLM version it started with, which
        it keeps."""
        conversation_id = body.conversation_id or new_conversation_id()
        existing = await self.conversations.find(principal.account_id, conversation_id)
        glm = await self.targets.pinned_glm(principal.account_id, existing, glm)
        body = glm_request(body.model_copy(update={"conversation_id": conversation_id}), glm.config)
        plan = await self.targets.glm_plan(glm)
        turn = TurnSaver(
            self.conversations,
            principal.account_id,
            conversation_id,
            glm.id,
            glm.version,
            turn_user_text(body),
            continues=existing is not None,
        )
        return await self.agent(principal, body, plan, base_url, turn)

    async def completion(self, principal: Principal, body: CompletionRequest) -> Outcome:
        """Legacy text completions (``/completions``) on a served or fine-tuned model."""
        served, _ = await self.targets.chat_model(principal.account_id, body.model)
        policy = self.moderation.policy(principal, served.spec.safety, body.sensitive_word_check)

        def subject(request_id: str) -> Subject:
            return Subject(principal.account_id, principal.key_id, body.model, "completions", request_id)

        async def plan() -> Any:
            prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
            refused_id = str(body.request_id or new_usage_id("cmpl"))
            await self.moderation.check_input(principal, policy, prompts, subject(refused_id))
            return await plan_completion(served, body, self.chat.grammars)

        started = await self.metering.engine_run(
            principal,
            served.spec,
            "completions",
            plan,
            lambda planned: start_completion(served, planned),
            request_id=lambda _: body.request_id,
        )
        answered = subject(str(body.request_id or started.plan.id))
        tally = started.call.tally
        if body.stream:
            chunks = completion_chunks(started.run, tally)
            return started.stream(self.moderation.guard_text_stream(principal, policy, chunks, answered, tally))

        async def answer() -> Completion:
            completion = await collect_completion(started.run, tally)
            return await self.moderation.guard_text(principal, policy, completion, answered)

        return started.collect(answer())


async def with_sources(
    chunks: AsyncIterator[ChatCompletionChunk],
    citations: list[RetrievalCitation] | None,
    web: list[WebSearchItem] | None,
) -> AsyncIterator[ChatCompletionChunk]:
    """The first chunk carries what the answer was grounded in: knowledge citations, web search results."""
    first = True
    async for chunk in chunks:
        if first:
            chunk.retrieval = citations or None
            chunk.web_search = web
        first = False
        yield chunk


def in_background(plan: ChatPlan) -> ChatPlan:
    """A batch line's generations: served after interactive ones (``GenerationRequest.background``)."""
    return replace(plan, generations=[replace(g, background=True) for g in plan.generations])
