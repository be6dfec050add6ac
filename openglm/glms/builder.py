"""Create a GLM by conversation: one structured-output call per turn.

The builder model answers with one JSON object (``output_schema``: a reply to the user and the fields of the agent
it can set), whose grammar the chat service enforces, so even the 135M default model always answers in shape and,
with every string and list bounded, always finishes. ``merge`` folds that answer into the current draft: what the
model cannot set (model, knowledge bases, HTTP APIs, avatar, visibility) is kept, and a field it leaves empty
keeps the draft's value.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import EngineError, InvalidFieldError
from ..protocol.chat import ChatCompletionRequest, ChatMessage, JsonSchemaFormat, ResponseFormat
from ..protocol.glms import AgentConfig, BuiltinTool

# Bounds of the model's answer: every string and list is bounded so that generation always ends.
MAX_REPLY = 200
MAX_NAME = 40
MAX_DESCRIPTION = 160
MAX_INSTRUCTIONS = 800
MAX_PROMPTS = 4
MAX_PROMPT = 80
# Enough tokens for the longest answer the schema allows (a token is at least one character, plus the keys).
MAX_TOKENS = MAX_REPLY + MAX_NAME + MAX_DESCRIPTION + MAX_INSTRUCTIONS + MAX_PROMPTS * (MAX_PROMPT + 4) + 400
TEMPERATURE = 0.7
NEW_AGENT_NAME = "New agent"

TOOL_TEXTS: dict[str, str] = {
    "code_interpreter": "runs Python code (calculations, data, charts, files)",
    "web_browser": "searches the web and reads pages",
    "drawing_tool": "draws pictures from a description",
    "retrieval": "searches the knowledge bases attached to the agent",
}

SYSTEM_PROMPT = """You are the GLM builder. You help the user create an AI agent by conversation. Read the \
conversation and the current draft of the agent, then answer with one JSON object:
- "reply": a short message to the user: what you changed, and what they might add next.
- "name": a short name for the agent.
- "description": one sentence saying what the agent does.
- "instructions": the instructions the agent follows: its role, tone, what it should and should not do.
- "tools": the built-in tools the agent needs, from this list:
{tools}
- "starter_prompts": up to {max_prompts} example messages a user might send to the agent.
Keep everything the user did not ask to change as it is in the draft. Write in the user's language.

{draft}"""


@dataclass(frozen=True)
class Draft:
    """An agent being built: what ``POST /glms`` takes."""

    name: str
    description: str
    config: AgentConfig
    avatar: str = ""
    visibility: str = "private"


@dataclass(frozen=True)
class BuilderTurn:
    role: str  # user | assistant
    content: str


class BuilderOutput(BaseModel):
    """The model's answer, as ``output_schema`` shapes it (checked again: a remote engine may not hold grammars)."""

    model_config = ConfigDict(extra="ignore")

    reply: str
    name: str
    description: str
    instructions: str
    tools: list[str]
    starter_prompts: list[str]


def builder_tools(offered: Sequence[str], config: AgentConfig | None) -> list[str]:
    """The built-ins the builder may enable: those this server offers, in a stable order; retrieval only for a
    draft that has knowledge bases (the builder cannot attach them)."""
    has_knowledge = config is not None and bool(config.knowledge_ids)
    return [t for t in get_args(BuiltinTool) if t in offered and (t != "retrieval" or has_knowledge)]


def _bounded_string(max_length: int, min_length: int = 0) -> dict[str, Any]:
    return {"type": "string", "minLength": min_length, "maxLength": max_length}


def output_schema(tools: Sequence[str]) -> dict[str, Any]:
    """The JSON schema of the builder's answer; ``tools`` is the enum of built-ins it may choose."""
    tool_items = {"type": "string", "enum": list(tools)} if tools else _bounded_string(0)  # no tools: "[]" only
    properties = {
        "reply": _bounded_string(MAX_REPLY, 1),
        "name": _bounded_string(MAX_NAME, 1),
        "description": _bounded_string(MAX_DESCRIPTION),
        "instructions": _bounded_string(MAX_INSTRUCTIONS),
        "tools": {"type": "array", "items": tool_items, "maxItems": len(tools)},
        "starter_prompts": {"type": "array", "items": _bounded_string(MAX_PROMPT, 1), "maxItems": MAX_PROMPTS},
    }
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def check_turns(turns: Sequence[BuilderTurn]) -> None:
    if not turns:
        raise InvalidFieldError("messages: give at least one message")
    for i, turn in enumerate(turns):
        if turn.role not in ("user", "assistant"):
            raise InvalidFieldError(f"messages[{i}].role: 'user' or 'assistant', not {turn.role!r}")
        if not turn.content.strip():
            raise InvalidFieldError(f"messages[{i}].content is empty")
    if turns[-1].role != "user":
        raise InvalidFieldError("messages: the last message must be the user's")


def draft_json(draft: Draft | None) -> str:
    if draft is None:
        return "There is no draft yet: create one from what the user asks for."
    shown = {
        "name": draft.name,
        "description": draft.description,
        "instructions": draft.config.instructions,
        "tools": list(draft.config.tools),
        "starter_prompts": draft.config.starter_prompts,
    }
    return "Current draft:\n" + json.dumps(shown, ensure_ascii=False, indent=1)


def system_prompt(draft: Draft | None, tools: Sequence[str]) -> str:
    listed = "\n".join(f"  {t}: {TOOL_TEXTS.get(t, t)}" for t in tools) or "  (none: answer with an empty list)"
    return SYSTEM_PROMPT.format(tools=listed, max_prompts=MAX_PROMPTS, draft=draft_json(draft))


def chat_request(
    model: str, turns: Sequence[BuilderTurn], draft: Draft | None, tools: Sequence[str]
) -> ChatCompletionRequest:
    """The one structured-output call of a builder turn: instructions and draft, then the conversation."""
    check_turns(turns)
    messages = [ChatMessage(role="system", content=system_prompt(draft, tools))]
    messages += [ChatMessage(role="user" if t.role == "user" else "assistant", content=t.content) for t in turns]
    schema = JsonSchemaFormat.model_validate({"name": "glm_draft", "schema": output_schema(tools), "strict": True})
    return ChatCompletionRequest(
        model=model,
        messages=messages,
        response_format=ResponseFormat(type="json_schema", json_schema=schema),
        max_tokens=MAX_TOKENS,
        temperature=TEMPERATURE,
    )


def parse_output(content: str | None, finish_reason: str | None) -> BuilderOutput:
    if finish_reason == "length":
        raise EngineError("the builder model's answer was cut off before it was complete")
    try:
        return BuilderOutput.model_validate(json.loads(content or ""))
    except (ValueError, ValidationError) as exc:
        raise EngineError(f"the builder model's answer is not the draft it was asked for: {exc}") from None


def merge(draft: Draft | None, output: BuilderOutput, *, model: str, tools: Sequence[str]) -> tuple[str, Draft]:
    """The reply and the new draft. ``model``: the agent's model for a new draft; ``tools``: the built-ins the
    builder may enable (others in its answer are dropped)."""
    base = draft or Draft(name="", description="", config=AgentConfig(model=model))
    config = base.config
    chosen = [t for t in output.tools if t in tools]
    prompts = [p.strip()[:300] for p in output.starter_prompts if p.strip()]
    config = config.model_copy(
        update={
            "instructions": _text(output.instructions, config.instructions, MAX_INSTRUCTIONS),
            "tools": list(dict.fromkeys(chosen)) or config.tools,
            "starter_prompts": prompts[:MAX_PROMPTS] or config.starter_prompts,
        }
    )
    merged = replace(
        base,
        name=_text(output.name, base.name, 100) or NEW_AGENT_NAME,
        description=_text(output.description, base.description, 1000),
        config=AgentConfig.model_validate(config.model_dump()),  # validated as any saved configuration is
    )
    return output.reply.strip() or "Here is the draft.", merged


def _text(new: str, old: str, limit: int) -> str:
    """The model's text, or the draft's when the model left it empty."""
    return new.strip()[:limit] or old
