"""GLM-4 tool calls: ``name\\n{json}`` in the assistant turn's metadata slot.

The model writes the function name on the first line of its turn and the
JSON arguments below it; a reply without a call starts with an empty line.
Several calls are several ``<|assistant|>`` turns. Small or chatty models
sometimes write prose first and the ``name\\n{json}`` lines after it
(zai-org/GLM-4#474), so a line that is exactly a known function name
followed by a line opening a JSON object is a call wherever it starts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from .base import ParsedCall, ParseResult, ToolCallParser, parsers, partial_suffix, stable_arguments
from .jsonscan import scan_value

TURN = "<|assistant|>"


@parsers.register("glm4")
class GLM4ToolParser(ToolCallParser):
    name = "glm4"

    def parse(self, text: str, final: bool) -> ParseResult:
        result = ParseResult()
        turns = text.split(TURN)
        for i, turn in enumerate(turns):
            is_open = not final and i == len(turns) - 1
            if is_open:
                turn = turn[: len(turn) - partial_suffix(turn, TURN)]
            self._parse_turn(turn, is_open, result)
        return result

    def _parse_turn(self, turn: str, is_open: bool, result: ParseResult) -> None:
        head, newline, body = turn.partition("\n")
        name = head.strip()
        if not newline:  # still on the metadata line
            if is_open and self._could_be_name(name):
                return
            self._parse_prose(turn, is_open, result)
            return
        if name in self.tool_names:
            self._call(name, body, is_open, result)
            return
        if not name:
            self._parse_prose(body, is_open, result)
            return
        self._parse_prose(turn, is_open, result)

    def _could_be_name(self, partial: str) -> bool:
        return not partial or any(n.startswith(partial) for n in self.tool_names)

    def _parse_prose(self, text: str, is_open: bool, result: ParseResult) -> None:
        """Content, unless a line inside it starts a ``name\\n{`` call."""
        if self.tool_names:
            match = self._embedded_call(text)
            if match is not None:
                result.content += text[: match.start()].rstrip("\n")
                self._call(match.group("name"), text[match.end() :], is_open, result)
                return
            if is_open:
                # Trailing newlines stay back too: a call would swallow them.
                text = text[: self._undecided_tail(text)].rstrip("\n")
        result.content += text

    def _call(self, name: str, body: str, is_open: bool, result: ParseResult) -> None:
        """A call's body: a JSON object (text after it is prose again), or raw text for built-in tools."""
        at = len(body) - len(body.lstrip())
        if body[at : at + 1] != "{":
            result.calls.append(ParsedCall(name, stable_arguments(body, not is_open)))
            return
        value = scan_value(body, at)
        raw = body[value.start : value.end]
        result.calls.append(ParsedCall(name, raw if value.complete else raw.rstrip()))
        rest = body[value.end :].lstrip() if value.complete else ""
        if rest:  # the model went on writing after the arguments: prose, or another call
            after = ParseResult()
            self._parse_prose(rest, is_open, after)
            if after.content:
                result.content += ("\n" if result.content else "") + after.content
            result.calls.extend(after.calls)

    def _embedded_call(self, text: str) -> re.Match[str] | None:
        names = "|".join(re.escape(n) for n in sorted(self.tool_names, key=len, reverse=True))
        return re.search(rf"(?:^|\n)(?P<name>{names})[ \t]*\n(?=\s*\{{)", text)

    def _undecided_tail(self, text: str) -> int:
        """Where the part of ``text`` that may still turn into a call begins."""
        names = "|".join(re.escape(n) for n in self.tool_names)
        waiting = re.search(rf"(?:^|\n)(?:{names})[ \t]*\n\s*$", text)
        if waiting is not None:  # "name\n" and blank space, waiting for the "{" that makes it a call
            return waiting.start()
        lines = text.split("\n")
        last = lines[-1]
        cut = len(text) - len(last)
        if self._could_be_name(last.strip()) and last.strip():
            return cut
        return len(text)

    def system_prompt(self) -> str:
        from ..templates.glm4 import tools_block

        return tools_block(self.tools).removeprefix("<|system|>\n")

    def render_calls(self, calls: Sequence[ParsedCall]) -> str:
        return TURN.join(f"{call.name}\n{call.arguments}" for call in calls)

    def render_result(self, content: str, name: str | None) -> tuple[str, str]:
        return "observation", content

    def call_triggers(self, openings: dict[str, list[str]], parallel: bool) -> tuple[str, ...]:
        # A line that is a function's name, then the opening of its JSON arguments: where the parser sees a call.
        calls = "|".join(
            re.escape(name) + "\n(?:" + "|".join(re.escape(o) for o in starts) + ")"
            for name, starts in openings.items()
            if starts
        )
        return (rf"(?:^|(?<=<\|assistant\|>)|(?<=\n))((?:{calls}))$",) if calls else ()

    def call_grammar(self, argument_rules: dict[str, str], parallel: bool) -> str:
        # One call per turn: GLM-4 writes the next call in a new <|assistant|> turn.
        alternatives = " | ".join(f'{json.dumps(name)} "\\n" {rule}' for name, rule in argument_rules.items())
        return f"root ::= {alternatives}\n"
