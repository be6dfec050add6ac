"""Any OpenAI-compatible server (vLLM, SGLang, llama-server, another OpenGLM) as an engine.

The chat template, tool-call parsing and grammars stay on this side: the
remote server receives the rendered prompt on ``/completions`` and returns
text, so a GPU box plugs in by URL and behaves like the in-process engine.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import EngineError, InvalidRequestError, PromptTooLongError, RateLimitError
from .base import Engine, GenerationChunk, GenerationHandle, GenerationRequest, engines

if TYPE_CHECKING:
    from ..catalog import ModelSpec
    from ..config import Settings


def completion_body(request: GenerationRequest, model: str, grammar_field: str) -> dict[str, Any]:
    sampling = request.sampling
    body: dict[str, Any] = {
        # A fine-tune is served by the remote's LoRA module of that name (vLLM: --lora-modules name=path).
        "model": request.adapter.key if request.adapter is not None else model,
        "prompt": request.prompt,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": max(sampling.temperature, 0.0),
        "top_p": sampling.top_p,
        "presence_penalty": sampling.presence_penalty,
        "frequency_penalty": sampling.frequency_penalty,
    }
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    stops = list(dict.fromkeys([*request.stop_markers, *request.stop]))
    if stops:
        body["stop"] = stops
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    if sampling.top_k > 0:
        body["top_k"] = sampling.top_k
    if sampling.min_p > 0:
        body["min_p"] = sampling.min_p
    if sampling.repetition_penalty != 1.0:
        body["repetition_penalty"] = sampling.repetition_penalty
    if sampling.logit_bias:
        body["logit_bias"] = {str(k): v for k, v in sampling.logit_bias.items()}
    # A lazy grammar (auto-mode tool calls) has no portable wire form: an upstream given only the grammar would
    # force a call on every reply, so it is not sent and such calls are parsed unguarded.
    if request.grammar and not request.grammar_triggers:
        _set_path(body, grammar_field, request.grammar)
    return body


def chat_body(request: GenerationRequest, model: str) -> dict[str, Any]:
    """A request with images as the upstream's ``/chat/completions`` takes it: the messages, the same sampling."""
    completion = completion_body(request, model, "grammar")
    body = {k: v for k, v in completion.items() if k not in ("prompt", "grammar", "top_k", "min_p")}
    body["messages"] = list(request.messages or ())
    body.pop("stop", None)
    if request.stop:
        body["stop"] = list(request.stop)
    return body


def _set_path(body: dict[str, Any], path: str, value: Any) -> None:
    """``a.b`` sets ``body["a"]["b"]``: vLLM nests its grammar under ``structured_outputs``."""
    *parents, leaf = path.split(".")
    for key in parents:
        body = body.setdefault(key, {})
    body[leaf] = value


def remote_error(status: int, payload: bytes) -> Exception:
    try:
        error = json.loads(payload)["error"]
        message = str(error.get("message", error))
        code = str(error.get("code", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        message, code = payload.decode("utf-8", "replace")[:500], ""
    if code == "1261" or ("context" in message.lower() and "length" in message.lower()):
        return PromptTooLongError(f"remote engine: {message}")
    if status in (401, 403, 404):  # the gateway's credentials or model name are wrong, not the caller's request
        return EngineError(f"remote engine refused the gateway ({status}); check its url, api_key and model: {message}")
    if status == 429:
        return RateLimitError(f"remote engine is overloaded, retry later: {message}")
    if 400 <= status < 500:
        return InvalidRequestError(f"remote engine rejected the request: {message}")
    return EngineError(f"remote engine failed ({status}): {message}")


def _event(data: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except ValueError:
        raise EngineError(f"remote engine sent an unreadable event: {data[:200]!r}") from None
    if not isinstance(event, dict):
        raise EngineError(f"remote engine sent an unexpected event: {data[:200]!r}")
    return event


class RemoteHandle(GenerationHandle):
    def __init__(self, response: httpx.Response):
        self._response = response
        self._counted = 0
        self._closing: asyncio.Task[None] | None = None

    def __aiter__(self) -> AsyncIterator[GenerationChunk]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[GenerationChunk]:
        finish: str | None = None
        try:
            async for line in self._response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                event = _event(data)
                if "error" in event:
                    error = event["error"]
                    message = error.get("message", error) if isinstance(error, dict) else error
                    raise EngineError(f"remote engine: {message}")
                for choice in event.get("choices") or []:
                    finish = choice.get("finish_reason") or finish
                    text = choice.get("text") or (choice.get("delta") or {}).get("content") or ""
                    if text:
                        self._counted += 1
                        yield GenerationChunk(text, 1)
                if event.get("usage"):  # after the choices: a server may send both in one event
                    self.prompt_tokens = int(event["usage"].get("prompt_tokens", 0))
                    total = int(event["usage"].get("completion_tokens", self._counted))
                    if total > self._counted:
                        yield GenerationChunk("", total - self._counted)
                        self._counted = total
        except httpx.HTTPError as exc:
            raise EngineError(f"remote engine connection failed: {exc}") from exc
        finally:
            await self._response.aclose()
        yield GenerationChunk("", 0, [], "length" if finish == "length" else "stop")

    def cancel(self) -> None:
        # Closing the stream makes the remote server cancel the generation.
        if not self._response.is_closed and self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._response.aclose())


@engines.register("remote")
class RemoteEngine(Engine):
    """Options: remote_model (name the server knows), api_key, grammar_field, timeout.

    A request with a LoRA adapter is sent with the adapter's key as its ``model``: the server must serve a LoRA
    module of that name on this base (vLLM: ``--enable-lora --lora-modules <key>=<path>``). Its ``path`` and
    ``scale`` stay here: a vLLM module is applied at its trained scale.
    """

    serves_adapters = True
    takes_messages = True
    reports_logprobs = False  # the upstream's logprobs are not asked for nor read back

    def __init__(self, spec: ModelSpec, settings: Settings):
        self.spec = spec
        self.base_url = spec.source.rstrip("/")
        options = spec.options
        self.remote_model = str(options.get("remote_model", spec.id))
        self.grammar_field = str(options.get("grammar_field", "grammar"))
        headers = {"Authorization": f"Bearer {options['api_key']}"} if options.get("api_key") else {}
        timeout = httpx.Timeout(float(options.get("timeout", settings.stream_timeout)), connect=10.0)
        self._client = httpx.AsyncClient(headers=headers, timeout=timeout)

    async def stop(self) -> None:
        await self._client.aclose()

    async def count_tokens(self, prompt: str) -> int:
        """The upstream's own count: its ``/tokenize`` (vLLM and SGLang answer ``count``, llama-server ``tokens``),
        else a one-token ``/completions`` call's ``usage.prompt_tokens`` (any OpenAI-compatible server)."""
        root = self.base_url.removesuffix("/v1")
        body = {"model": self.remote_model, "prompt": prompt, "content": prompt, "add_special": True}
        try:
            response = await self._client.post(f"{root}/tokenize", json=body)
            if response.status_code == 200:
                answer = response.json()
                if isinstance(answer.get("count"), int):
                    return int(answer["count"])
                if isinstance(answer.get("tokens"), list):
                    return len(answer["tokens"])
            fallback = {"model": self.remote_model, "prompt": prompt, "max_tokens": 1, "temperature": 0}
            response = await self._client.post(f"{self.base_url}/completions", json=fallback)
        except (httpx.HTTPError, ValueError) as exc:
            raise EngineError(f"remote engine {self.base_url} could not count tokens: {exc}") from exc
        if response.status_code != 200:
            raise remote_error(response.status_code, response.content)
        try:
            return int(response.json()["usage"]["prompt_tokens"])
        except (ValueError, KeyError, TypeError) as exc:
            raise EngineError(f"remote engine {self.base_url} gave no prompt token count") from exc

    async def submit(self, request: GenerationRequest) -> GenerationHandle:
        if request.messages is not None:  # images: the upstream's own chat template reads them (GLM-4V on vLLM)
            body = chat_body(request, self.remote_model)
            http_request = self._client.build_request("POST", f"{self.base_url}/chat/completions", json=body)
        else:
            body = completion_body(request, self.remote_model, self.grammar_field)
            http_request = self._client.build_request("POST", f"{self.base_url}/completions", json=body)
        try:
            response = await self._client.send(http_request, stream=True)
        except httpx.HTTPError as exc:
            raise EngineError(f"remote engine {self.base_url} is unreachable: {exc}") from exc
        if response.status_code != 200:
            payload = await response.aread()
            await response.aclose()
            raise remote_error(response.status_code, payload)
        handle = RemoteHandle(response)
        handle.ends_at_stop_strings = bool(request.stop)
        return handle
