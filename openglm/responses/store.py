"""Stored Responses API answers (``responses``): per account — another account's id is not found."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete

from ..errors import NotFoundError
from ..protocol.responses import ResponseObject
from ..store.db import Database
from ..store.models import StoredResponse
from ..store.types import utcnow


@dataclass(frozen=True)
class Stored:
    response: ResponseObject
    input_items: list[dict[str, Any]]
    conversation: list[dict[str, Any]]


class ResponseStore:
    def __init__(self, db: Database):
        self.db = db

    async def save(
        self,
        account_id: str,
        response: ResponseObject,
        input_items: list[dict[str, Any]],
        conversation: list[dict[str, Any]],
        usage_id: str | None,
    ) -> None:
        row = StoredResponse(
            id=response.id,
            account_id=account_id,
            model=response.model,
            status=response.status,
            previous_response_id=response.previous_response_id,
            usage_id=usage_id,
            response_json=response.model_dump_json(),
            input_json=json.dumps(input_items, ensure_ascii=False),
            conversation_json=json.dumps(conversation, ensure_ascii=False),
            created_at=utcnow(),
        )
        async with self.db.session() as session:
            session.add(row)

    async def get(self, account_id: str, response_id: str) -> Stored:
        async with self.db.read() as session:
            row = await session.get(StoredResponse, response_id)
        if row is None or row.account_id != account_id:
            raise NotFoundError(f"no stored response {response_id!r}")
        return Stored(
            ResponseObject.model_validate_json(row.response_json),
            json.loads(row.input_json),
            json.loads(row.conversation_json),
        )

    async def delete(self, account_id: str, response_id: str) -> None:
        async with self.db.session() as session:
            removed = await session.execute(
                delete(StoredResponse).where(StoredResponse.id == response_id, StoredResponse.account_id == account_id)
            )
            if removed.rowcount != 1:  # type: ignore[attr-defined]
                raise NotFoundError(f"no stored response {response_id!r}")
