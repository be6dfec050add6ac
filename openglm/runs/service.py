"""``RunService``: the one way the platform calls a model. A parsed request and the caller in; a ``Streamed`` or
``Collected`` outcome (``outcome.py``) out, already resolved, admitted and metered. Routes render outcomes; the job
system collects them (async results); nothing else plans, admits or settles a model call.

    request → targets (what the name runs) → plan → metered admission (metered.py) → engine / agent loop
            → stream or collect → settlement

Chat and completions live in ``chat.py``, agent runs (catalog agents, GLMs) in ``agents.py``, the Assistant API in
``assistant.py``; the single-shot runs (the GLM builder, embeddings, pictures, knowledge retrieval) are here.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from ..accounts.auth import Authenticator, Principal
from ..accounts.metering import Meter
from ..agent.browser.images import ImageInputs
from ..agent.service import AgentService
from ..agent.tools.web_browser import WebBrowser
from ..embeddings.service import EmbeddingService
from ..errors import UnsupportedError
from ..files.store import FileStore
from ..glms.builder import BuilderTurn, Draft, builder_tools, chat_request, merge, parse_output
from ..glms.conversations import ConversationStore
from ..glms.store import AgentStore
from ..images.service import ImageService, Picture
from ..knowledge.retrieval import Retrieval, RetrievalOptions
from ..knowledge.service import KnowledgeService
from ..protocol.chat import ChatCompletionRequest
from ..protocol.embeddings import EmbeddingRequest, EmbeddingsResponse
from ..protocol.glms import BuilderDraft, BuilderReply, BuilderRequest
from ..protocol.images import ImageData, ImageGenerationRequest, ImagesResponse
from ..protocol.moderations import ModerationRequest, ModerationResponse
from ..protocol.tokenizer import TokenizerRequest, TokenizerResponse, TokenizerUsage
from ..responses.store import ResponseStore
from ..safety.config import SafetyConfig
from ..safety.hits import HitStore
from ..safety.service import Subject
from ..serving.models import ModelPool
from ..serving.responses import collect_chat
from ..serving.service import ChatService, has_image_parts
from ..serving.usage import UsageBound, token_bound
from ..tuning.service import FineTuningService
from ..websearch.search import WebSearch
from .agents import AgentRuns
from .assistant import AssistantRuns
from .chat import ChatRuns
from .collect import collect
from .directory import ModelDirectory
from .metered import Metering
from .moderation import ModerationRuns
from .outcome import Collected
from .responses import ResponseRuns
from .targets import GLM_ID, Targets
from .websearch import WebSearchRuns


class RunService:
    def __init__(
        self,
        *,
        meter: Meter,
        chat: ChatService,
        models: ModelPool,
        agents: AgentService,
        glms: AgentStore,
        conversations: ConversationStore,
        knowledge: KnowledgeService,
        fine_tuning: FineTuningService,
        files: FileStore,
        images: ImageService,
        embeddings: EmbeddingService,
        authenticator: Authenticator,
        safety: SafetyConfig,
        moderation_hits: HitStore,
    ):
        self.metering = Metering(meter)
        self.authenticator = authenticator  # work queued with a key runs as that key, checked again when it runs
        self.chat = chat
        self.models = models
        self.agents = agents
        self.knowledge = knowledge
        self.files = files
        self.images = images
        self.embeddings = embeddings
        self.targets = Targets(models, agents, glms, fine_tuning, knowledge.store)
        self.directory = ModelDirectory(models, embeddings, fine_tuning)
        self.moderation = ModerationRuns(safety, moderation_hits, chat, self.targets, self.metering)
        self.moderation.check_catalog((spec.id, spec.safety) for spec in models.catalog.specs)
        image_inputs = ImageInputs(agents.user_http_fetcher)
        self.agent_runs = AgentRuns(agents, glms, self.targets, self.metering, self.moderation, image_inputs)
        browser = agents.tools.get("web_browser")
        if isinstance(browser, WebBrowser):  # web search shares the browser tool's provider and fetcher
            self.web = WebSearch(browser.provider, browser.fetcher)
        else:
            self.web = WebSearch(None, None)
        self.searches = WebSearchRuns(self.web, self.moderation)
        self.chats = ChatRuns(
            chat,
            self.targets,
            self.agent_runs,
            conversations,
            knowledge,
            self.metering,
            self.moderation,
            self.web,
            image_inputs,
        )
        self.responses = ResponseRuns(self.chats, self.agent_runs, ResponseStore(meter.db))
        self.assistant = AssistantRuns(chat, self.targets, self.agent_runs, conversations, files, self.metering)

    async def answer(self, principal: Principal, body: ChatCompletionRequest, base_url: str) -> dict[str, Any]:
        """A chat request answered whole, for work nobody streams (async results, batch lines): a model's answer
        collected, an agent's (a catalog one's or a GLM's: they answer as a stream) folded into one
        (``collect.py``). A batch line's generations are background work for the engine."""
        agent = self.targets.catalog_agent(body.model) is not None or bool(GLM_ID.fullmatch(body.model))
        body = body.model_copy(update={"stream": agent, "stream_options": None})
        return await collect(await self.chats.chat_completion(principal, body, base_url))

    async def build(self, principal: Principal, body: BuilderRequest) -> Collected[BuilderReply]:
        """One turn of the GLM builder: the conversation and the current draft in, a reply and the new draft out
        (one structured-output call on the builder's model; the caller's fine-tuned models build too)."""
        draft = (
            None if body.draft is None else Draft(**body.draft.model_dump(exclude={"config"}), config=body.draft.config)
        )
        if draft is not None:
            await self.targets.checked_config(principal.account_id, draft.config)
        name = body.model or self.models.default_name()
        adapter = await self.targets.owned_target(principal.account_id, name)
        served = self.targets.served(name, adapter)
        tools = builder_tools(list(self.agents.tools), None if draft is None else draft.config)
        turns = [BuilderTurn(m.role, m.content) for m in body.messages]
        request = chat_request(served.spec.id, turns, draft, tools)
        started = await self.metering.engine_run(
            principal,
            served.spec,
            "glms.builder",
            lambda: self.chat.plan(request, adapter),
            self.chat.submit,
            request_id=lambda planned: planned.request_id,
        )

        async def answer() -> BuilderReply:
            choice = (await collect_chat(self.chat, started.run, started.call.tally)).choices[0]
            output = parse_output(choice.message.content, choice.finish_reason)
            reply, new = merge(draft, output, model=served.spec.id, tools=tools)
            return BuilderReply(reply=reply, draft=BuilderDraft.model_validate(vars(new)))

        return started.collect(answer())

    async def embed(self, principal: Principal, body: EmbeddingRequest) -> Collected[EmbeddingsResponse]:
        """Embeddings; text inputs pass the input checkers first, as on Zhipu's (``sensitive_word_check``)."""
        plan = self.embeddings.plan(body)
        call = await self.metering.admit(
            principal, plan.spec, "embeddings", plan.usage_bound(), kind="emb", request_id=body.request_id
        )

        async def run() -> EmbeddingsResponse:
            policy = self.moderation.policy(principal, None, body.sensitive_word_check)
            texts = [body.input] if isinstance(body.input, str) else [t for t in body.input if isinstance(t, str)]
            request_id = str(call.request_id or call.usage_id)
            subject = Subject(principal.account_id, principal.key_id, body.model, "embeddings", request_id)
            await self.moderation.check_input(principal, policy, texts, subject)
            return await self.embeddings.run(plan, call.tally)

        return self.metering.collect(call, run())

    async def count_tokens(self, principal: Principal, body: TokenizerRequest) -> TokenizerResponse:
        """Zhipu's tokenizer: the prompt a chat call with these messages, tools and persona would render, counted
        by its model's own tokenizer (a fine-tuned model: its base's). Not billed: nothing is generated."""
        served, adapter = await self.targets.chat_model(principal.account_id, body.model)
        request = ChatCompletionRequest(
            model=body.model, messages=body.messages, tools=body.tools, meta=body.meta, max_tokens=1
        )
        if served.spec.vision and has_image_parts(request):  # (a model that cannot see refuses them: 1210)
            raise UnsupportedError(
                "the tokenizer counts text: an image's tokens depend on the model's reading of it, and are counted "
                "in usage.prompt_tokens when the request runs"
            )
        plan = await self.chat.plan(request, adapter)
        tokens = await served.engine.count_tokens(plan.generations[0].prompt)
        request_id = str(body.request_id) if body.request_id is not None else plan.id
        return TokenizerResponse(
            id=plan.id,
            created=int(time.time()),
            request_id=request_id,
            model=body.model,
            usage=TokenizerUsage(prompt_tokens=tokens),
        )

    async def moderate(self, principal: Principal, body: ModerationRequest) -> ModerationResponse:
        return await self.moderation.moderate(principal, body)

    async def draw(
        self, principal: Principal, body: ImageGenerationRequest, base_url: str
    ) -> Collected[ImagesResponse]:
        """Pictures, kept as the account's files (answered as links under ``base_url``) unless asked inline."""
        spec = self.images.resolve(body.model)
        bound = UsageBound(images=body.n or 1)
        call = await self.metering.admit(
            principal, spec, "images.generations", bound, kind="img", request_id=body.request_id
        )

        async def work() -> ImagesResponse:
            inline = body.response_format == "b64_json"
            pictures = await self.images.draw(
                principal.account_id,
                spec,
                body.prompt,
                n=body.n or 1,
                size=body.size,
                files=None if inline else self.files,
                tally=call.tally,
            )
            return ImagesResponse(created=int(time.time()), data=[image_data(p, base_url) for p in pictures])

        return self.metering.collect(call, work())

    async def retrieve(
        self, principal: Principal, knowledge_id: str, query: str, options: RetrievalOptions
    ) -> Collected[Retrieval]:
        """A knowledge base searched for ``query``; the query's embedding billed."""
        base = await self.knowledge.store.get(principal.account_id, knowledge_id)
        spec = self.knowledge.embeddings.resolve(base.embedding_model)
        bound = UsageBound(prompt_tokens=token_bound(query))
        call = await self.metering.admit(principal, spec, "knowledge.retrieve", bound, kind="ret")

        async def run() -> Retrieval:
            _, retrieval = await self.knowledge.retrieve(principal.account_id, knowledge_id, query, options)
            call.tally.prompt_tokens = retrieval.query_tokens
            return retrieval

        return self.metering.collect(call, run())


def image_data(picture: Picture, base_url: str) -> ImageData:
    revised = picture.image.revised_prompt
    if picture.file is None:
        return ImageData(b64_json=base64.b64encode(picture.image.png).decode(), revised_prompt=revised)
    return ImageData(url=f"{base_url}v1/files/{picture.file.id}/content", revised_prompt=revised)
