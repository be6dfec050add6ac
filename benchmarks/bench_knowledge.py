#!/usr/bin/env python
"""Knowledge search latency at 10k and 100k chunks, on the default store (SQLite + FTS5 + the flat index).

Chunks are written straight into the store (text sampled from the standard library's docstrings, random unit
vectors of 384 dimensions: search time does not depend on what the vectors mean). Then, over the same queries:

- ``flat``: ``FlatIndex.search`` top 10, as retrieval calls it (including its per-query version check);
- ``numpy exact``: the peer, a bare brute-force ``matrix @ query`` + ``argpartition`` on the same matrix;
- ``bm25``: the FTS5 full-text search, top 40 (what hybrid retrieval asks for), with real question text;
- ``hybrid``: ``Retriever.retrieve`` top 10 without the query's embedding (given), i.e. both searches, fusion and
  reading the chunks; the MiniLM query embedding is timed apart (``embed query``).

Recall of the flat index against the exact search is reported too (top 10).

    .venv/bin/python benchmarks/bench_knowledge.py --sizes 10000,100000 --queries 200
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openglm.catalog import Catalog  # noqa: E402
from openglm.config import Settings  # noqa: E402
from openglm.embeddings.service import EmbeddingService  # noqa: E402
from openglm.evals.corpus import corpus  # noqa: E402
from openglm.knowledge.fulltext import query_terms, search_text  # noqa: E402
from openglm.knowledge.index import FlatIndex, nearest  # noqa: E402
from openglm.knowledge.retrieval import RetrievalOptions, Retriever  # noqa: E402
from openglm.knowledge.store import KnowledgeStore, NewChunk  # noqa: E402
from openglm.store.db import open_database  # noqa: E402
from openglm.store.models import Account  # noqa: E402

DIMS = 384
PER_DOCUMENT = 1000


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
    }


def sentences() -> list[str]:
    documents, _ = corpus()
    out = []
    for document in documents:
        out.extend(s.strip() for s in document.text.replace("\n", " ").split(". ") if len(s.split()) > 4)
    return out


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = rng.standard_normal((n, DIMS)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


async def fill(store: KnowledgeStore, knowledge_id: str, n: int, texts: list[str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    for start in range(0, n, PER_DOCUMENT):
        count = min(PER_DOCUMENT, n - start)
        document, _ = await store.add_document(
            "bench", knowledge_id, name=f"doc{start}", content_hash=f"{knowledge_id}-{start}", file_id=None, options={}
        )
        vectors = unit_rows(rng, count)
        chunks, offset = [], 0
        for i in range(count):
            body = " ".join(pick.sample(texts, 3))
            chunks.append(
                NewChunk(
                    i,
                    offset,
                    offset + len(body),
                    body,
                    search_text(body),
                    [],
                    None,
                    "text",
                    60,
                    vectors[i].astype("<f4").tobytes(),
                )
            )
            offset += len(body) + 2
        await store.store_chunks(document, "\n\n".join(c.text for c in chunks), chunks)


async def measure(
    store: KnowledgeStore, embeddings: EmbeddingService, size: int, texts: list[str], queries: list[str]
) -> dict[str, Any]:
    knowledge = await store.create(
        "bench",
        name=f"n{size}",
        embedding_model="all-minilm-l6-v2",
        dimensions=DIMS,
        chunk_tokens=254,
        overlap_tokens=32,
    )
    started = time.perf_counter()
    await fill(store, knowledge.id, size, texts, seed=size)
    fill_seconds = time.perf_counter() - started
    index = FlatIndex(store)
    rng = np.random.default_rng(1)
    query_vectors = unit_rows(rng, len(queries))
    await index.search(knowledge.id, query_vectors[0], 10)  # load the matrix once, as a warm server has it
    matrix = index._matrices[knowledge.id]
    flat, exact, bm25, hybrid = [], [], [], []
    agree = 0
    retriever = Retriever(store, index, embeddings)
    for text_query, vector in zip(queries, query_vectors, strict=True):
        t = time.perf_counter()
        found = await index.search(knowledge.id, vector, 10)
        flat.append(time.perf_counter() - t)
        t = time.perf_counter()
        truth = nearest(matrix.seqs, matrix.vectors, vector, 10)
        exact.append(time.perf_counter() - t)
        agree += len({s for s, _ in found} & {s for s, _ in truth})
        t = time.perf_counter()
        await store.text_search(knowledge.id, query_terms(text_query), 40)
        bm25.append(time.perf_counter() - t)
        t = time.perf_counter()
        await retriever.search(knowledge, text_query, vector, RetrievalOptions(top_k=10))
        hybrid.append(time.perf_counter() - t)
    return {
        "chunks": size,
        "fill_seconds": fill_seconds,
        "matrix_mb": matrix.nbytes / 1e6,
        "flat": summary(flat),
        "numpy_exact": summary(exact),
        "flat_over_exact_p50": statistics.median(flat) / statistics.median(exact),
        "recall_at_10_vs_exact": agree / (10 * len(queries)),
        "bm25": summary(bm25),
        "hybrid_without_query_embedding": summary(hybrid),
    }


async def embed_query_latency(embeddings: EmbeddingService, queries: list[str]) -> dict[str, float]:
    spec = embeddings.resolve("all-minilm-l6-v2")
    await embeddings.embed(spec, ["warm up"])
    samples = []
    for query in queries:
        t = time.perf_counter()
        await embeddings.embed(spec, [query])
        samples.append(time.perf_counter() - t)
    return summary(samples)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    texts = sentences()
    _, questions = corpus(args.queries)
    queries = [q.text for q in questions]
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        db = await open_database(f"sqlite:///{tmp}/bench.db")
        async with db.session() as session:
            session.add(Account(id="bench", name="bench"))
        embeddings = EmbeddingService(Catalog.from_file(settings.models_file), settings.threads)
        store = KnowledgeStore(db)
        try:
            levels = [await measure(store, embeddings, size, texts, queries) for size in sizes]
            embed = await embed_query_latency(embeddings, queries[:100])
        finally:
            await embeddings.close()
            await db.close()
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} cores={os.cpu_count()}",
        "command": " ".join(sys.argv),
        "queries": len(queries),
        "levels": levels,
        "embed_query": embed,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    report = asyncio.run(main(parser.parse_args()))
    out = ROOT / "benchmarks" / "results" / f"knowledge-{int(time.time())}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
