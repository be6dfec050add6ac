"""Vector indexes, one registry: where a knowledge base's chunk embeddings are searched.

``OPENGLM_VECTOR_INDEX`` names one; ``auto`` (the default) is ``pgvector`` (pgvector.py) where the database is
PostgreSQL with the ``vector`` extension, else ``flat``.

``flat`` keeps each searched base's embeddings as one float32 matrix in memory, loaded from the
chunks table (the source of truth) and refreshed when the base's ``index_version`` moves, and searches it
exactly: a matrix-vector product and a partial sort. At 100k chunks of 384 dimensions that is 150 MB and a few
milliseconds (docs/benchmarks.md), so below that scale an approximate index would trade recall for nothing.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..config import Settings
from ..errors import InternalError
from ..registry import Registry
from .store import KnowledgeStore

log = logging.getLogger(__name__)
Vector = npt.NDArray[np.float32]
INLINE_ROWS = 20_000  # smaller bases are searched on the event loop; larger ones in a thread


class VectorIndexUnavailable(InternalError):
    """The configured index cannot run on this database (a startup error; ``auto`` falls back to ``flat``)."""


class VectorIndex(abc.ABC):
    def __init__(self, store: KnowledgeStore):
        self.store = store

    @classmethod
    async def open(cls, store: KnowledgeStore, settings: Settings, dimensions: Collection[int]) -> VectorIndex:
        """The index, ready to search; ``dimensions`` are the catalog's embedding sizes. Raises
        ``VectorIndexUnavailable`` when this database cannot hold it."""
        return cls(store)

    @abc.abstractmethod
    async def search(self, knowledge_id: str, query: Vector, limit: int) -> list[tuple[int, float]]:
        """(chunk seq, cosine similarity) of the ``limit`` nearest chunks, nearest first."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass


vector_indexes: Registry[type[VectorIndex]] = Registry("vector index")


async def open_vector_index(settings: Settings, store: KnowledgeStore, dimensions: Collection[int]) -> VectorIndex:
    """The index ``settings.vector_index`` names, opened; ``auto`` tries ``pgvector`` on PostgreSQL, else ``flat``."""
    from . import pgvector  # noqa: F401 - registers "pgvector"

    name = settings.vector_index
    if name != "auto":
        return await vector_indexes.get(name).open(store, settings, dimensions)
    if store.db.dialect == "postgresql":
        try:
            return await vector_indexes.get("pgvector").open(store, settings, dimensions)
        except VectorIndexUnavailable as reason:
            log.info("vector index: flat (%s)", reason.message)
    return await vector_indexes.get("flat").open(store, settings, dimensions)


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
