"""Bare JSON tool calls: the whole reply is ``{"name": ..., "arguments": {...}}`` or a list of them."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .base import ParsedCall, ParseResult, ToolCallParser, arguments_from_object, parsers
from .hermes import parse_call_object


@parsers.register("json")
class JsonToolParser(ToolCallParser):
    name = "json"

    def parse(self, text: str, final: bool) -> ParseResult:
        body = text.strip()
        if not body or body[0] not in "{[":
            return ParseResult(content=text if final or body else "")
        if body[0] == "[":
            return self._parse_list(body, text) if final else ParseResult()
        call = parse_call_object(body)
        if call is not None and call.name in self.tool_names:
            return ParseResult(calls=[call])
        return ParseResult(content=text) if final else ParseResult()

    def _parse_list(self, body: str, text: str) -> ParseResult:
        try:
            items = json.loads(body)
        except (ValueError, RecursionError):  # model output: anything that is not a call list is content
            return ParseResult(content=text)
        calls = [
            ParsedCall(item["name"], arguments_from_object(item.get("arguments", item.get("parameters", {}))))
            for item in items
            if isinstance(item, dict) and item.get("name") in self.tool_names
        ]
        if not calls or len(calls) != len(items):
            return ParseResult(content=text)
        return ParseResult(calls=calls)

    def system_prompt(self) -> str:
        listing = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in self.tools)
        return (
            "You can call these functions:\n"
            f"{listing}\n\n"
            'To call a function, reply with only a JSON object {"name": <function-name>, '
            '"arguments": <args-json-object>}, or a JSON list of such objects for several calls.'
        )

    def render_calls(self, calls: Sequence[ParsedCall]) -> str:
        items = [f'{{"name": {json.dumps(c.name)}, "arguments": {c.arguments or "{}"}}}' for c in calls]
        return items[0] if len(items) == 1 else "[" + ", ".join(items) + "]"

    def call_triggers(self, openings: dict[str, list[str]], parallel: bool) -> tuple[str, ...]:
        # A reply that opens with {"name": is a call (a list of calls too, when parallel calls are allowed).
        list_start = r"\[?" if parallel else ""
        return (rf'^\s*({list_start}\{{"name"(?::(?: "?)?)?)$',)

    def call_grammar(self, argument_rules: dict[str, str], parallel: bool) -> str:
        alternatives = " | ".join(
            f'"{{\\"name\\": \\"{name}\\", \\"arguments\\": " {rule} "}}"' for name, rule in argument_rules.items()
        )
        root = 'call | "[" call (", " call){0,7} "]"' if parallel else "call"
        return f"root ::= {root}\ncall ::= {alternatives}\n"
