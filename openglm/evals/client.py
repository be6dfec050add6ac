"""The eval's view of a server: its HTTP API, called the way any client calls it (an API key, ``/v1``)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

# The built-ins an All Tools agent is offered when a plain-chat suite asks it something (``EvalClient.reply``).
AGENT_TOOLS = ("code_interpreter", "web_browser", "drawing_tool")


class EvalApiError(Exception):
    """The server refused or failed a request; the message is its error body."""


@dataclass
class Reply:
    """A plain chat completion."""

    content: str
    tool_calls: list[tuple[str, str]]  # (name, arguments as written)
    finish_reason: str
    latency_s: float
    usage: dict[str, int] = field(default_factory=dict)


@dataclass
class ToolStep:
    """One built-in call of an All Tools turn: its type, its input, what it returned to the client."""

    type: str
    call_id: str = ""
    input: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class AgentTurn:
    """One glm-4-alltools request, read from its stream."""

    content: str = ""
    steps: list[ToolStep] = field(default_factory=list)
    functions: list[dict[str, str]] = field(default_factory=list)  # {"id", "name", "arguments"}
    status: str = ""
    finish_reason: str = ""
    conversation_id: str = ""
    latency_s: float = 0.0
    usage: dict[str, int] = field(default_factory=dict)

    @property
    def tools(self) -> list[str]:
        """Every tool and function called, in order (built-ins by type)."""
        return [step.type for step in self.steps] + [f"function:{f['name']}" for f in self.functions]


class EvalClient:
    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 600.0):
        self._kinds: dict[str, str] | None = None
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)

    async def close(self) -> None:
        await self.http.aclose()

    async def kind(self, model: str) -> str:
        """What the server lists ``model`` as: "chat", "agent", "embedding"…; "chat" for a name it does not list
        (a GLM id, an ``ft:`` model of another listing)."""
        if self._kinds is None:
            listing = await self.request("GET", "/v1/models")
            self._kinds = {m["id"]: str(m.get("kind", "chat")) for m in listing.get("data", [])}
        return self._kinds.get(model, "chat")

    async def reply(self, model: str, messages: list[dict[str, Any]], **params: Any) -> Reply:
        """A plain request's answer from any model: a chat model through chat completions, an All Tools agent
        through its stream with its built-in tools offered (as its users call it), so that plain-chat suites
        measure an agent as it answers everyday requests; the tools it called are the reply's ``tool_calls``."""
        if await self.kind(model) != "agent":
            return await self.chat(model, messages, **params)
        tools = [{"type": kind} for kind in AGENT_TOOLS]
        turn = await self.agent(model, messages, tools=tools, **params)
        calls = [(step.type, step.input) for step in turn.steps] + [(f["name"], f["arguments"]) for f in turn.functions]
        return Reply(turn.content, calls, turn.finish_reason, turn.latency_s, turn.usage)

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise EvalApiError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    async def chat(self, model: str, messages: list[dict[str, Any]], **params: Any) -> Reply:
        start = time.perf_counter()
        body = await self.request("POST", "/v1/chat/completions", json={"model": model, "messages": messages, **params})
        choice = body["choices"][0]
        message = choice["message"]
        calls = [(c["function"]["name"], c["function"]["arguments"]) for c in message.get("tool_calls") or []]
        return Reply(
            message.get("content") or "",
            calls,
            choice.get("finish_reason") or "",
            time.perf_counter() - start,
            body.get("usage") or {},
        )

    async def agent(self, model: str, messages: list[dict[str, Any]], **params: Any) -> AgentTurn:
        """One All Tools request, streamed; the turn as the client saw it."""
        turn = AgentTurn()
        start = time.perf_counter()
        body = {"model": model, "messages": messages, "stream": True, **params}
        async with self.http.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code >= 400:
                raise EvalApiError(f"agent {model}: {response.status_code} {(await response.aread())[:500]!r}")
            async for line in response.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    read_chunk(turn, json.loads(line[6:]))
        turn.latency_s = time.perf_counter() - start
        return turn

    async def download(self, url: str) -> bytes:
        """A file the server published (``…/v1/files/{id}/content``), with this client's key."""
        path = url[url.index("/v1/files/") :] if "/v1/files/" in url else url
        response = await self.http.get(path)
        if response.status_code >= 400:
            raise EvalApiError(f"download {path}: {response.status_code}")
        return response.content


def read_chunk(turn: AgentTurn, chunk: dict[str, Any]) -> None:
    if "error" in chunk:
        raise EvalApiError(f"stream error: {chunk['error']}")
    choice = chunk["choices"][0]
    delta = choice.get("delta") or {}
    turn.content += delta.get("content") or ""
    for call in delta.get("tool_calls") or []:
        kind = call.get("type")
        if kind == "function":
            _read_function(turn, call, whole=choice.get("finish_reason") is not None)
        elif delta.get("role") == "tool":
            step = next((s for s in reversed(turn.steps) if s.type == kind), None)
            if step is None:
                step = ToolStep(kind)
                turn.steps.append(step)
            step.outputs.extend(call[kind].get("outputs") or [])
        elif kind:
            fragment = call.get(kind, {}).get("input", "")
            last = turn.steps[-1] if turn.steps else None
            if last is None or last.type != kind or last.outputs or last.call_id != call.get("id", ""):
                last = ToolStep(kind, call.get("id", ""))
                turn.steps.append(last)
            last.input += fragment
    if choice.get("finish_reason"):
        turn.finish_reason = choice["finish_reason"]
    if chunk.get("status"):
        turn.status = chunk["status"]
    if chunk.get("conversation_id"):
        turn.conversation_id = chunk["conversation_id"]
    if chunk.get("usage"):
        turn.usage = chunk["usage"]


def _read_function(turn: AgentTurn, call: dict[str, Any], *, whole: bool) -> None:
    """Function calls arrive by index with their name while written and the whole arguments when they end."""
    function = call.get("function") or {}
    index = call.get("index", 0)
    while len(turn.functions) <= index:
        turn.functions.append({"id": "", "name": "", "arguments": ""})
    entry = turn.functions[index]
    entry["id"] = call.get("id") or entry["id"]
    entry["name"] = function.get("name") or entry["name"]
    if whole:
        entry["arguments"] = function.get("arguments") or entry["arguments"]
