"""The knowledge store on a real SQLite file, a real PostgreSQL database and a PostgreSQL with pgvector: documents
deduplicated and claimed once, chunks written whole, full-text search on both engines, the vector index (flat, or
pgvector where the database has it) following every change."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text

from openglm.errors import NotFoundError
from openglm.knowledge.fulltext import query_terms, search_text
from openglm.knowledge.index import FlatIndex, VectorIndex
from openglm.knowledge.pgvector import PgVectorIndex
from openglm.knowledge.records import DocumentRecord, KnowledgeRecord
from openglm.knowledge.store import KnowledgeStore, NewChunk
from openglm.store.db import Database
from openglm.store.models import Account

DIMS = 4


@pytest.fixture
async def store(database: Database) -> KnowledgeStore:
    async with database.session() as session:
        session.add_all([Account(id="acct_a", name="a"), Account(id="acct_b", name="b")])
    return KnowledgeStore(database)


async def base(store: KnowledgeStore, account: str = "acct_a") -> KnowledgeRecord:
    return await store.create(
        account, name="kb", embedding_model="m", dimensions=DIMS, chunk_tokens=64, overlap_tokens=8
    )


def unit(*values: float) -> bytes:
    vector = np.asarray(values, dtype=np.float32)
    return (vector / np.linalg.norm(vector)).astype("<f4").tobytes()


def chunks(*texts_and_vectors: tuple[str, bytes]) -> list[NewChunk]:
    out, offset = [], 0
    for position, (body, vector) in enumerate(texts_and_vectors):
        out.append(NewChunk(position, offset, offset + len(body), body, search_text(body), [], None, "text", 3, vector))
        offset += len(body) + 2
    return out


async def ready_document(
    store: KnowledgeStore, kb: KnowledgeRecord, name: str, *items: tuple[str, bytes]
) -> DocumentRecord:
    document, _ = await store.add_document(kb.account_id, kb.id, name=name, content_hash=name, file_id=None, options={})
    new = chunks(*items)
    assert await store.store_chunks(document, "\n\n".join(c.text for c in new), new)
    return document


async def test_bases_belong_to_their_account(store: KnowledgeStore) -> None:
    kb = await base(store)
    assert (await store.get("acct_a", kb.id)).name == "kb"
    with pytest.raises(NotFoundError):
        await store.get("acct_b", kb.id)
    assert (await store.bases("acct_b", 1, 10)) == ([], 0)


async def test_the_same_content_twice_is_one_document(store: KnowledgeStore) -> None:
    kb = await base(store)
    first, new = await store.add_document("acct_a", kb.id, name="a.txt", content_hash="h", file_id="f1", options={})
    again, new_again = await store.add_document(
        "acct_a", kb.id, name="b.txt", content_hash="h", file_id="f2", options={}
    )
    assert new and not new_again and again.id == first.id
    other = await base(store)
    _, in_other_base = await store.add_document(
        "acct_a", other.id, name="a.txt", content_hash="h", file_id=None, options={}
    )
    assert in_other_base  # deduplicated per base


async def test_an_edit_supersedes_the_version_being_ingested(store: KnowledgeStore, database: Database) -> None:
    """Ingestion writes a document's status and chunks only at the version it was queued for: after an edit (a
    new version, strictly later even within the same microsecond) the old run changes nothing; the new one
    stores once, and a second store of that version (a re-run after its worker died) writes nothing."""
    kb = await base(store)
    first, _ = await store.add_document("acct_a", kb.id, name="a.txt", content_hash="h", file_id=None, options={})
    edits = [await store.update_document_options("acct_a", first.id, {"sentence_size": 100 + i}) for i in range(3)]
    versions = [first.updated_at, *(e.updated_at for e in edits)]
    assert versions == sorted(set(versions))  # strictly forward
    old, new = first.updated_at, edits[-1].updated_at
    assert not await store.set_progress(first.id, old, status="embedding")
    assert await store.set_progress(first.id, new, status="embedding", chunks_total=1)
    written = chunks(("hello", unit(1, 0, 0, 0)))
    async with database.session() as session:
        assert await store.store_version(session, first, old, "hello", written) == "superseded"
    async with database.session() as session:
        assert await store.store_version(session, edits[-1], new, "hello", written) == "stored"
    async with database.session() as session:
        assert await store.store_version(session, edits[-1], new, "hello", written) == "done"
    document = await store.document("acct_a", first.id)
    assert (document.status, document.chunks_total, document.updated_at) == ("ready", 1, new)
    await store.delete_document("acct_a", first.id)
    async with database.session() as session:
        assert await store.store_version(session, edits[-1], new, "hello", written) == "deleted"


async def test_full_text_search_ranks_and_follows_deletes(store: KnowledgeStore) -> None:
    kb = await base(store)
    doc = await ready_document(
        store,
        kb,
        "d",
        ("Beijing weather is sunny today", unit(1, 0, 0, 0)),
        ("The capital of France is Paris", unit(0, 1, 0, 0)),
        ("北京天气晴朗，气温二十度", unit(0, 0, 1, 0)),
    )
    hits = await store.text_search(kb.id, query_terms("weather in Beijing"), 10)
    found = await store.chunks_by_seq([seq for seq, _ in hits])
    assert found[hits[0][0]].position == 0
    chinese = await store.text_search(kb.id, query_terms("北京的天气"), 10)
    assert {found.position for found in (await store.chunks_by_seq([s for s, _ in chinese])).values()} == {2}
    await store.delete_document("acct_a", doc.id)
    assert await store.text_search(kb.id, query_terms("Beijing"), 10) == []


async def test_deleting_a_base_removes_everything_under_it(store: KnowledgeStore, database: Database) -> None:
    kb = await base(store)
    await ready_document(store, kb, "d", ("alpha beta", unit(1, 1, 0, 0)))
    await store.remove("acct_a", kb.id)
    async with database.engine.connect() as conn:
        for table in ("knowledge_chunks", "knowledge_documents", "knowledge_bases"):
            assert (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one() == 0
    assert await store.text_search(kb.id, ["alpha"], 10) == []


async def test_chunks_of_a_deleted_document_are_not_written(store: KnowledgeStore) -> None:
    kb = await base(store)
    document, _ = await store.add_document("acct_a", kb.id, name="x", content_hash="x", file_id=None, options={})
    await store.delete_document("acct_a", document.id)
    assert not await store.store_chunks(document, "gone", chunks(("gone", unit(1, 0, 0, 0))))


@pytest.fixture
async def index(store: KnowledgeStore, db_kind: str) -> VectorIndex:
    if db_kind != "pgvector":
        return FlatIndex(store)
    pgvector = PgVectorIndex(store)
    await pgvector.prepare()
    return pgvector


async def test_the_vector_index_is_exact_and_follows_changes(store: KnowledgeStore, index: VectorIndex) -> None:
    kb = await base(store)
    await ready_document(store, kb, "one", ("east", unit(1, 0, 0, 0)), ("north", unit(0, 1, 0, 0)))
    query = np.frombuffer(unit(1, 0.2, 0, 0), dtype="<f4")
    first = await index.search(kb.id, query, 2)
    found = await store.chunks_by_seq([seq for seq, _ in first])
    assert [found[seq].text for seq, _ in first] == ["east", "north"]
    assert first[0][1] == pytest.approx(float(query @ np.frombuffer(unit(1, 0, 0, 0), dtype="<f4")), abs=1e-6)
    later = await ready_document(store, kb, "two", ("east-ish", unit(1, 0.1, 0, 0)))
    assert len(await index.search(kb.id, query, 10)) == 3  # the version moved: reloaded
    await store.delete_document("acct_a", later.id)
    assert len(await index.search(kb.id, query, 10)) == 2
    await store.remove("acct_a", kb.id)
    assert await index.search(kb.id, query, 10) == []


async def test_a_large_index_searches_with_the_rarer_terms_only(database: Database) -> None:
    async with database.session() as session:
        session.add(Account(id="acct_a", name="a"))
    store = KnowledgeStore(database, prune_terms_from=1)  # as if the index were large
    kb = await base(store)
    common = [(f"common words in chunk {i}", unit(1, 0, 0, 0)) for i in range(30)]
    await ready_document(store, kb, "d", *common, ("common words and a zebra", unit(0, 1, 0, 0)))
    hits = await store.text_search(kb.id, query_terms("common zebra"), 10)
    found = await store.chunks_by_seq([seq for seq, _ in hits])
    if database.dialect == "sqlite":  # "common" is in every chunk: only "zebra" is asked for
        assert [found[seq].text for seq, _ in hits] == ["common words and a zebra"]
    else:
        assert found[hits[0][0]].text == "common words and a zebra"
    assert len(await store.text_search(kb.id, query_terms("common words"), 10)) == 10  # all common: still answers
