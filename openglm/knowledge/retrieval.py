"""Hybrid retrieval: the query embedded and searched in the vector index, its terms searched in the full-text
index, the two rankings fused by reciprocal rank fusion, then an optional reranker, top-k and threshold.

The retrieval test endpoint and the chat ``retrieval`` tool both call ``Retriever.retrieve``: one code path, so a
test shows exactly what chat would get (a common complaint about other platforms is that they differ).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from ..catalog import EmbeddingSpec
from ..embeddings.service import EmbeddingService
from ..registry import Registry
from .fulltext import query_terms
from .fusion import reciprocal_rank_fusion
from .index import VectorIndex
from .records import ChunkRecord, KnowledgeRecord
from .store import KnowledgeStore

Mode = Literal["hybrid", "vector", "keyword"]
MIN_CANDIDATES = 20


@dataclass(frozen=True)
class RetrievalOptions:
    top_k: int = 5
    mode: Mode = "hybrid"
    # Chunks whose cosine similarity to the query is below this are dropped (keyword-only hits have none and are
    # kept in keyword mode only).
    score_threshold: float | None = None
    reranker: str | None = None


@dataclass(frozen=True)
class RetrievedChunk:
    chunk: ChunkRecord
    score: float  # the fused (or reranked) score: higher is better
    vector_score: float | None  # cosine similarity, when the vector search found it
    keyword_score: float | None  # BM25 (SQLite) or ts_rank_cd (PostgreSQL), when the full-text search found it


@dataclass(frozen=True)
class Retrieval:
    query: str
    chunks: list[RetrievedChunk] = field(default_factory=list)
    query_tokens: int = 0  # embedding tokens spent on the query (billed)


class Reranker(abc.ABC):
    """Reorders the fused candidates (a cross-encoder, a remote rerank API); the slot is empty by default."""

    @abc.abstractmethod
    async def rerank(self, query: str, candidates: list[RetrievedChunk]) -> list[RetrievedChunk]: ...


rerankers: Registry[type[Reranker]] = Registry("reranker")


class Retriever:
    def __init__(self, store: KnowledgeStore, index: VectorIndex, embeddings: EmbeddingService):
        self.store = store
        self.index = index
        self.embeddings = embeddings
        self._rerankers: dict[str, Reranker] = {}

    async def retrieve(self, knowledge: KnowledgeRecord, query: str, options: RetrievalOptions) -> Retrieval:
        vector, tokens = None, 0
        if options.mode != "keyword":
            embedded = await self.embeddings.embed(self._spec(knowledge), [query])
            vector, tokens = np.asarray(embedded.vectors[0]), embedded.tokens
        return await self.search(knowledge, query, vector, options, tokens)

    async def search(
        self,
        knowledge: KnowledgeRecord,
        query: str,
        vector: npt.NDArray[np.float32] | None,
        options: RetrievalOptions,
        query_tokens: int = 0,
    ) -> Retrieval:
        """``retrieve`` with the query already embedded (``vector``; None in keyword mode)."""
        candidates = max(options.top_k * 4, MIN_CANDIDATES)
        vector_hits: list[tuple[int, float]] = []
        keyword_hits: list[tuple[int, float]] = []
        if vector is not None and options.mode != "keyword":
            vector_hits = await self.index.search(knowledge.id, vector, candidates)
        if options.mode != "vector":
            keyword_hits = await self.store.text_search(knowledge.id, query_terms(query), candidates)
        fused = self._fuse(vector_hits, keyword_hits, options.mode)
        vector_scores, keyword_scores = dict(vector_hits), dict(keyword_hits)
        if options.score_threshold is not None and options.mode != "keyword":
            # keyword-only hits have no similarity to compare: in vector and hybrid modes they are dropped
            fused = [(seq, s) for seq, s in fused if vector_scores.get(seq, -2.0) >= options.score_threshold]
        if not options.reranker:
            fused = fused[: options.top_k]  # read only the chunks that are returned
        chunks = await self.store.chunks_by_seq([seq for seq, _ in fused])
        results = [
            RetrievedChunk(chunks[seq], score, vector_scores.get(seq), keyword_scores.get(seq))
            for seq, score in fused
            if seq in chunks  # a chunk deleted between the search and now is simply gone
        ]
        if options.reranker:
            results = await self._reranker(options.reranker).rerank(query, results)
        return Retrieval(query, results[: options.top_k], query_tokens)

    def _spec(self, knowledge: KnowledgeRecord) -> EmbeddingSpec:
        return self.embeddings.resolve(knowledge.embedding_model)

    @staticmethod
    def _fuse(
        vector_hits: list[tuple[int, float]], keyword_hits: list[tuple[int, float]], mode: Mode
    ) -> list[tuple[int, float]]:
        if mode == "vector":
            return vector_hits
        if mode == "keyword":
            return keyword_hits
        return reciprocal_rank_fusion([[seq for seq, _ in vector_hits], [seq for seq, _ in keyword_hits]])

    def _reranker(self, name: str) -> Reranker:
        if name not in self._rerankers:
            self._rerankers[name] = rerankers.get(name)()
        return self._rerankers[name]
