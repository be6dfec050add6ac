"""What a request's name runs: a served chat model, a fine-tuned model on its base, a catalog All Tools agent
(perhaps on another model), or a GLM — with whose models, knowledge bases and HTTP tools, and to whom its usage is
attributed. Resolution only: nothing here is billed or generated."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..accounts.metering import Attribution
from ..agent.service import AgentService
from ..agent.tools.base import AgentTool
from ..agent.tools.http_api import load_document_isolated, operations
from ..catalog import AgentSpec, PricedModel
from ..errors import InvalidFieldError, ModelNotFoundError, NotFoundError
from ..glms.conversations import ConversationRecord
from ..glms.store import AgentRecord, AgentStore
from ..knowledge.store import KnowledgeStore
from ..protocol.glms import AgentConfig
from ..serving.models import ModelPool, ServedModel
from ..tuning.finetuned import AdapterTarget, is_fine_tuned_name
from ..tuning.service import FineTuningService

GLM_ID = re.compile(r"[0-9a-f]{24}")


@dataclass(frozen=True)
class AgentPlan:
    """What an agent request runs with: a catalog agent's or a GLM's spec, its server-side HTTP tools, whose
    knowledge bases its retrieval reads, whom its usage is attributed to, and — when ``spec.model`` is a fine-tuned
    model — its base and adapter."""

    spec: AgentSpec
    server_tools: list[AgentTool] | None = None
    resources_of: str | None = None
    attribution: Attribution | None = None
    adapter: AdapterTarget | None = None


class Targets:
    def __init__(
        self,
        models: ModelPool,
        agents: AgentService,
        glms: AgentStore,
        fine_tuning: FineTuningService,
        knowledge: KnowledgeStore,
    ):
        self.models = models
        self.agents = agents
        self.glms = glms
        self.fine_tuning = fine_tuning
        self.knowledge = knowledge

    # -- models ---------------------------------------------------------------------------------------------------

    async def owned_target(self, account_id: str, model: str) -> AdapterTarget | None:
        """For a fine-tuned model's name: its base and adapter, if ``account_id`` owns it (else 1211); None for
        every other name."""
        if not is_fine_tuned_name(model):
            return None
        return await self.fine_tuning.resolve(account_id, model)

    async def usable_model(self, account_id: str, model: str) -> AdapterTarget | None:
        """A model an agent of ``account_id`` may run on: a chat model this server serves (None), or one of the
        account's fine-tuned models (its base and adapter); anything else is 1211."""
        target = await self.owned_target(account_id, model)
        if target is None:
            self.models.get(model)  # 1211 for a model this server does not serve
        return target

    async def chat_model(self, account_id: str, model: str) -> tuple[ServedModel, AdapterTarget | None]:
        """A plain chat call's model: the catalog's, or one of the caller's fine-tuned models as it is served now
        (merged, or its adapter on the base)."""
        adapter = await self.owned_target(account_id, model)
        if adapter is None:
            return self.models.get(model), None
        return await self.models.for_fine_tuned(adapter), adapter

    async def priced(self, account_id: str, name: str, agent_model: str | None = None) -> PricedModel:
        """The catalog entry a call of ``name`` is admitted at before it is planned (an async call, a batch): the
        model's, a catalog agent's model's (or ``agent_model``'s), or a GLM's model's (1211 for a name this
        account cannot call)."""
        plan = self.catalog_agent(name)
        if plan is not None:
            if agent_model is not None:
                plan = await self.retargeted(plan, agent_model, account_id)
            return self.served(plan.spec.model, plan.adapter).spec
        if GLM_ID.fullmatch(name):
            glm = await self.glm(account_id, name)
            if glm is None:
                raise ModelNotFoundError(f"模型不存在 / model or agent {name!r} does not exist")
            return self.served(glm.config.model, await self.glm_adapter(glm)).spec
        served, _ = await self.chat_model(account_id, name)
        return served.spec

    def served(self, model: str, adapter: AdapterTarget | None) -> ServedModel:
        """The model a plan runs: the catalog's, or a fine-tuned one on its base (``ModelPool.for_adapter``)."""
        return self.models.get(model) if adapter is None else self.models.for_adapter(adapter)

    # -- agents ---------------------------------------------------------------------------------------------------

    def catalog_agent(self, agent_id: str) -> AgentPlan | None:
        spec = self.agents.spec(agent_id)
        return None if spec is None else AgentPlan(spec, self.agents.server_tools.get(agent_id))

    async def retargeted(self, plan: AgentPlan, model: str, account_id: str) -> AgentPlan:
        """A catalog agent running on ``model`` instead of its own (``agent_model`` in chat, ``model`` in the
        assistant API): a chat model this server serves, or a fine-tuned model of the caller's ``account_id``
        (another account's is 1211, as everywhere). Its instructions, rounds and HTTP tools stay the agent's."""
        adapter = await self.usable_model(account_id, model)
        return replace(plan, spec=plan.spec.model_copy(update={"model": model}), adapter=adapter)

    async def glm(self, account_id: str, name: str, version: int | None = None) -> AgentRecord | None:
        """The GLM ``name`` as ``account_id`` may see it (pinned to ``version``: ``AgentStore.pinned``), or None
        when ``name`` is not a GLM's id or not one this account may see."""
        if not GLM_ID.fullmatch(name):
            return None
        try:
            return await self.glms.pinned(account_id, name, version)
        except NotFoundError:
            return None

    async def pinned_glm(self, account_id: str, existing: ConversationRecord | None, glm: AgentRecord) -> AgentRecord:
        """The GLM as a stored conversation started with it (an edit does not change a running conversation's
        instructions, model or tools; knowledge bases and HTTP APIs the creator has removed since are gone from
        it)."""
        if existing is None:
            return glm
        if existing.assistant_id != glm.id:
            raise InvalidFieldError(f"conversation_id: conversation {existing.id!r} is with another assistant")
        if existing.agent_version is None or existing.agent_version == glm.version:
            return glm
        return await self.glms.pinned(account_id, glm.id, existing.agent_version)

    async def glm_plan(self, glm: AgentRecord) -> AgentPlan:
        """A GLM runs on its creator's model, HTTP APIs and knowledge bases, its usage attributed to it and its
        creator. Its OpenAPI documents are parsed in a worker unless cached (up to 4 × 200 KB of a user's YAML per
        chat)."""
        config = glm.config
        fetcher = self.agents.user_http_fetcher
        assert fetcher is not None
        server_tools: list[AgentTool] = []
        for api in config.http_apis:
            document = await load_document_isolated(api.openapi)
            server_tools += operations(document, base_url=api.base_url, auth=api.auth, fetcher=fetcher)
        spec = AgentSpec(id=glm.id, model=config.model)
        attribution = Attribution(glm.id, glm.account_id)
        return AgentPlan(spec, server_tools, glm.account_id, attribution, await self.glm_adapter(glm))

    async def glm_adapter(self, glm: AgentRecord) -> AdapterTarget | None:
        """A GLM whose model is one of its creator's fine-tuned models runs on it for every caller: the creator's
        adapter, billed to the caller at the base's price (as the model's own chats are), the call attributed to
        the GLM; the model itself stays private (another account calling its id gets 1211). One deleted since is a
        1211 that does not name it (others do not see a GLM's configuration). None for a GLM on a catalog
        model."""
        try:
            return await self.owned_target(glm.account_id, glm.config.model)
        except ModelNotFoundError:
            raise ModelNotFoundError(
                f"the model of GLM {glm.id} is no longer available; its creator must choose another"
            ) from None

    async def checked_config(self, account_id: str, config: AgentConfig) -> AgentConfig:
        """A GLM configuration this server can run for this account: its model (a served chat model or one of the
        account's fine-tuned models; else 1211), tools and knowledge bases exist, its OpenAPI documents describe
        operations (refused now, not in a chat)."""
        await self.usable_model(account_id, config.model)
        offered = self.agents.tools
        missing = [tool for tool in config.tools if tool not in offered]
        if missing:
            raise InvalidFieldError(
                f"config.tools: {', '.join(missing)} not available here; available: {', '.join(offered)}"
            )
        if "retrieval" in config.tools and not config.knowledge_ids:
            raise InvalidFieldError("config.knowledge_ids: the retrieval tool needs at least one knowledge base")
        fetcher = self.agents.user_http_fetcher
        assert fetcher is not None
        for api in config.http_apis:
            operations(await load_document_isolated(api.openapi), base_url=api.base_url, auth=api.auth, fetcher=fetcher)
        for knowledge_id in config.knowledge_ids:
            try:
                await self.knowledge.get(account_id, knowledge_id)
            except NotFoundError:
                raise InvalidFieldError(
                    f"config.knowledge_ids: no knowledge base {knowledge_id!r} in your account"
                ) from None
        return config
