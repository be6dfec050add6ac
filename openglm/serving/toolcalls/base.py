"""Tool-call parsers: model text in, content and tool calls out, streaming or not.

A parser only has to answer one question: given all the text so far (and
whether it is final), what is the content and what are the calls? Its
answer must be *prefix-stable*: content and each call's arguments only grow
as more text arrives, so anything ambiguous (a partial tag, a line that may
be a function name) is held back until it is decided. ``ToolCallStream``
diffs successive answers into OpenAI deltas, so streaming and non-streaming
share one code path and cannot disagree.
"""

from __future__ import annotations

import abc
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...registry import Registry


@dataclass
class ParsedCall:
    name: str
    arguments: str = ""


@dataclass
class ParseResult:
    content: str = ""
    calls: list[ParsedCall] = field(default_factory=list)


@dataclass
class ContentDelta:
    text: str


@dataclass
class ToolCallDelta:
    index: int
    arguments: str
    id: str | None = None  # set (with name) on a call's first delta only
    name: str | None = None


Delta = ContentDelta | ToolCallDelta


class ToolCallParser(abc.ABC):
    name: str = ""

    def __init__(self, tools: Sequence[dict[str, Any]]):
        self.tools = list(tools)
        # Functions by name; built-in tools (GLM-4's python, simple_browser, cogview) by type.
        self.tool_names = {t["function"]["name"] if t.get("function") else t["type"] for t in tools}

    @abc.abstractmethod
    def parse(self, text: str, final: bool) -> ParseResult: ...

    @abc.abstractmethod
    def system_prompt(self) -> str:
        """Tool instructions for chat templates that cannot render tools themselves."""

    @abc.abstractmethod
    def render_calls(self, calls: Sequence[ParsedCall]) -> str:
        """An assistant turn's tool calls, as the model would have written them."""

    def render_result(self, content: str, name: str | None) -> tuple[str, str]:
        """(role, content) for a tool result in templates without a tool role."""
        return "user", f"<tool_response>\n{content}\n</tool_response>"

    @abc.abstractmethod
    def call_grammar(self, argument_rules: dict[str, str], parallel: bool) -> str:
        """GBNF ``root`` forcing calls to the named functions (rule names for their arguments)."""

    def call_triggers(self, openings: dict[str, list[str]], parallel: bool) -> tuple[str, ...]:
        """Regexes marking the start of a call in free (``tool_choice="auto"``) output, for a lazy grammar.

        Each is searched for at the end of the output so far (it ends in ``$``); once one matches, the rest of
        the output must be what ``call_grammar`` accepts, starting from the match's first group. The text from
        that group to the end must therefore always be a prefix the call grammar accepts: match only once the
        model has committed to a call, and only texts that are surely valid. ``openings`` gives, per function,
        the starts of its arguments that its grammar surely accepts. No triggers: auto-mode calls are unguarded.
        """
        return ()


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


class ToolCallStream:
    """Feeds a parser growing text and yields only what is new."""

    def __init__(self, parser: ToolCallParser, id_factory: Callable[[], str] = new_call_id):
        self.parser = parser
        self.text = ""
        self._content_sent = 0
        self._calls_sent: list[tuple[str, int]] = []  # (id, arguments chars sent)
        self._new_id = id_factory

    @property
    def call_ids(self) -> list[str]:
        return [call_id for call_id, _ in self._calls_sent]

    def feed(self, text: str) -> list[Delta]:
        self.text += text
        return self._diff(self.parser.parse(self.text, final=False))

    def finish(self) -> list[Delta]:
        return self._diff(self.parser.parse(self.text, final=True))

    def _diff(self, result: ParseResult) -> list[Delta]:
        deltas: list[Delta] = []
        if len(result.content) > self._content_sent:
            deltas.append(ContentDelta(result.content[self._content_sent :]))
            self._content_sent = len(result.content)
        for index, call in enumerate(result.calls):
            if index == len(self._calls_sent):
                call_id = self._new_id()
                self._calls_sent.append((call_id, len(call.arguments)))
                deltas.append(ToolCallDelta(index, call.arguments, call_id, call.name))
                continue
            call_id, sent = self._calls_sent[index]
            if len(call.arguments) > sent:
                deltas.append(ToolCallDelta(index, call.arguments[sent:]))
                self._calls_sent[index] = (call_id, len(call.arguments))
        return deltas


def partial_suffix(text: str, marker: str) -> int:
    """Length of the longest end of ``text`` that begins ``marker`` (held back while streaming)."""
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-size:]):
            return size
    return 0


def stable_arguments(raw: str, final: bool) -> str:
    """Arguments text with an undecided tail held back: whitespace may be trimmed at the end."""
    text = raw.lstrip()
    return text.rstrip() if final else text.rstrip(" \t\r\n")


def arguments_from_object(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


ParserFactory = type[ToolCallParser]
parsers: Registry[ParserFactory] = Registry("tool-call parser")


def get_parser(name: str) -> ParserFactory:
    from . import glm4, hermes, hermes_compact, json_calls  # noqa: F401  (registers the built-ins)

    return parsers.get(name)
