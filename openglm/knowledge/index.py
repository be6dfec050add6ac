"""Vector indexes, one registry: where a knowledge base's chunk embeddings are searched.

``flat`` (the default) keeps each searched base's embeddings as one float32 matrix in memory, loaded from the
chunks table (the source of truth) and refreshed when the base's ``index_version`` moves, and searches it
exactly: a matrix-vector product and a partial sort. At 100k chunks of 384 dimensions that is 150 MB and a few
milliseconds (docs/benchmarks.md), so below that scale an approximate index would trade recall for nothing.
"""

from __future__ import annotations

import abc
import asyncio
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..registry import Registry
from .store import KnowledgeStore

Vector = npt.NDArray[np.float32]
INLINE_ROWS = 20_000  # smaller bases are searched on the event loop; larger ones in a thread


class VectorIndex(abc.ABC):
    def __init__(self, store: KnowledgeStore):
        self.store = store

    @abc.abstractmethod
    async def search(self, knowledge_id: str, query: Vector, limit: int) -> list[tuple[int, float]]:
        """(chunk seq, cosine similarity) of the ``limit`` nearest chunks, nearest first."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass


vector_indexes: Registry[type[VectorIndex]] = Registry("vector index")


@dataclass
class _Matrix:
    version: int
    seqs: npt.NDArray[np.int64]
    vectors: Vector

    @property
    def nbytes(self) -> int:
        return int(self.vectors.nbytes + self.seqs.nbytes)


@vector_indexes.register("flat")
class FlatIndex(VectorIndex):
    """Exact search over in-memory matrices, at most ``max_bytes`` of them (least recently used go first)."""

    def __init__(self, store: KnowledgeStore, max_bytes: int = 1 << 30):
        super().__init__(store)
        self.max_bytes = max_bytes
        self._matrices: OrderedDict[str, _Matrix] = OrderedDict()
        self._loading: dict[str, asyncio.Lock] = {}

    async def search(self, knowledge_id: str, query: Vector, limit: int) -> list[tuple[int, float]]:
        matrix = await self._matrix(knowledge_id)
        if matrix is None or not len(matrix.seqs) or limit <= 0:
            return []
        if len(matrix.seqs) <= INLINE_ROWS:
            return nearest(matrix.seqs, matrix.vectors, query, limit)
        return await asyncio.to_thread(nearest, matrix.seqs, matrix.vectors, query, limit)

    async def _matrix(self, knowledge_id: str) -> _Matrix | None:
        version = await self.store.index_version(knowledge_id)
        if version is None:
            self._matrices.pop(knowledge_id, None)
            return None
        cached = self._matrices.get(knowledge_id)
        if cached is not None and cached.version == version:
            self._matrices.move_to_end(knowledge_id)
            return cached
        async with self._loading.setdefault(knowledge_id, asyncio.Lock()):
            cached = self._matrices.get(knowledge_id)
            if cached is None or cached.version != version:
                cached = await self._load(knowledge_id)
                self._keep(knowledge_id, cached)
        return cached

    async def _load(self, knowledge_id: str) -> _Matrix:
        seqs, blobs, version = await self.store.embeddings(knowledge_id)
        vectors = await asyncio.to_thread(_stack, blobs)
        return _Matrix(version, np.asarray(seqs, dtype=np.int64), vectors)

    def _keep(self, knowledge_id: str, matrix: _Matrix) -> None:
        self._matrices[knowledge_id] = matrix
        self._matrices.move_to_end(knowledge_id)
        while sum(m.nbytes for m in self._matrices.values()) > self.max_bytes and len(self._matrices) > 1:
            self._matrices.popitem(last=False)


def _stack(blobs: list[bytes]) -> Vector:
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1).astype(np.float32, copy=False)


def nearest(seqs: npt.NDArray[np.int64], vectors: Vector, query: Vector, limit: int) -> list[tuple[int, float]]:
    """Exact top ``limit`` by inner product (cosine: the vectors are unit length)."""
    scores = vectors @ query.astype(np.float32, copy=False)
    if limit < len(scores):
        top = np.argpartition(-scores, limit - 1)[:limit]
        top = top[np.argsort(-scores[top], kind="stable")]
    else:
        top = np.argsort(-scores, kind="stable")
    return [(int(seqs[i]), float(scores[i])) for i in top]
