"""Training lines to token ids and labels, rendered by the template and tool-call format that serve the model.

A chat line is rendered the way serving would prompt for each of its assistant messages: the prompt for
assistant message i is ``template.render(messages[:i], tools)`` (after ``adapt_for_template``, as the chat service
does) and the target is ``template.render_reply(messages[i], ...)``: the content, the tool calls in the parser's
own format and the end-of-turn marker. Prompt pieces and replies are tokenized separately, each exactly as the
engine would see it: the prompt as one text (``tokenize_prompt``'s BOS rule), the reply as the tokens the model
would emit after it. Only reply tokens carry labels.

When a template renders a later prompt that does not extend the earlier prompt and reply (templates that drop
earlier reasoning, for example), the conversation is split: each such assistant message becomes its own example
with its full prompt, so no example ever trains on text serving would not show the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import InvalidFieldError
from ..serving.messages import adapt_for_template, normalize_raw_messages
from ..serving.templates.base import ChatTemplate, Message
from ..serving.toolcalls.base import ParserFactory, ToolCallParser

IGNORE = -100  # label of a token the loss skips


class Tokenizer(Protocol):
    def encode(self, text: str, *, prompt_start: bool) -> list[int]:
        """Token ids of ``text``; ``prompt_start``: it opens a prompt (the BOS rule of the engine applies)."""
        ...


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE, or the token itself where the model is trained to write it

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


@dataclass
class Preference:
    """A DPO pair: one prompt, the preferred and the rejected reply (each with its end-of-turn marker)."""

    prompt: list[int]
    chosen: list[int]
    rejected: list[int]

    def examples(self) -> tuple[Example, Example]:
        masked = [IGNORE] * len(self.prompt)
        return (
            Example(self.prompt + self.chosen, masked + self.chosen),
            Example(self.prompt + self.rejected, masked + self.rejected),
        )


class GGUFTokenizer:
    """The served GGUF's own vocabulary (llama.cpp, vocab only), with the engine's BOS rule."""

    def __init__(self, path: str):
        from ..engines.llamacpp.model import LlamaModel

        self.model = LlamaModel(path, vocab_only=True)

    def encode(self, text: str, *, prompt_start: bool) -> list[int]:
        model = self.model
        add_bos = prompt_start and model.adds_bos and not (model.bos_text and text.startswith(model.bos_text))
        return model.tokenize(text, add_special=add_bos, parse_special=True)

    def close(self) -> None:
        self.model.close()


@dataclass
class Renderer:
    """One model's serving template and tool-call parser, turned to training examples."""

    template: ChatTemplate
    parser: ParserFactory
    tokenizer: Tokenizer

    @classmethod
    def for_gguf(cls, path: str, template: str = "auto", tool_parser: str = "auto") -> Renderer:
        """The renderer serving would use for this GGUF under these catalog settings (``template``, ``tool_parser``)."""
        from ..serving.models import choose_parser
        from ..serving.templates.base import choose_template

        tokenizer = GGUFTokenizer(path)
        model = tokenizer.model
        hints = {
            "architecture": model.architecture,
            "chat_template": model.chat_template or "",
            "bos_token": model.bos_text,
            "eos_token": model.eos_text,
        }
        chosen = choose_template(template, hints)
        return cls(chosen, choose_parser(tool_parser, chosen), tokenizer)

    def chat(self, line: Mapping[str, Any]) -> list[Example]:
        """A chat SFT line (``messages``, optional ``tools``) as examples; usually one."""
        tools = _tools(line.get("tools"), self.template)
        messages = _normalized(line.get("messages"), "messages")
        weights = [m.get("weight", 1) if isinstance(m, dict) else 1 for m in line["messages"] if _is_assistant(m)]
        parser = self.parser(tools)
        adapted = adapt_for_template(messages, self.template, parser, tools)
        replies = [i for i, m in enumerate(adapted) if m["role"] == "assistant"]
        if not replies:
            raise InvalidFieldError("messages: a training conversation needs at least one assistant message")
        examples: list[Example] = []
        pieces: list[tuple[str, bool]] = []  # (text, trained) of the example being built
        consumed = ""
        for number, i in enumerate(replies):
            if number < len(weights) and weights[number] == 0:
                continue
            prompt = self.template.render(adapted[:i], tools or None)
            reply = self.template.render_reply(adapted[i], adapted[:i], tools or None)
            if pieces and not prompt.startswith(consumed):
                examples.append(self._tokenize(pieces))
                pieces, consumed = [], ""
            pieces += [(prompt[len(consumed) :], False), (reply, True)]
            consumed = prompt + reply
        if pieces:
            examples.append(self._tokenize(pieces))
        if not examples:
            raise InvalidFieldError("messages: every assistant message has weight 0; nothing to train on")
        return examples

    def preference(self, line: Mapping[str, Any]) -> Preference:
        """A DPO line: ``input`` {messages, tools}, ``preferred_output`` and ``non_preferred_output``."""
        source = line.get("input")
        if not isinstance(source, Mapping):
            raise InvalidFieldError("input: a DPO line needs an input object with messages")
        tools = _tools(source.get("tools"), self.template)
        messages = _normalized(source.get("messages"), "input.messages")
        parser = self.parser(tools)
        history = adapt_for_template(messages, self.template, parser, tools)
        prompt = self.template.render(history, tools or None)
        replies = []
        for field in ("preferred_output", "non_preferred_output"):
            output = _normalized(line.get(field), field)
            if len(output) != 1 or output[0]["role"] != "assistant":
                raise InvalidFieldError(f"{field}: must hold exactly one assistant message")
            (reply,) = adapt_for_template(output, self.template, parser, None)
            replies.append(self.template.render_reply(reply, history, tools or None))
        return Preference(
            self.tokenizer.encode(prompt, prompt_start=True),
            self.tokenizer.encode(replies[0], prompt_start=False),
            self.tokenizer.encode(replies[1], prompt_start=False),
        )

    def _tokenize(self, pieces: Sequence[tuple[str, bool]]) -> Example:
        ids: list[int] = []
        labels: list[int] = []
        for n, (text, trained) in enumerate(pieces):
            tokens = self.tokenizer.encode(text, prompt_start=n == 0)
            ids += tokens
            labels += tokens if trained else [IGNORE] * len(tokens)
        return Example(ids, labels)


def _is_assistant(message: Any) -> bool:
    return isinstance(message, dict) and message.get("role") == "assistant"


def _normalized(raw: Any, where: str) -> list[Message]:
    if not isinstance(raw, list) or not raw:
        raise InvalidFieldError(f"{where}: must be a non-empty list of messages")
    return normalize_raw_messages(raw, where)


def _tools(raw: Any, template: ChatTemplate) -> list[dict[str, Any]]:
    """The line's tools the chat service would pass on: functions, and the template's built-in tools."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise InvalidFieldError("tools: must be a list of tool objects")
    return [
        t
        for t in raw
        if (t.get("type", "function") == "function" and isinstance(t.get("function"), dict))
        or t.get("type") in template.builtin_tools
    ]


def served_text(reply: str, template: ChatTemplate) -> str:
    """What serving hands its parser for ``reply``: generation stops at the first stop marker, which it drops."""
    ends = [at for marker in template.stop_markers if marker and (at := reply.find(marker)) >= 0]
    return reply[: min(ends)] if ends else reply


def reply_calls(parser: ToolCallParser, reply: str, template: ChatTemplate) -> list[tuple[str, str]]:
    """The tool calls serving would read from a rendered reply."""
    return [(call.name, call.arguments) for call in parser.parse(served_text(reply, template), final=True).calls]
