"""GBNF grammars for JSON mode, JSON schemas and forced tool calls.

Grammars are what make ``tool_choice="required"``, a named function and
``response_format`` hold even for a 135M-parameter model: the sampler can only
pick tokens that keep the output inside the grammar.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import InvalidFieldError
from .grammar_limits import check_gbnf, check_schema
from .toolcalls.base import ToolCallParser

EMPTY_OBJECT: dict[str, Any] = {"type": "object", "properties": {}}
log = logging.getLogger(__name__)
_log_callback: Any = None
GGML_ERROR = 4  # ggml_log_level in the vendored ggml.h
# llama-cpp-python's converter lets raw control characters into strings, which JSON forbids
# (json.loads rejects them), so its ``char`` rule is replaced by a strict one.
STRICT_CHAR = r'char ::= [^"\\\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'


def _converter() -> Any:
    # Imported lazily: llama_cpp loads its shared library on import.
    from llama_cpp.llama_grammar import SchemaConverter

    return SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)  # type: ignore[no-untyped-call]


SMALL_RANGE = 256


def bounded_integers_as_enums(schema: Any) -> Any:
    """The converter ignores ``minimum``/``maximum``; a small integer range is exact as an enum."""
    if isinstance(schema, list):
        return [bounded_integers_as_enums(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: bounded_integers_as_enums(value) for key, value in schema.items()}
    low, high = _integer_bounds(out)
    if low is not None and high is not None and 0 <= high - low <= SMALL_RANGE:
        return {key: value for key, value in out.items() if key not in _BOUND_KEYS | {"type"}} | {
            "enum": list(range(low, high + 1))
        }
    return out


_BOUND_KEYS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}


def _integer_bounds(schema: dict[str, Any]) -> tuple[int | None, int | None]:
    if schema.get("type") != "integer" or "enum" in schema:
        return None, None
    low = high = None
    if isinstance(schema.get("minimum"), int):
        low = schema["minimum"]
    if isinstance(schema.get("exclusiveMinimum"), int):
        low = schema["exclusiveMinimum"] + 1
    if isinstance(schema.get("maximum"), int):
        high = schema["maximum"]
    if isinstance(schema.get("exclusiveMaximum"), int):
        high = schema["exclusiveMaximum"] - 1
    return low, high


def _visit(converter: Any, schema: dict[str, Any], name: str, where: str) -> str:
    check_schema(schema, where)  # before the converter expands anything
    try:
        resolved = converter.resolve_refs(bounded_integers_as_enums(schema), where)
        return str(converter.visit(resolved, name))
    except Exception as exc:  # the converter raises bare Exceptions on what it can't express
        raise InvalidFieldError(f"{where}: unsupported JSON schema: {exc}") from exc


def _rules(converter: Any) -> str:
    lines = str(converter.format_grammar()).splitlines()
    return "\n".join(STRICT_CHAR if line.startswith("char ::=") else line for line in lines) + "\n"


def json_schema_grammar(schema: dict[str, Any], where: str = "response_format.json_schema") -> str:
    converter = _converter()
    _visit(converter, schema, "", where)
    grammar = _rules(converter)
    check_gbnf(grammar, where)
    return grammar


def json_object_grammar() -> str:
    return json_schema_grammar({"type": "object"}, "response_format")


def lazy_tool_call_grammar(
    parser: ToolCallParser, tools: list[dict[str, Any]], parallel: bool
) -> tuple[str, tuple[str, ...]] | None:
    """For ``tool_choice="auto"``: the call grammar and the triggers after which output must follow it.

    The model is free to answer in prose; once it starts a call, the call is completed by the grammar, so it
    is never malformed. None when the parser has no triggers or no tool is a JSON function.
    """
    openings = {
        tool["function"]["name"]: _argument_openings(tool["function"].get("parameters") or EMPTY_OBJECT)
        for tool in tools
        if tool.get("function")
    }
    triggers = parser.call_triggers(openings, parallel) if openings else ()
    if not triggers:
        return None
    return tool_call_grammar(parser, tools, parallel), triggers


def _argument_openings(schema: dict[str, Any]) -> list[str]:
    """Starts of a JSON argument text that the schema's grammar surely accepts."""
    if schema.get("type", "object") != "object" or any(k in schema for k in ("anyOf", "oneOf", "allOf", "$ref")):
        return []
    return ["{", '{"'] if schema.get("properties") else ["{"]


def tool_call_grammar(parser: ToolCallParser, tools: list[dict[str, Any]], parallel: bool) -> str:
    """Only calls to ``tools``, each with arguments valid for its parameter schema."""
    converter = _converter()
    rules: dict[str, str] = {}
    functions = [tool for tool in tools if tool.get("function")]
    if not functions:
        raise InvalidFieldError("tool_choice: a call can only be forced to function tools")
    for i, tool in enumerate(functions):
        function = tool["function"]
        schema = function.get("parameters") or EMPTY_OBJECT
        rules[function["name"]] = _visit(converter, schema, f"args{i}", f"tools[{i}].function.parameters")
    grammar = parser.call_grammar(rules, parallel) + _rules(converter)
    check_gbnf(grammar, "tools")
    return grammar


def select_grammar(
    parser: ToolCallParser,
    tools: list[dict[str, Any]],
    *,
    required: bool,
    forced: str | None,
    parallel: bool,
    response_schema: dict[str, Any] | None,
) -> tuple[str | None, tuple[str, ...]]:
    """A chat request's grammar, and its triggers when it is lazy (auto mode: only a call the model starts is
    guarded). ``required``/``forced`` (a function name) force a call; ``response_schema`` is the response format's
    schema (``{"type": "object"}`` for JSON mode), None for text."""
    if required:
        return tool_call_grammar(parser, tools, parallel), ()
    if forced is not None:
        named = [t for t in tools if t.get("function", {}).get("name") == forced]
        if not named:
            raise InvalidFieldError(f"tool_choice names {forced!r}, which is not in tools")
        return tool_call_grammar(parser, named, False), ()
    if response_schema is not None:
        where = "response_format" if response_schema == {"type": "object"} else "response_format.json_schema"
        return json_schema_grammar(response_schema, where), ()
    if not tools:
        return None, ()
    lazy = lazy_tool_call_grammar(parser, tools, parallel)
    return lazy if lazy is not None else (None, ())


def checked_gbnf(grammar: str, where: str = "grammar") -> str:
    """A raw GBNF grammar (``/completions``' ``grammar``), refused when it could be costly for llama.cpp."""
    check_gbnf(grammar, where)
    return grammar


def parse_in_llama(grammar: str, where: str) -> None:
    """Parses ``grammar`` with llama.cpp's own GBNF parser (no vocabulary needed): what an engine will accept.

    Meant to run in a worker process (``grammar_compile``): should llama.cpp crash or run out of memory on it,
    only that worker is lost."""
    import llama_cpp as lc

    global _log_callback
    if _log_callback is None:  # llama.cpp echoes a refused grammar whole: keep the log to the start of each line
        _log_callback = lc.llama_log_callback(_short_log)
        lc.llama_log_set(_log_callback, None)
    sampler = lc.llama_sampler_init_grammar(None, grammar.encode(), b"root")
    if not sampler:
        raise InvalidFieldError(f"{where}: llama.cpp cannot parse the grammar (see the server log for where)")
    lc.llama_sampler_free(sampler)


def _short_log(level: int, text: bytes, _user_data: Any) -> None:
    if level == GGML_ERROR:
        log.warning("llama.cpp: %s", text[:300].decode(errors="replace").rstrip())
