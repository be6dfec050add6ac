"""Embedding backends, one registry: ``sentence_transformers`` and ``llamacpp`` run a model in this process
(``local.py``), ``remote`` calls any OpenAI-compatible ``/embeddings`` (``remote.py``)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
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

    async def token_counter(self) -> TokenCounter:
        """A counter of the model's tokens in a text (special tokens left out), safe to call from any thread: what
        chunking sizes chunks by. Without a tokenizer here (a remote model), the chunker's regex estimate."""
        from ..knowledge.options import approximate_tokens

        return approximate_tokens

    @property
    def input_token_limit(self) -> int | None:
        """Tokens one input may have, special tokens included, once known (after ``start``)."""
        return self.spec.max_input_tokens

    def stats(self) -> dict[str, Any]:
        return {}

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass


TokenCounter = Callable[[str], int]
embedding_backends: Registry[type[EmbeddingBackend]] = Registry("embedding backend")


def backend_class(engine: str) -> type[EmbeddingBackend]:
    """The backend registered as ``engine``; the built-ins register when their modules are imported."""
    from . import local, remote  # noqa: F401 - nothing heavy: each loads its libraries on first use

    return embedding_backends.get(engine)


def create_backend(spec: EmbeddingSpec, threads: int) -> EmbeddingBackend:
    return backend_class(spec.engine)(spec, threads)
