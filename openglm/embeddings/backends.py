"""Embedding backends, one registry: ``sentence_transformers`` and ``llamacpp`` run a model in this process
(``local.py``), ``remote`` calls any OpenAI-compatible ``/embeddings`` (``remote.py``)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..catalog import EmbeddingSpec
from ..registry import Registry
from .batching import Vectors


@dataclass(frozen=True)
class Embedded:
    vectors: Vectors  # (inputs, dimensions), float32
    tokens: int  # input tokens, counted by the model's own tokenizer (or reported by the remote)


class EmbeddingBackend(abc.ABC):
    def __init__(self, spec: EmbeddingSpec, threads: int):
        self.spec = spec
        self.threads = threads

    async def start(self) -> None:  # noqa: B027 - optional hook: load now rather than on first use
        pass

    @abc.abstractmethod
    async def embed(self, texts: Sequence[str]) -> Embedded:
        """One vector per text, in order; raises PromptTooLongError for inputs over the model's limits."""

    def stats(self) -> dict[str, Any]:
        return {}

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass


embedding_backends: Registry[type[EmbeddingBackend]] = Registry("embedding backend")


def backend_class(engine: str) -> type[EmbeddingBackend]:
    """The backend registered as ``engine``; the built-ins register when their modules are imported."""
    from . import local, remote  # noqa: F401 - nothing heavy: each loads its libraries on first use

    return embedding_backends.get(engine)


def create_backend(spec: EmbeddingSpec, threads: int) -> EmbeddingBackend:
    return backend_class(spec.engine)(spec, threads)
