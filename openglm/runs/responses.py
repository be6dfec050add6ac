"""OpenAI's Responses API on the run service: a request becomes a chat call on a model (``responses/convert.py``),
run, admitted and metered by ``ChatRuns.model`` like any chat call (its usage record is the chat call's); its
answer becomes output items — or, streamed, the Responses events — and is kept (unless ``store`` is false) for
``GET /v1/responses/{id}`` and as the conversation a ``previous_response_id`` continues.

An All Tools agent or a GLM is not a Responses model here (their tool rounds have no Responses items yet): 1212."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from ..accounts.auth import Principal
from ..errors import InvalidFieldError, NotFoundError, UnsupportedError
from ..protocol.chat import ChatCompletion
from ..protocol.responses import InputItemList, ResponseCreate, ResponseDeleted, ResponseEvent, ResponseObject
from ..responses.convert import EventWriter, Plan, collected_output, conversation_after, new_id, plan, usage_of
from ..responses.store import ResponseStore
from .chat import ChatRuns
from .outcome import Collected, Outcome, Streamed
from .targets import GLM_ID


class ResponseRuns:
    def __init__(self, chats: ChatRuns, store: ResponseStore):
        self.chats = chats
        self.store = store

    async def create(self, principal: Principal, body: ResponseCreate) -> Outcome:
        if self.chats.targets.catalog_agent(body.model) is not None or GLM_ID.fullmatch(body.model):
            raise UnsupportedError(
                f"model {body.model!r} is an All Tools agent: call it through chat completions (the Responses API "
                "runs models here)"
            )
        history: list[dict[str, Any]] = []
        if body.previous_response_id is not None:
            try:
                history = (await self.store.get(principal.account_id, body.previous_response_id)).conversation
            except NotFoundError:
                raise InvalidFieldError(
                    f"previous_response_id: no stored response {body.previous_response_id!r} in this account"
                ) from None
        planned = plan(body, history)
        response = ResponseObject(
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
        outcome = await self.chats.model(principal, planned.chat)

        async def keep(final: ResponseObject, usage_id: str | None) -> None:
            if final.store:
                conversation = conversation_after(planned, history, final.output)
                await self.store.save(principal.account_id, final, planned.input_items, conversation, usage_id)

        if isinstance(outcome, Streamed):
            return Streamed(self._events(outcome, response, planned, keep), outcome.close)
        assert isinstance(outcome, Collected)
        return Collected(self._collected(outcome, response, planned, keep))

    async def _collected(self, outcome: Collected[Any], response: ResponseObject, planned: Plan, keep: Any) -> Any:
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
        self, outcome: Streamed[Any], response: ResponseObject, planned: Plan, keep: Any
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
