"""Knowledge bases on PostgreSQL with the pgvector index, through the real server: a base created with the SDK,
documents uploaded and ingested (real all-MiniLM-L6-v2 embeddings), retrieval by vector, keyword and both, with the
vectors in pgvector's table and gone again when their document or base is deleted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from zhipuai import ZhipuAI

from ..databases import postgres_database
from .server import RunningServer

NOTES = b"""# Field notes

## Bees

Honey bees dance to tell their hive where the flowers are: the angle of the waggle run points the way.

## Owls

Barn owls hunt at night by sound alone; their faces are dishes that gather the faintest rustle.

## Lichen

Lichen is a partnership of a fungus and an alga, and grows a few millimetres a year on bare rock.
"""


@pytest.fixture(scope="module")
def on_pgvector(pgvector_admin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    with postgres_database(pgvector_admin) as url:
        env = {"OPENGLM_DATABASE_URL": url, "OPENGLM_VECTOR_INDEX": "pgvector"}
        running = RunningServer(log=tmp_path_factory.mktemp("pgvector-server") / "server.log", env=env)
        try:
            yield running, url
        finally:
            running.stop()


def wait_ready(server: RunningServer, document_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx.get(f"{server.url}/v1/document/{document_id}").json()["status"]
        if status in ("ready", "failed"):
            assert status == "ready"
            return
        time.sleep(0.2)
    raise AssertionError(f"document {document_id} not ingested in {timeout} s")


def retrieve(server: RunningServer, knowledge: str, query: str, **options: Any) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{server.url}/v1/knowledge/{knowledge}/retrieve", json={"query": query, **options}, timeout=60
    )
    assert response.status_code == 200, response.text
    return list(response.json()["chunks"])


def vectors(url: str, knowledge: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT count(*) FROM knowledge_vectors WHERE knowledge_id = %s", (knowledge,))
        return int(row.fetchone()[0])  # type: ignore[index]


def test_upload_ingest_retrieve_and_delete_on_pgvector(on_pgvector: tuple[RunningServer, str]) -> None:
    server, url = on_pgvector
    zhipu = ZhipuAI(api_key="testid.testsecret", base_url=f"{server.url}/api/paas/v4", max_retries=0)
    knowledge = str(zhipu.knowledge.create(embedding_id=1, name="notes", description="nature").id)
    uploaded = zhipu.knowledge.document.create(file=("notes.md", NOTES), purpose="retrieval", knowledge_id=knowledge)
    notes = str((uploaded.successInfos or [])[0].documentId)
    other = zhipu.knowledge.document.create(
        file=("moon.txt", b"The moon orbits the earth every 27 days."), purpose="retrieval", knowledge_id=knowledge
    )
    moon = str((other.successInfos or [])[0].documentId)
    wait_ready(server, notes)
    wait_ready(server, moon)
    chunks = httpx.get(f"{server.url}/v1/document/{notes}/chunks", params={"size": 100}).json()["total"]
    assert vectors(url, knowledge) == chunks + 1  # every chunk's embedding is in pgvector's table

    best = retrieve(server, knowledge, "how do bees show each other where flowers are", mode="vector", top_k=1)[0]
    assert "waggle" in best["text"] and best["document_id"] == notes and 0 < best["vector_score"] <= 1
    assert "moon" in retrieve(server, knowledge, "lunar orbit period", mode="vector", top_k=1)[0]["text"]
    assert "millimetres" in retrieve(server, knowledge, "lichen", mode="keyword", top_k=1)[0]["text"]
    assert "owls" in retrieve(server, knowledge, "hunting at night by sound", top_k=1)[0]["text"].lower()

    zhipu.knowledge.document.delete(moon)
    assert vectors(url, knowledge) == chunks
    assert all(c["document_id"] == notes for c in retrieve(server, knowledge, "lunar orbit", mode="vector"))
    zhipu.knowledge.delete(knowledge)
    assert vectors(url, knowledge) == 0
