"""All Tools agent runs (a catalog agent, or a GLM): the loop prepared and its first round validated, admitted and
attributed, its events streamed through a writer (glm-4-alltools chunks, or the assistant API's), the turn of a
stored conversation saved as it streams. Every tool's own billable call (a picture, a retrieval's embedding) is
admitted through ``nested_billing``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from pydantic import BaseModel

from ..accounts.auth import Principal
from ..accounts.metering import Attribution, MeteredCall
from ..agent.browser.images import ImageInputs
from ..agent.loop import AgentEvent, AgentRun
from ..agent.service import AgentService
from ..catalog import PricedModel
from ..glms.recording import TurnSaver
from ..glms.store import AgentStore
from ..protocol.chat import ChatCompletionRequest
from ..safety.service import Subject
from ..serving.service import has_image_parts
from ..serving.usage import Tally, UsageBound
from .metered import Metering
from .moderation import ModerationRuns, request_texts
from .outcome import Streamed
from .targets import AgentPlan, Targets


class Writer(Protocol):
    """Agent events → wire chunks (``AllToolsWriter``, ``AssistantWriter``); ``id`` is the run's usage id."""

    @property
    def id(self) -> str: ...

    def chunks(self, events: AsyncIterator[AgentEvent], tally: Tally) -> AsyncIterator[BaseModel]: ...


class AgentRuns:
    def __init__(
        self,
        agents: AgentService,
        glms: AgentStore,
        targets: Targets,
        metering: Metering,
        moderation: ModerationRuns,
        images: ImageInputs,
    ):
        self.images = images
        self.moderation = moderation
        self.agents = agents
        self.glms = glms
        self.targets = targets
        self.metering = metering

    def prepare(self, body: ChatCompletionRequest, principal: Principal, plan: AgentPlan, base_url: str) -> AgentRun:
        billing = NestedBilling(self.metering, principal, plan.attribution)
        return self.agents.loop.prepare(
            plan.spec,
            body,
            principal.account_id,
            billing,
            plan.server_tools,
            base_url,
            resources_of=plan.resources_of,
            adapter=plan.adapter,
        )

    async def stream(
        self,
        principal: Principal,
        plan: AgentPlan,
        run: AgentRun,
        writer: Writer,
        *,
        body: ChatCompletionRequest,
        endpoint: str,
        request_id: str | None,
        turn: TurnSaver | None = None,
    ) -> Streamed[BaseModel]:
        """The caller's messages checked by content safety, the run's first round planned now (a bad request is a
        400, not an error inside a 200 stream), its bound reserved at admission (later rounds reserve their own);
        a GLM's use counted once admitted; its output guarded as it streams."""
        served = self.targets.served(plan.spec.model, plan.adapter)  # a fine-tuned model: metered under its id
        policy = self.moderation.policy(principal, served.spec.safety, body.sensitive_word_check)
        subject = Subject(principal.account_id, principal.key_id, body.model, endpoint, request_id or writer.id)
        await self.moderation.check_input(principal, policy, request_texts(body), subject)
        if served.spec.vision and has_image_parts(body):  # images the agent's own model reads: fetched here, safely
            run.messages = (await self.images.resolved(body.model_copy(update={"messages": run.messages}))).messages
        first_round = await self.agents.loop.validate(run)
        call = await self.metering.admit(
            principal,
            served.spec,
            endpoint,
            first_round,
            usage_id=writer.id,
            request_id=request_id,
            attribution=plan.attribution,
        )
        if plan.attribution is not None:
            await call.guard(self.glms.count_use(plan.attribution.agent_id))
        events = self.agents.loop.run(run, call.tally, call.reserve_round)
        events = self.moderation.guard_events(principal, policy, events, subject)
        if turn is not None:
            events = turn.record(events, call.tally)
        return self.metering.stream(call, writer.chunks(events, call.tally))


class NestedBilling:
    """A billable call a tool makes inside an agent run (a picture, a retrieval's embedding): admitted as nested
    (its own reservation, no second slot of the key's limits), and attributed like the run itself, so a GLM's
    creator share and usage include it. The tool binds its own usage id."""

    def __init__(self, metering: Metering, principal: Principal, attribution: Attribution | None):
        self.metering = metering
        self.principal = principal
        self.attribution = attribution

    async def __call__(self, spec: PricedModel, endpoint: str, bound: UsageBound) -> MeteredCall:
        call = await self.metering.meter.admit(self.principal, spec, endpoint, bound=bound, nested=True)
        call.agent = self.attribution
        return call
