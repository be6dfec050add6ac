"""Hermes / Qwen tool calls: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from .base import (
    ParsedCall,
    ParseResult,
    ToolCallParser,
    arguments_from_object,
    parsers,
    partial_suffix,
    stable_arguments,
)

OPEN, CLOSE = "<tool_call>", "</tool_call>"
NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
ARGUMENTS = re.compile(r'"(?:arguments|parameters)"\s*:\s*')


def parse_call_object(body: str, closed: bool) -> ParsedCall | None:
    """The call inside one ``{"name": ..., "arguments": ...}`` object, as far as it is written."""
    if closed:
        try:
            obj = json.loads(body)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("name"), str):
            args = obj.get("arguments", obj.get("parameters", {}))
            raw = _raw_arguments(body)
            # Keep the model's own spelling when "arguments" is the last key.
            if raw is not None and _is_json(raw) and json.loads(raw) == args:
                return ParsedCall(obj["name"], raw)
            return ParsedCall(obj["name"], arguments_from_object(args))
    name = NAME.search(body)
    if name is None:
        return None
    args_at = ARGUMENTS.search(body)
    if args_at is None or args_at.start() < name.start():
        # Arguments not started, or written before the name: wait for the whole object.
        return ParsedCall(json.loads(f'"{name.group(1)}"'), "")
    tail = body[args_at.end() :]
    if closed:
        return ParsedCall(json.loads(f'"{name.group(1)}"'), _strip_outer_brace(tail))
    # While streaming, the object's closing brace may be the last "}" written.
    return ParsedCall(json.loads(f'"{name.group(1)}"'), stable_arguments(tail, False).rstrip("}").rstrip())


def _raw_arguments(body: str) -> str | None:
    name, args_at = NAME.search(body), ARGUMENTS.search(body)
    if name is None or args_at is None or args_at.start() < name.start():
        return None
    return _strip_outer_brace(body[args_at.end() :])


def _strip_outer_brace(tail: str) -> str:
    text = tail.strip()
    return text[:-1].rstrip() if text.endswith("}") else text


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


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
            body, closed_tag, _ = piece.partition(CLOSE)
            is_last = i == len(pieces) - 1
            closed = bool(closed_tag) or (final and is_last)
            if not closed:
                body = body[: len(body) - partial_suffix(body, CLOSE)]
            call = parse_call_object(body.strip(), closed)
            if call is None:
                if final:  # not a call after all: give the text back
                    result.content += OPEN + piece
                break
            if closed and not _is_json(call.arguments):
                call.arguments = stable_arguments(call.arguments, True)
            result.calls.append(call)
            if not closed:
                break
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

    def call_grammar(self, argument_rules: dict[str, str], parallel: bool) -> str:
        alternatives = " | ".join(
            f'"{{\\"name\\": \\"{name}\\", \\"arguments\\": " {rule} "}}"' for name, rule in argument_rules.items()
        )
        repeat = ' ("\\n" call){0,7}' if parallel else ""
        return f'root ::= call{repeat}\ncall ::= "<tool_call>\\n" ({alternatives}) "\\n</tool_call>"\n'
