"""OpenAI's Responses API on the run service. A request becomes a chat call on a model (``responses/convert.py``),
run, admitted and metered by ``ChatRuns.model`` like any chat call (its usage record is the chat call's); its
answer becomes output items — or, streamed, the Responses events — and is kept (unless ``store`` is false) for
``GET /v1/responses/{id}`` and as the conversation a ``previous_response_id`` continues.

A request with the ``code_interpreter`` built-in runs instead as an All Tools agent on the model it names
(``AgentRuns``, as a catalog agent's chat does): the loop plans, runs code in the sandboxed kernel of the
response's container, and reads the results over several rounds, content safety guarding them and every round
billed on the one usage record of the run (endpoint ``chat.completions``, as an agent's chat); its events become
``code_interpreter_call`` items (``responses/interpreter.py``), collected when the caller did not stream. The
container is the kernel's key within the caller's account: the id the request names, else the previous
response's (``{"type": "auto"}`` goes on in the same kernel while it lives), else a new one.

A catalog All Tools agent or a GLM is not a Responses model (its instructions, tools and attribution are its own;
the Responses API runs models, and code_interpreter makes one an agent): 1212."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..accounts.auth import Principal
from ..catalog import AgentSpec
from ..errors import InvalidFieldError, NotFoundError, UnsupportedError
from ..protocol.chat import ChatCompletion
from ..protocol.responses import InputItemList, ResponseCreate, ResponseDeleted, ResponseEvent, ResponseObject
from ..responses.convert import EventWriter, Plan, collected_output, conversation_after, new_id, plan, usage_of
from ..responses.interpreter import AgentEventWriter, conversation_after_run, previous_container
from ..responses.store import ResponseStore, Stored
from .agents import AgentRuns
from .chat import ChatRuns
from .outcome import Collected, Outcome, Streamed
from .targets import GLM_ID, AgentPlan

# Saves a final response (unless ``store`` is false) with its usage record's id.
Keep = Callable[[ResponseObject, str | None], Awaitable[None]]


class ResponseRuns:
    def __init__(self, chats: ChatRuns, agents: AgentRuns, store: ResponseStore):
        self.chats = chats
        self.agents = agents
        self.store = store

    async def create(self, principal: Principal, body: ResponseCreate, base_url: str) -> Outcome:
        """``base_url``: where the server is reached, for links to the files the code interpreter writes."""
        if self.chats.targets.catalog_agent(body.model) is not None or GLM_ID.fullmatch(body.model):
            raise UnsupportedError(
                f"model {body.model!r} is an All Tools agent: call it through chat completions (the Responses API "
                "runs models here)"
            )
        previous = await self._previous(principal, body.previous_response_id)
        history = previous.conversation if previous is not None else []
        planned = plan(body, history)
        response = in_progress(body)
        if planned.builtins.code_interpreter:
            container = (
                planned.builtins.container
                or previous_container(previous.response if previous is not None else None)
                or new_id("cntr")
            )
            return await self._interpreted(principal, planned, history, response, container, base_url)
        outcome = await self.chats.model(principal, planned.chat)

        async def keep(final: ResponseObject, usage_id: str | None) -> None:
            await self._keep(principal, planned, final, conversation_after(planned, history, final.output), usage_id)

        if isinstance(outcome, Streamed):
            return Streamed(self._events(outcome, response, planned, keep), outcome.close)
        assert isinstance(outcome, Collected)
        return Collected(self._collected(outcome, response, planned, keep))

    async def _previous(self, principal: Principal, response_id: str | None) -> Stored | None:
        if response_id is None:
            return None
        try:
            return await self.store.get(principal.account_id, response_id)
        except NotFoundError:
            raise InvalidFieldError(
                f"previous_response_id: no stored response {response_id!r} in this account"
            ) from None

    async def _keep(
        self,
        principal: Principal,
        planned: Plan,
        final: ResponseObject,
        conversation: list[dict[str, Any]],
        usage_id: str | None,
    ) -> None:
        if final.store:
            await self.store.save(principal.account_id, final, planned.input_items, conversation, usage_id)

    async def _interpreted(
        self,
        principal: Principal,
        planned: Plan,
        history: list[dict[str, Any]],
        response: ResponseObject,
        container: str,
        base_url: str,
    ) -> Outcome:
        """code_interpreter: an All Tools agent run on the request's model (a served one, or one of the caller's
        fine-tuned models), its kernel the container's."""
        chat = planned.chat.model_copy(update={"conversation_id": container})
        adapter = await self.chats.targets.usable_model(principal.account_id, chat.model)
        agent = AgentPlan(AgentSpec(id=chat.model, model=chat.model), adapter=adapter)
        run = self.agents.prepare(chat, principal, agent, base_url)
        start = len(run.messages)  # what the loop appends after this are its rounds

        async def finish(final: ResponseObject) -> None:
            final.completed_at = int(time.time())
            conversation = conversation_after_run(planned, history, run.messages[start:])
            await self._keep(principal, planned, final, conversation, writer.id)

        writer = AgentEventWriter(response, container, finish)
        streamed = await self.agents.stream(
            principal, agent, run, writer, body=chat, endpoint="chat.completions", request_id=writer.id
        )
        if chat.stream:
            return streamed
        return Collected(self._run_collected(streamed, writer))

    @staticmethod
    async def _run_collected(streamed: Streamed[Any], writer: AgentEventWriter) -> ResponseObject:
        """An agent run nobody streams: its events read to the end (which settles its call), its final response."""
        try:
            async for _ in streamed.chunks:
                pass
        finally:
            streamed.close()
        assert writer.final is not None  # the run's stream ends with its final response, or raises
        return writer.final

    async def _collected(self, outcome: Collected[Any], response: ResponseObject, planned: Plan, keep: Keep) -> Any:
        completion: ChatCompletion = await outcome.result
        output, status, incomplete = collected_output(completion, planned)
        final = response.model_copy(
            update={
                "status": status,
                "completed_at": int(time.time()),
                "output": output,
                "usage": usage_of(completion.usage),
                "incomplete_details": incomplete,
            }
        )
        await keep(final, completion.id)
        return final

    async def _events(
        self, outcome: Streamed[Any], response: ResponseObject, planned: Plan, keep: Keep
    ) -> AsyncIterator[ResponseEvent]:
        usage_id: list[str] = []

        async def chunks() -> AsyncIterator[Any]:
            async for chunk in outcome.chunks:
                if not usage_id:
                    usage_id.append(chunk.id)
                yield chunk

        async def finish(final: ResponseObject) -> None:
            final.completed_at = int(time.time())
            await keep(final, usage_id[0] if usage_id else None)

        async for event in EventWriter(response, planned, finish).events(chunks()):
            yield ResponseEvent.model_validate(event)

    async def get(self, principal: Principal, response_id: str) -> ResponseObject:
        return (await self.store.get(principal.account_id, response_id)).response

    async def delete(self, principal: Principal, response_id: str) -> ResponseDeleted:
        await self.store.delete(principal.account_id, response_id)
        return ResponseDeleted(id=response_id)

    async def input_items(self, principal: Principal, response_id: str) -> InputItemList:
        items = (await self.store.get(principal.account_id, response_id)).input_items
        return InputItemList(
            data=items,
            first_id=items[0]["id"] if items else None,
            last_id=items[-1]["id"] if items else None,
        )


def in_progress(body: ResponseCreate) -> ResponseObject:
    """The response as it starts: the request's settings, no output yet."""
    return ResponseObject(
        id=new_id("resp"),
        created_at=int(time.time()),
        status="in_progress",
        model=body.model,
        output=[],
        instructions=body.instructions,
        previous_response_id=body.previous_response_id,
        tools=body.tools or [],
        tool_choice=body.tool_choice or "auto",
        parallel_tool_calls=body.parallel_tool_calls is not False,
        temperature=body.temperature,
        top_p=body.top_p,
        max_output_tokens=body.max_output_tokens,
        metadata=body.metadata or {},
        text=body.text or {"format": {"type": "text"}},
        store=body.store is not False,
        user=body.user,
    )
