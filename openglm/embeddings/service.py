"""The embedding models a server offers ([[embeddings]] in the catalog): request checks, one backend per model
(created on first use), ``dimensions``, and the vectors in the client's encoding.

Decisions, like OpenAI's API where it has one:
- ``input`` is a string or a list of strings; empty strings and empty lists are 400s (1214), and so are
  token-id arrays (ids of another tokenizer would embed nonsense; send the text).
- An input over the model's token limit is refused (1261), not truncated.
- ``dimensions`` must be the model's own unless the entry sets ``truncate_dimensions`` (Matryoshka models):
  then any smaller value keeps the first components, renormalized. all-MiniLM-L6-v2 cannot truncate.
- ``encoding_format`` is ``float`` unless the client asks for ``base64`` (little-endian float32 bytes).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..catalog import Catalog, CatalogError, EmbeddingSpec
from ..errors import EngineError, InvalidFieldError, ModelNotFoundError
from ..protocol.embeddings import EmbeddingData, EmbeddingRequest, EmbeddingsResponse, EmbeddingUsage
from ..serving.usage import Tally, UsageBound, token_bound
from .backends import Embedded, EmbeddingBackend, TokenCounter, backend_class, create_backend
from .batching import Vectors

Encoding = Literal["float", "base64"]


@dataclass(frozen=True)
class EmbeddingPlan:
    name: str  # as the client sent it
    spec: EmbeddingSpec
    texts: list[str]
    dimensions: int
    encoding: Encoding

    def usage_bound(self) -> UsageBound:
        """The most the inputs can be billed for (metering reserves it before the model runs)."""
        return UsageBound(prompt_tokens=sum(token_bound(text) for text in self.texts))


def input_texts(value: str | list[str] | list[int] | list[list[int]], limit: int) -> list[str]:
    items: list[Any] = [value] if isinstance(value, str) else list(value)
    if not items:
        raise InvalidFieldError("input: must not be empty")
    texts = [item for item in items if isinstance(item, str)]
    if len(texts) != len(items):
        raise InvalidFieldError(
            "input: token-id arrays are not supported; send the text (the ids would be another tokenizer's). "
            "LangChain's OpenAIEmbeddings sends ids unless check_embedding_ctx_length=False"
        )
    if len(texts) > limit:
        raise InvalidFieldError(f"input: at most {limit} inputs per request, got {len(texts)}")
    for index, text in enumerate(texts):
        if not text:
            where = "input" if isinstance(value, str) else f"input[{index}]"
            raise InvalidFieldError(f"{where}: must not be an empty string")
    return texts


def output_dimensions(spec: EmbeddingSpec, requested: int | None) -> int:
    if requested is None or requested == spec.dimensions:
        return spec.dimensions
    if spec.truncate_dimensions:
        if 1 <= requested < spec.dimensions:
            return requested
        raise InvalidFieldError(f"dimensions: {spec.id} gives from 1 to {spec.dimensions} dimensions, not {requested}")
    raise InvalidFieldError(
        f"dimensions: {spec.id} gives {spec.dimensions}-dimensional vectors only (it cannot truncate); "
        f"omit dimensions or send {spec.dimensions}"
    )


def shorten(vectors: Vectors, dimensions: int) -> Vectors:
    """The first ``dimensions`` components of each vector, back to unit length."""
    if vectors.shape[1] == dimensions:
        return vectors
    cut = vectors[:, :dimensions]
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    return np.asarray(cut / np.where(norms == 0, 1, norms), dtype=np.float32)


def encode(vector: Vectors, encoding: Encoding) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    values: list[float] = vector.tolist()  # the exact float32 values as doubles: float and base64 agree
    return values


class EmbeddingService:
    def __init__(self, catalog: Catalog, threads: int):
        self.models = catalog.embeddings
        self.threads = threads
        self._backends: dict[str, EmbeddingBackend] = {}
        for spec in self.specs():
            try:
                backend_class(spec.engine)
            except KeyError as exc:
                raise CatalogError(f"embedding model {spec.id!r}: {exc.args[0]}") from None

    def specs(self) -> list[EmbeddingSpec]:
        return list({spec.id: spec for spec in self.models.values()}.values())

    async def start(self) -> None:
        """Load the entries marked ``preload``; the others load on their first request."""
        for spec in self.specs():
            if spec.preload:
                await self.backend(spec).start()

    def resolve(self, name: str) -> EmbeddingSpec:
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(sorted(self.models)) or "none is configured (add [[embeddings]] to the catalog)"
            message = f"模型不存在 / embedding model {name!r} does not exist; available: {known}"
            raise ModelNotFoundError(message) from None

    def plan(self, request: EmbeddingRequest) -> EmbeddingPlan:
        """Everything that can be refused before the model is touched."""
        spec = self.resolve(request.model)
        return EmbeddingPlan(
            name=request.model,
            spec=spec,
            texts=input_texts(request.input, spec.max_inputs),
            dimensions=output_dimensions(spec, request.dimensions),
            encoding=request.encoding_format or "float",
        )

    def backend(self, spec: EmbeddingSpec) -> EmbeddingBackend:
        backend = self._backends.get(spec.id)
        if backend is None:
            backend = self._backends[spec.id] = create_backend(spec, self.threads)
        return backend

    async def embed(self, spec: EmbeddingSpec, texts: Sequence[str], dimensions: int | None = None) -> Embedded:
        """Vectors for ``texts`` (for any caller inside the server, not only the HTTP route)."""
        embedded = await self.backend(spec).embed(texts)
        if embedded.vectors.shape != (len(texts), spec.dimensions):
            raise EngineError(
                f"{spec.id} gave vectors of shape {embedded.vectors.shape}; expected ({len(texts)}, {spec.dimensions})"
            )
        return Embedded(shorten(embedded.vectors, dimensions or spec.dimensions), embedded.tokens)

    async def token_counter(self, spec: EmbeddingSpec) -> TokenCounter:
        """The model's token count (no special tokens), callable from any thread: for sizing chunks."""
        return await self.backend(spec).token_counter()

    async def input_token_limit(self, spec: EmbeddingSpec) -> int | None:
        """Tokens one input may have, special tokens included (loads the model if needed to know)."""
        backend = self.backend(spec)
        await backend.start()
        return backend.input_token_limit

    async def run(self, plan: EmbeddingPlan, tally: Tally) -> EmbeddingsResponse:
        embedded = await self.embed(plan.spec, plan.texts, plan.dimensions)
        tally.prompt_tokens = embedded.tokens  # billed once the answer is ready
        data = [
            EmbeddingData.model_construct(index=index, embedding=encode(vector, plan.encoding))
            for index, vector in enumerate(embedded.vectors)
        ]
        usage = EmbeddingUsage(prompt_tokens=embedded.tokens, total_tokens=embedded.tokens)
        return EmbeddingsResponse(data=data, model=plan.name, usage=usage)

    def stats(self) -> dict[str, dict[str, Any]]:
        return {spec.id: self._backends[spec.id].stats() if spec.id in self._backends else {} for spec in self.specs()}

    async def close(self) -> None:
        for backend in self._backends.values():
            await backend.close()
        self._backends.clear()
