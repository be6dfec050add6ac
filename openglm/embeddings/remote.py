"""Any OpenAI-compatible ``/embeddings`` endpoint (vLLM, TEI, llama-server, another OpenGLM, Zhipu's platform).

``source`` is the API base (``http://gpu-box:8000/v1``); options: ``remote_model`` (the name upstream, default the
entry's id), ``api_key``, ``timeout`` (seconds, 120). A request's inputs go upstream as one call; the upstream
tokenizes, so its limits apply and its ``usage.prompt_tokens`` is what is billed (0 if it reports none). Upstream
errors are mapped like the remote chat engine's: 401/403/404 are the gateway's misconfiguration (1260), 429 is a
rate limit (1305), a prompt too long stays 1261, other 4xx are 400s.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from ..catalog import EmbeddingSpec
from ..engines.remote import remote_error
from ..errors import EngineError
from .backends import Embedded, EmbeddingBackend, embedding_backends
from .batching import Vectors


def decode_vector(value: Any) -> Vectors:
    """A float list, or base64 of little-endian float32 (what OpenAI's ``encoding_format: base64`` gives)."""
    if isinstance(value, str):
        return np.frombuffer(base64.b64decode(value, validate=True), dtype="<f4").astype(np.float32)
    return np.asarray(value, dtype=np.float32)


def parse_embeddings(payload: Any, count: int) -> Embedded:
    try:
        items = sorted(payload["data"], key=lambda item: int(item["index"]))
        vectors = np.stack([decode_vector(item["embedding"]) for item in items]) if items else None
        usage = payload.get("usage") or {}
        tokens = int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EngineError(f"the remote embedding endpoint answered something other than embeddings: {exc!r}") from None
    if vectors is None or vectors.ndim != 2 or len(vectors) != count:
        raise EngineError(f"the remote embedding endpoint returned {len(items)} vectors for {count} inputs")
    return Embedded(vectors, tokens)


@embedding_backends.register("remote")
class RemoteEmbeddings(EmbeddingBackend):
    def __init__(self, spec: EmbeddingSpec, threads: int):
        super().__init__(spec, threads)
        api_key = spec.options.get("api_key")
        self._client = httpx.AsyncClient(
            base_url=spec.source.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
            timeout=float(spec.options.get("timeout", 120)),
        )
        self.requests = 0

    async def embed(self, texts: Sequence[str]) -> Embedded:
        body = {"model": self.spec.options.get("remote_model", self.spec.id), "input": list(texts)}
        body["encoding_format"] = "float"  # every OpenAI-compatible server knows it; base64 is also decoded
        try:
            response = await self._client.post("/embeddings", json=body)
        except httpx.HTTPError as exc:
            raise EngineError(f"remote embedding endpoint {self.spec.source} is unreachable: {exc!r}") from None
        if response.status_code >= 400:
            raise remote_error(response.status_code, response.content)
        self.requests += 1
        try:
            payload = response.json()
        except ValueError:
            raise EngineError("the remote embedding endpoint did not answer JSON") from None
        return parse_embeddings(payload, len(texts))

    def stats(self) -> dict[str, Any]:
        return {"requests": self.requests}

    async def close(self) -> None:
        await self._client.aclose()
