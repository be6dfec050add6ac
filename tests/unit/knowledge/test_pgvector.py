"""The pgvector index on a real PostgreSQL with pgvector (pgserver, started once per session; a fresh database per
test): the same answers as the flat index where it scans exactly, recall@10 ≥ 0.95 through the HNSW index (which
the planner really uses) with other bases' vectors in the same index, embeddings copied exactly from the chunks
table, inserts and deletes followed, and a clear startup error where the extension is missing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from openglm.config import Settings
from openglm.knowledge.fulltext import search_text
from openglm.knowledge.index import FlatIndex, VectorIndex, VectorIndexUnavailable, open_vector_index
from openglm.knowledge.pgvector import PgVectorIndex, approximate_query
from openglm.knowledge.records import DocumentRecord, KnowledgeRecord
from openglm.knowledge.store import KnowledgeStore, NewChunk
from openglm.store.db import Database, open_database
from openglm.store.models import Account

from ...databases import database_url


@pytest.fixture
def db_kind() -> str:
    return "pgvector"


@pytest.fixture
async def store(database: Database) -> KnowledgeStore:
    async with database.session() as session:
        session.add(Account(id="acct", name="a"))
    return KnowledgeStore(database)


async def opened(store: KnowledgeStore, **options: int) -> PgVectorIndex:
    index = PgVectorIndex(store, **options)
    await index.prepare()
    return index


def unit_vectors(rng: np.random.Generator, count: int, dims: int) -> np.ndarray:
    vectors = rng.standard_normal((count, dims)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


async def base(store: KnowledgeStore, dims: int) -> KnowledgeRecord:
    return await store.create(
        "acct", name="kb", embedding_model="m", dimensions=dims, chunk_tokens=64, overlap_tokens=8
    )


async def document(store: KnowledgeStore, kb: KnowledgeRecord, name: str, vectors: np.ndarray) -> DocumentRecord:
    record, _ = await store.add_document("acct", kb.id, name=name, content_hash=name, file_id=None, options={})
    chunks = [
        NewChunk(i, i, i + 1, f"{name} {i}", search_text(f"{name} {i}"), [], None, "text", 2, v.astype("<f4").tobytes())
        for i, v in enumerate(vectors)
    ]
    assert await store.store_chunks(record, "x" * len(chunks), chunks)
    return record


async def vector_rows(database: Database, knowledge_id: str) -> int:
    async with database.engine.connect() as connection:
        count = await connection.scalar(
            text("SELECT count(*) FROM knowledge_vectors WHERE knowledge_id = :kb"), {"kb": knowledge_id}
        )
    return int(count or 0)


def assert_same(found: list[tuple[int, float]], exact: list[tuple[int, float]]) -> None:
    """The same chunks in the same order, with the same cosine similarities (float32 rounding aside)."""
    assert [seq for seq, _ in found] == [seq for seq, _ in exact]
    assert [score for _, score in found] == pytest.approx([score for _, score in exact], abs=1e-5)


def recall(found: list[tuple[int, float]], exact: list[tuple[int, float]]) -> float:
    return len({s for s, _ in found} & {s for s, _ in exact}) / len(exact)


async def test_it_finds_what_the_flat_index_finds(store: KnowledgeStore) -> None:
    rng = np.random.default_rng(1)
    index, flat = await opened(store), FlatIndex(store)
    one, two = await base(store, 8), await base(store, 8)
    await document(store, one, "a", unit_vectors(rng, 60, 8))
    await document(store, one, "b", unit_vectors(rng, 40, 8))
    await document(store, two, "c", unit_vectors(rng, 50, 8))
    for query in unit_vectors(rng, 10, 8):
        for kb in (one, two):
            for limit in (1, 7, 500):
                assert_same(await index.search(kb.id, query, limit), await flat.search(kb.id, query, limit))
    assert await index.search(one.id, unit_vectors(rng, 1, 8)[0], 0) == []
    assert await index.search("no such base", unit_vectors(rng, 1, 8)[0], 5) == []


async def test_the_hnsw_index_is_used_and_recalls_what_an_exact_search_finds(
    store: KnowledgeStore, database: Database
) -> None:
    rng, dims = np.random.default_rng(2), 64
    index, flat = await opened(store, exact_rows=100), FlatIndex(store)  # the default ef_search
    big, other, small, tiny = [await base(store, dims) for _ in range(4)]
    await index.prepare({dims})  # what the server does with the catalog's sizes: the HNSW index exists before rows
    assert dims in index.indexed
    for i in range(3):
        await document(store, big, f"big{i}", unit_vectors(rng, 1000, dims))
    await document(store, other, "other", unit_vectors(rng, 1500, dims))
    await document(store, small, "small", unit_vectors(rng, 150, dims))
    await document(store, tiny, "tiny", unit_vectors(rng, 20, dims))
    async with database.engine.connect() as connection:
        await connection.exec_driver_sql("ANALYZE knowledge_vectors")
    plan = await index.explain(big.id, unit_vectors(rng, 1, dims)[0], 10)
    assert f"Index Scan using ix_knowledge_vectors_hnsw_{dims}" in plan, plan

    queries: list[str] = []
    fetch = index._fetch

    async def recording(query: str, *args: object, **kwargs: object) -> list[tuple[int, float]]:
        queries.append(query)
        return await fetch(query, *args, **kwargs)  # type: ignore[arg-type]

    index._fetch = recording  # type: ignore[method-assign]
    for kb in (big, other):
        recalls = []
        for query in unit_vectors(rng, 30, dims):
            found, exact = await index.search(kb.id, query, 10), await flat.search(kb.id, query, 10)
            recalls.append(recall(found, exact))
            assert len(found) == 10 and [score for _, score in found] == sorted((s for _, s in found), reverse=True)
        assert np.mean(recalls) >= 0.95, (kb.name, np.mean(recalls))
    assert queries and all(q == approximate_query(dims) for q in queries)

    # Small bases (the planner may sort them exactly instead of walking the graph; either way they are found)
    index.exact_rows = 10
    for kb in (small, tiny):
        recalls = [
            recall(await index.search(kb.id, q, 10), await flat.search(kb.id, q, 10))
            for q in unit_vectors(rng, 10, dims)
        ]
        assert np.mean(recalls) >= 0.95, (kb.name, np.mean(recalls))


async def test_ef_search_is_raised_until_enough_of_the_base_is_found(store: KnowledgeStore) -> None:
    """pgvector 0.6 filters the ``ef_search`` nearest of every base's vectors by base afterwards: when too few are
    the base's own, the search is repeated with a larger ef_search (remembered for the base), then done exactly."""
    index = await opened(store, exact_rows=5, ef_search=40)
    await index.prepare({4})
    kb = await base(store, 4)
    await document(store, kb, "d", unit_vectors(np.random.default_rng(7), 30, 4))
    asked: list[int | None] = []
    enough_from = 640

    async def fetch(query: str, values: dict[str, object], *, ef_search: int | None = None) -> list[tuple[int, float]]:
        asked.append(ef_search)
        found = 10 if ef_search is None or ef_search >= enough_from else 3
        return [(i, 0.5) for i in range(found)]

    index._fetch = fetch  # type: ignore[method-assign]
    query = unit_vectors(np.random.default_rng(8), 1, 4)[0]
    assert len(await index.search(kb.id, query, 10)) == 10 and asked == [40, 160, 640]
    asked.clear()
    assert len(await index.search(kb.id, query, 10)) == 10 and asked == [640]  # remembered
    asked.clear()
    enough_from = 10_000
    await index.search(kb.id, query, 10)
    assert asked == [640, 1000, None]  # none was enough: the exact scan


async def test_the_index_follows_inserts_and_deletes(store: KnowledgeStore, database: Database) -> None:
    rng = np.random.default_rng(3)
    index = await opened(store)
    kb, other = await base(store, 4), await base(store, 4)
    first = await document(store, kb, "first", unit_vectors(rng, 5, 4))
    second = await document(store, kb, "second", unit_vectors(rng, 3, 4))
    await document(store, other, "other", unit_vectors(rng, 4, 4))
    query = unit_vectors(rng, 1, 4)[0]
    assert len(await index.search(kb.id, query, 100)) == 8 and await vector_rows(database, kb.id) == 8
    await document(store, kb, "second", unit_vectors(rng, 2, 4))  # chunked again: its old chunks are replaced
    assert len(await index.search(kb.id, query, 100)) == 7 and await vector_rows(database, kb.id) == 7
    await store.delete_document("acct", second.id)
    hits = await index.search(kb.id, query, 100)
    assert len(hits) == 5 and set((await store.chunks_by_seq([s for s, _ in hits])).keys()) == {s for s, _ in hits}
    assert {c.document_id for c in (await store.chunks_by_seq([s for s, _ in hits])).values()} == {first.id}
    await store.remove("acct", kb.id)
    assert await index.search(kb.id, query, 100) == [] and await vector_rows(database, kb.id) == 0
    assert len(await index.search(other.id, query, 100)) == 4  # another base is untouched


async def test_chunks_written_before_it_opened_are_copied(store: KnowledgeStore, database: Database) -> None:
    rng = np.random.default_rng(4)
    kb = await base(store, 16)
    await document(store, kb, "early", unit_vectors(rng, 30, 16))  # a server that ran the flat index wrote these
    first, second = PgVectorIndex(store), PgVectorIndex(store)
    await asyncio.gather(first.prepare({16}), second.prepare({16}))  # replicas starting together
    assert await vector_rows(database, kb.id) == 30
    query = unit_vectors(rng, 1, 16)[0]
    assert_same(await first.search(kb.id, query, 5), await FlatIndex(store).search(kb.id, query, 5))


async def test_embeddings_are_copied_bit_for_bit(store: KnowledgeStore, database: Database) -> None:
    tricky = np.array([0.0, -0.0, 1e-45, -1e-40, 1.17549435e-38, 3.4028235e38, -2.5, 1 / 3], dtype=np.float32)
    rng = np.random.default_rng(5)
    await opened(store)
    for dims in (8, 1024, 2048):  # 1024 and 2048: values big enough to be compressed (TOAST); 2048: no HNSW index
        vectors = unit_vectors(rng, 3, dims)
        vectors[0, : len(tricky)] = tricky
        kb = await base(store, dims)
        await document(store, kb, f"d{dims}", vectors)
        async with database.engine.connect() as connection:
            rows = (
                await connection.execute(
                    text("SELECT embedding::real[] FROM knowledge_vectors WHERE knowledge_id = :kb ORDER BY seq"),
                    {"kb": kb.id},
                )
            ).scalars()
            copied = np.array([list(row) for row in rows], dtype=np.float32)
        assert copied.view(np.uint32).tolist() == vectors.view(np.uint32).tolist()


async def test_a_size_without_an_hnsw_index_is_searched_exactly(store: KnowledgeStore) -> None:
    rng = np.random.default_rng(6)
    index = await opened(store, exact_rows=0)
    kb = await base(store, 2048)  # over pgvector's 2000-dimension limit for HNSW
    await document(store, kb, "wide", unit_vectors(rng, 12, 2048))
    await index.prepare({2048})
    assert 2048 not in index.indexed
    query = unit_vectors(rng, 1, 2048)[0]
    assert_same(await index.search(kb.id, query, 3), await FlatIndex(store).search(kb.id, query, 3))


@pytest.fixture
def machine_postgres(tmp_path: Path) -> Iterator[str]:
    with database_url("postgresql", tmp_path) as url:
        yield url


@pytest.fixture
async def without_pgvector(machine_postgres: str) -> AsyncIterator[KnowledgeStore]:
    database = await open_database(machine_postgres)
    yield KnowledgeStore(database)
    await database.close()


async def test_without_the_extension_startup_fails_clearly_and_auto_is_flat(
    without_pgvector: KnowledgeStore, store: KnowledgeStore, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, vector_index="pgvector")
    with pytest.raises(VectorIndexUnavailable, match=r"no `vector` extension \(pgvector\).*pgserver"):
        await open_vector_index(settings, without_pgvector, {8})
    auto = Settings(data_dir=tmp_path, vector_index="auto", pgvector_ef_search=64)
    assert isinstance(await open_vector_index(auto, without_pgvector, {8}), FlatIndex)
    chosen: VectorIndex = await open_vector_index(auto, store, {8})
    assert isinstance(chosen, PgVectorIndex) and chosen.ef_search == 64 and 8 in chosen.indexed
    sqlite = await open_database(f"sqlite:///{tmp_path / 'openglm.db'}")
    try:
        with pytest.raises(VectorIndexUnavailable, match="needs a PostgreSQL database"):
            await open_vector_index(settings, KnowledgeStore(sqlite), {8})
        assert isinstance(await open_vector_index(auto, KnowledgeStore(sqlite), {8}), FlatIndex)
    finally:
        await sqlite.close()
