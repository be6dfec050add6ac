"""Driving one All Tools task through the API as a client does: each user turn streamed to the agent, the user
functions the model calls run here and their results sent back, the conversation continued with what the
client saw. The eval and the training-data generator share this, so training conversations are exactly what
clients send."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..client import AgentTurn, EvalClient
from ..functions import BY_NAME
from .tasks import BUILTIN_TOOLS

FUNCTION_ROUNDS = 3  # function calls answered per user turn before the task is given up
# Tokens per model round: every answer and call of these tasks fits in far fewer; a model that rambles is cut
# here instead of writing to the end of its context (which took minutes per task on 2 cores).
MAX_TOKENS = 400


@dataclass
class Exchange:
    """One user turn: the requests it took (more than one when functions were called) and their turns."""

    user: str
    turns: list[AgentTurn] = field(default_factory=list)
    function_results: list[dict[str, Any]] = field(default_factory=list)  # results sent back, in order

    @property
    def answer(self) -> str:
        return self.turns[-1].content if self.turns else ""

    @property
    def tools(self) -> list[str]:
        return [tool for turn in self.turns for tool in turn.tools]


def request_tools(functions: list[str]) -> list[dict[str, Any]]:
    """The request's ``tools``: every built-in, then the user functions offered."""
    return [{"type": tool} for tool in BUILTIN_TOOLS] + [BY_NAME[name].definition() for name in functions]


def function_result(name: str, arguments: str) -> dict[str, Any]:
    """What the client's function returns (an error object for an unknown function or unreadable arguments)."""
    function = BY_NAME.get(name)
    if function is None:
        return {"error": f"unknown function {name!r}"}
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return {"error": "the arguments are not JSON"}
    if not isinstance(parsed, dict):
        return {"error": "the arguments are not a JSON object"}
    try:
        return function.call(parsed)
    except (TypeError, ValueError, AttributeError) as exc:  # arguments of the wrong types, as a real API would say
        return {"error": f"bad arguments: {exc}"}


async def drive(client: EvalClient, model: str, turns: list[str], functions: list[str]) -> list[Exchange]:
    tools = request_tools(functions)
    messages: list[dict[str, Any]] = []
    conversation: str | None = None
    exchanges = []
    for text in turns:
        exchange = Exchange(text)
        exchanges.append(exchange)
        messages.append({"role": "user", "content": text})
        for _ in range(FUNCTION_ROUNDS + 1):
            extra = {"conversation_id": conversation} if conversation else {}
            turn = await client.agent(model, messages, tools=tools, temperature=0, max_tokens=MAX_TOKENS, **extra)
            exchange.turns.append(turn)
            conversation = turn.conversation_id or conversation
            if turn.status != "requires_action" or not turn.functions:
                messages.append({"role": "assistant", "content": turn.content})
                break
            messages.append(
                {
                    "role": "assistant",
                    "content": turn.content or None,
                    "tool_calls": [
                        {
                            "id": f["id"],
                            "type": "function",
                            "function": {"name": f["name"], "arguments": f["arguments"]},
                        }
                        for f in turn.functions
                    ],
                }
            )
            for call in turn.functions:
                result = function_result(call["name"], call["arguments"])
                exchange.function_results.append(result)
                messages.append(
                    {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result, ensure_ascii=False)}
                )
        else:
            break  # still calling functions after FUNCTION_ROUNDS results: the task is lost
    return exchanges
