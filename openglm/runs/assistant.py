"""The Assistant API's runs: a turn of a stored conversation with a catalog agent or a GLM (streamed in the
assistant format, the turn saved), and follow-up suggestions for a conversation."""

from __future__ import annotations

from typing import Any

from ..accounts.auth import Principal
from ..agent.assistant_stream import AssistantWriter
from ..errors import InvalidFieldError, ModelNotFoundError
from ..files.store import FileStore
from ..glms.assistant import (
    SUGGEST_PROMPT,
    SUGGEST_TOKENS,
    attachments_of,
    history_budget,
    replayed,
    suggest_request,
    suggestions_of,
    user_message,
)
from ..glms.chat_request import glm_request, message_text
from ..glms.conversations import ConversationRecord, ConversationStore, new_conversation_id
from ..glms.recording import TurnSaver
from ..glms.store import AgentRecord
from ..protocol.assistant import AssistantRequest, SuggestList, SuggestQuery
from ..protocol.chat import ChatCompletionRequest, ChatMessage, ToolDefinition
from ..serving.responses import collect_chat
from ..serving.service import ChatService
from .agents import AgentRuns
from .metered import Metering
from .outcome import Collected, Streamed
from .targets import AgentPlan, Targets

DOCS_DEFAULT_MODEL = "glm-4-assistant"  # the assistant API's documented default: the assistant's own model
SUGGEST_CONTEXT = 6  # the last messages a suggestion reads


class AssistantRuns:
    def __init__(
        self,
        chat: ChatService,
        targets: Targets,
        agents: AgentRuns,
        conversations: ConversationStore,
        files: FileStore,
        metering: Metering,
    ):
        self.chat = chat
        self.targets = targets
        self.agents = agents
        self.conversations = conversations
        self.files = files
        self.metering = metering

    async def resolve(
        self, principal: Principal, assistant_id: str, version: int | None = None
    ) -> tuple[AgentPlan, AgentRecord | None]:
        """A catalog agent's plan, or a GLM the caller may see (as a conversation pinned to ``version`` runs it)
        with its plan; anything else is unknown (1211)."""
        plan = self.targets.catalog_agent(assistant_id)
        if plan is not None:
            return plan, None
        glm = await self.targets.glm(principal.account_id, assistant_id, version)
        if glm is None:
            raise ModelNotFoundError(f"智能体不存在 / assistant {assistant_id!r} does not exist")
        return await self.targets.glm_plan(glm), glm

    def catalog_tools(self) -> list[ToolDefinition] | None:
        """A catalog agent through the assistant API has the built-ins this server offers (retrieval needs a
        knowledge base, so not that one)."""
        return [ToolDefinition(type=name) for name in self.agents.agents.tools if name != "retrieval"] or None

    async def turn(self, principal: Principal, body: AssistantRequest, base_url: str) -> Streamed[Any]:
        if body.stream is not True:
            raise InvalidFieldError("stream: the assistant API answers as a stream only; set stream=true")
        account = principal.account_id
        existing: ConversationRecord | None = None
        if body.conversation_id is not None:
            existing = await self.conversations.get(account, body.conversation_id)  # 404 unless the caller's
            if existing.assistant_id != body.assistant_id:
                raise InvalidFieldError(
                    f"conversation_id: conversation {existing.id!r} is with assistant {existing.assistant_id!r}"
                )
        plan, glm = await self.resolve(principal, body.assistant_id, existing.agent_version if existing else None)
        plan = await self.model_of(principal, body, plan, glm)
        served = self.targets.served(plan.spec.model, plan.adapter)
        attachments = await attachments_of(self.files, account, [a.file_id for a in body.attachments or []])
        conversation_id = existing.id if existing else new_conversation_id()
        text = message_text(body.messages[0].content)
        history = await self.conversations.messages(account, conversation_id) if existing else []
        new_message = await user_message(self.files, account, text, attachments)
        room = body.max_tokens or self.chat.default_max_tokens
        budget = history_budget(served.spec.context_length, room, new_message)
        messages = [*await replayed(self.files, account, history, budget), new_message]
        chat = ChatCompletionRequest(
            model=body.assistant_id,
            messages=messages,
            stream=True,
            conversation_id=conversation_id,
            request_id=body.request_id,
            user_id=body.user_id,
            max_tokens=body.max_tokens,
            tools=None if glm else self.catalog_tools(),
        )
        if glm is not None:
            chat = glm_request(chat, glm.config)
        with_files(chat, attachments)
        run = self.agents.prepare(chat, principal, plan, base_url)
        writer = AssistantWriter(body.assistant_id, conversation_id)
        turn = TurnSaver(
            self.conversations,
            account,
            conversation_id,
            body.assistant_id,
            glm.version if glm else None,
            text,
            attachments,
            continues=existing is not None,
        )
        request_id = body.request_id or writer.id
        return await self.agents.stream(
            principal, plan, run, writer, body=chat, endpoint="assistant", request_id=request_id, turn=turn
        )

    async def model_of(
        self, principal: Principal, body: AssistantRequest, plan: AgentPlan, glm: AgentRecord | None
    ) -> AgentPlan:
        """The model the turn runs on. ``model`` (absent from the SDK's requests; the docs' default
        ``glm-4-assistant`` means the assistant's own): a catalog agent runs on the one named — a chat model this
        server serves or one of the caller's fine-tuned models (another account's: 1211) —; a GLM runs on its
        creator's model and refuses any named (1214), whatever it names: the answer must not tell others which
        model the GLM has."""
        chosen = body.model not in (None, DOCS_DEFAULT_MODEL)
        if glm is not None:
            if chosen:
                raise InvalidFieldError("model: a GLM runs on the model its creator chose; leave model out")
            return plan
        if chosen:
            assert body.model is not None
            plan = await self.targets.retargeted(plan, body.model, principal.account_id)
        return plan

    async def suggest(self, principal: Principal, body: SuggestQuery) -> Collected[SuggestList]:
        """Follow-up questions for a stored conversation: one structured-output call on the assistant's model (a
        JSON-schema grammar, so it works on small models), billed like a chat call and attributed like the
        turns."""
        account = principal.account_id
        record = await self.conversations.get(account, body.conversation_id)
        if record.assistant_id != body.assistant_id:
            raise InvalidFieldError(f"conversation_id: conversation {record.id!r} is with another assistant")
        plan, _ = await self.resolve(principal, record.assistant_id, record.agent_version)
        history = await self.conversations.messages(account, record.id)
        served = self.targets.served(plan.spec.model, plan.adapter)
        prompt = ChatMessage(role="user", content=SUGGEST_PROMPT)
        budget = history_budget(served.spec.context_length, SUGGEST_TOKENS, prompt)
        recent = await replayed(self.files, account, history[-SUGGEST_CONTEXT:], budget)
        chat = suggest_request(plan.spec.model, recent)
        started = await self.metering.engine_run(
            principal,
            served.spec,
            "assistant.suggest",
            lambda: self.chat.plan(chat, plan.adapter),
            self.chat.submit,
            request_id=lambda planned: planned.request_id,
            attribution=plan.attribution,
        )

        async def suggestions() -> SuggestList:
            completion = await collect_chat(self.chat, started.run, started.call.tally)
            return SuggestList(suggest_list=suggestions_of(completion.choices[0].message.content))

        return started.collect(suggestions())


def with_files(chat: ChatCompletionRequest, attachments: list[dict[str, str]]) -> None:
    """Attachments are also put in the code interpreter's workspace, when the assistant has one."""
    for tool in chat.tools or []:
        if tool.type == "code_interpreter" and attachments:
            tool.code_interpreter = {**(tool.code_interpreter or {}), "file_ids": [a["file_id"] for a in attachments]}
