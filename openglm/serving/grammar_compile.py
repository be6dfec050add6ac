"""Grammars for requests, built off the event loop in a worker process with a time and memory budget, and cached.

A schema is first checked here (``grammar_limits``: a clear 400 before any work); the conversion to GBNF and a
parse by llama.cpp's own GBNF parser then run in the shared ``UntrustedPool``, so a grammar that would crash or
exhaust llama.cpp does so in a worker, not in the server, and an engine only ever gets a grammar llama.cpp has
already parsed within the budget. Agents send the same tool schemas round after round, so results are kept in a
small LRU cache (bounded in bytes) keyed by a hash of everything the grammar depends on.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any

from ..errors import InvalidFieldError
from ..protocol.chat import ResponseFormat
from ..untrusted.loaders import MAX_DEPTH, nesting_depth
from ..untrusted.pool import UntrustedPool, shared_pool
from .grammar import checked_gbnf, json_schema_grammar, parse_in_llama, select_grammar
from .grammar_limits import check_schema
from .toolcalls.base import ToolCallParser

GrammarChoice = tuple[str | None, tuple[str, ...]]
CACHE_BYTES = 32 * 1024 * 1024
COMPILE_TIMEOUT = 10.0  # seconds; the worst schema the limits accept compiles in well under one


def compile_chat_grammar(
    parser: ToolCallParser,
    tools: list[dict[str, Any]],
    required: bool,
    forced: str | None,
    parallel: bool,
    response_schema: dict[str, Any] | None,
) -> GrammarChoice:
    """Runs in a worker: the request's grammar, parsed once by llama.cpp."""
    grammar, triggers = select_grammar(
        parser, tools, required=required, forced=forced, parallel=parallel, response_schema=response_schema
    )
    if grammar is not None:
        parse_in_llama(grammar, "the request's grammar")
    return grammar, triggers


def compile_schema_grammar(schema: dict[str, Any]) -> str:
    """Runs in a worker: a response format's grammar for a text completion, parsed once by llama.cpp."""
    grammar = json_schema_grammar(schema)
    parse_in_llama(grammar, "response_format")
    return grammar


def compile_raw_grammar(grammar: str) -> str:
    """Runs in a worker: a caller's GBNF, checked and parsed once by llama.cpp."""
    parse_in_llama(checked_gbnf(grammar), "grammar")
    return grammar


def response_schema(response_format: ResponseFormat | None) -> dict[str, Any] | None:
    """The schema a response format asks for: ``{"type": "object"}`` in JSON mode, None for text."""
    if response_format is None or response_format.type == "text":
        return None
    schema = response_format.schema_
    if response_format.type == "json_schema":
        if response_format.json_schema is None or response_format.json_schema.schema_ is None:
            raise InvalidFieldError("response_format.json_schema.schema is required for type json_schema")
        schema = response_format.json_schema.schema_
    return schema or {"type": "object"}


class GrammarCompiler:
    def __init__(self, pool: UntrustedPool | None = None, cache_bytes: int = CACHE_BYTES):
        self.pool = pool or shared_pool()
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._held = 0
        self._cache_bytes = cache_bytes

    async def for_chat(
        self,
        parser: ToolCallParser,
        tools: list[dict[str, Any]],
        *,
        required: bool,
        forced: str | None,
        parallel: bool,
        response_format: ResponseFormat | None,
    ) -> GrammarChoice:
        schema = response_schema(response_format)
        if schema is None and not tools:
            return None, ()
        if forced is not None and not any(t.get("function", {}).get("name") == forced for t in tools):
            raise InvalidFieldError(f"tool_choice names {forced!r}, which is not in tools")
        if nesting_depth(tools) > MAX_DEPTH:  # built-in tools' options are free-form: bound them before pickling
            raise InvalidFieldError(f"tools: nested more than {MAX_DEPTH} levels deep")
        for used, where in _schemas_in_use(tools, required=required, forced=forced, response=schema):
            check_schema(used, where)  # a clear 400 for the first schema over a limit, without a worker
        args = (parser, tools, required, forced, parallel, schema)
        key = _key(type(parser).__qualname__, tools, required, forced, parallel, schema)
        choice: GrammarChoice = await self._compiled(key, compile_chat_grammar, args)
        return choice

    async def for_completion(self, grammar: str | None, response_format: ResponseFormat | None) -> str | None:
        if grammar:
            checked: str = await self._compiled(_key("raw", grammar), compile_raw_grammar, (grammar,))
            return checked
        schema = response_schema(response_format)
        if schema is None:
            return None
        check_schema(schema, "response_format.json_schema.schema")
        compiled: str = await self._compiled(_key("schema", schema), compile_schema_grammar, (schema,))
        return compiled

    async def _compiled(self, key: str, function: Any, args: tuple[Any, ...]) -> Any:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        result = await self.pool.run(function, *args, what="the grammar", timeout=COMPILE_TIMEOUT)
        self._remember(key, result)
        return result

    def _remember(self, key: str, result: Any) -> None:
        size = len(json.dumps(result))
        if size > self._cache_bytes:
            return
        self._cache[key], self._sizes[key] = result, size
        self._held += size
        while self._held > self._cache_bytes:
            oldest, _ = self._cache.popitem(last=False)
            self._held -= self._sizes.pop(oldest)


def _schemas_in_use(
    tools: list[dict[str, Any]], *, required: bool, forced: str | None, response: dict[str, Any] | None
) -> list[tuple[Any, str]]:
    """The schemas ``select_grammar`` will convert for these choices, with where each is in the request."""
    if response is not None and not required and forced is None:
        return [(response, "response_format.json_schema.schema")]
    return [
        (tool["function"].get("parameters") or {}, f"tools[{i}].function.parameters")
        for i, tool in enumerate(tools)
        if tool.get("function") and (forced is None or tool["function"].get("name") == forced)
    ]


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()
