"""``hermes-compact``: Hermes tool calls behind a short tool listing, for small models.

The calls, results and grammar are Hermes' own (``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``);
only the system prompt differs: one line per tool, ``name(arg: type, opt?: type): description``, instead of each
tool's JSON schema (argument descriptions are left out). Eight tools cost about a quarter of the tokens, which a
135M model with a short attention span reads better and which makes training on All Tools conversations several
times cheaper. Serving and fine-tuning both read the catalog's ``tool_parser``, so a model tuned on this listing is
served with it.
"""

from __future__ import annotations

import json
from typing import Any

from .base import parsers
from .hermes import HermesToolParser

HEADER = (
    "You can call tools. To call one, write\n"
    '<tool_call>\n{"name": "<tool>", "arguments": {<arguments as JSON>}}\n</tool_call>\n'
    "then wait for its result. Call a tool only when the request needs it; otherwise just answer.\n"
    "Tools:"
)


def type_of(schema: Any, depth: int = 0) -> str:
    """A schema as a short type: ``string``, ``"a"|"b"``, ``list[int]``, or compact JSON for nested objects.
    Schemas come from requests: anything unexpected is shown as ``any`` rather than refused here (the grammar's
    checks judge schemas)."""
    if not isinstance(schema, dict) or depth > 8:
        return "any"
    if isinstance(schema.get("enum"), list):
        return "|".join(json.dumps(value, ensure_ascii=False) for value in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return f"list[{type_of(schema.get('items'), depth + 1)}]"
    if kind == "object" or kind is None:
        if not schema.get("properties") and kind == "object":
            return "object"
        return json.dumps(schema, ensure_ascii=False, separators=(",", ":"))
    return kind if isinstance(kind, str) else "any"


def tool_line(function: dict[str, Any]) -> str:
    parameters = function.get("parameters")
    parameters = parameters if isinstance(parameters, dict) else {}
    properties = parameters.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = parameters.get("required")
    required = {name for name in required if isinstance(name, str)} if isinstance(required, list) else set()
    arguments = ", ".join(
        f"{name}{'' if name in required else '?'}: {type_of(schema)}" for name, schema in properties.items()
    )
    line = f"- {function['name']}({arguments})"
    description = " ".join(str(function.get("description") or "").split())
    return f"{line}: {description}" if description else line


@parsers.register("hermes-compact")
class HermesCompactParser(HermesToolParser):
    name = "hermes-compact"

    def system_prompt(self) -> str:
        lines = [tool_line(tool["function"]) for tool in self.tools if tool.get("function")]
        return "\n".join([HEADER, *lines])
