"""Zhipu's ``POST /tokenizer`` (both prefixes): the prompt tokens a chat call would take."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from ...protocol.tokenizer import TokenizerRequest
from ..deps import Caller, Runs
from ._common import both_prefixes, json_response

router = APIRouter(tags=["tokenizer"])


@both_prefixes(router, "POST", "/tokenizer")
async def count_tokens(body: TokenizerRequest, principal: Caller, runs: Runs) -> Response:
    return json_response(await runs.count_tokens(principal, body))
