"""Hermes / Qwen tool calls: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .base import ParsedCall, ParseResult, ToolCallParser, parsers, partial_suffix
from .jsonscan import top_level_values

OPEN, CLOSE = "<tool_call>", "</tool_call>"


def parse_call_object(body: str) -> ParsedCall | None:
    """The call in a ``{"name": ..., "arguments": ...}`` object, as far as it is written.

    Only top-level keys count (a nested ``"name"`` inside the arguments is not the
    function's name), and the arguments are the raw text of their value, so they
    only grow while the object is being written.
    """
    values, finished = top_level_values(body)
    name_value = values.get("name")
    if name_value is None or not name_value.complete:
        return None
    name = _json_string(body[name_value.start : name_value.end])
    if name is None:
        return None
    args = values.get("arguments") or values.get("parameters")
    if args is None:
        return ParsedCall(name, "{}" if finished else "")
    raw = body[args.start : args.end]
    if raw.startswith('"'):  # arguments sent as a JSON-encoded string: usable once complete
        inner = _json_string(raw) if args.complete else None
        return ParsedCall(name, inner if inner is not None else "")
    return ParsedCall(name, raw if args.complete else raw.rstrip())


def _json_string(literal: str) -> str | None:
    try:
        value = json.loads(literal)
    except ValueError:
        return None
    return value if isinstance(value, str) else None


@parsers.register("hermes")
class HermesToolParser(ToolCallParser):
    name = "hermes"

    def parse(self, text: str, final: bool) -> ParseResult:
        result = ParseResult()
        pieces = text.split(OPEN)
        head = pieces[0]
        if len(pieces) > 1:
            result.content = head.rstrip()
        elif final:
            result.content = head
        else:  # a tag may be starting; whitespace before it would be dropped
            result.content = head[: len(head) - partial_suffix(head, OPEN)].rstrip()
        for i, piece in enumerate(pieces[1:], start=1):
            body = piece.partition(CLOSE)[0]
            if not final and i == len(pieces) - 1:  # still being written: a tag may be starting
                body = body[: len(body) - max(partial_suffix(body, CLOSE), partial_suffix(body, OPEN))]
            call = parse_call_object(body.strip())
            if call is None:
                if final:  # not a call after all: give the text back
                    result.content += OPEN + piece
                break
            result.calls.append(call)
        return result

    def system_prompt(self) -> str:
        listing = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in self.tools)
        return (
            "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n"
            f"<tools>\n{listing}\n</tools>\n\n"
            "For each function call, return a json object with function name and arguments "
            "within <tool_call></tool_call> XML tags:\n"
            '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
        )

    def render_calls(self, calls: Sequence[ParsedCall]) -> str:
        return "\n".join(
            f'{OPEN}\n{{"name": {json.dumps(call.name)}, "arguments": {call.arguments or "{}"}}}\n{CLOSE}'
            for call in calls
        )

    def call_triggers(self, openings: dict[str, list[str]], parallel: bool) -> tuple[str, ...]:
        # The opening tag, and what the call grammar puts right after it.
        return (r'(<tool_call>(?:\n(?:\{"?)?)?)$',)

    def call_grammar(self, argument_rules: dict[str, str], parallel: bool) -> str:
        alternatives = " | ".join(
            f'"{{\\"name\\": \\"{name}\\", \\"arguments\\": " {rule} "}}"' for name, rule in argument_rules.items()
        )
        repeat = ' ("\\n" call){0,7}' if parallel else ""
        return f'root ::= call{repeat}\ncall ::= "<tool_call>\\n" ({alternatives}) "\\n</tool_call>"\n'
