#!/usr/bin/env python
"""Retrieval quality: recall@5, recall@10 and MRR of vector-only, BM25-only and hybrid retrieval.

The labelled set is generated from the Python standard library's docstrings (``openglm/evals/corpus.py``: question =
a docstring's summary line, gold = the rest of that docstring). The documents go through the real pipeline —
upload, parsing, chunking, all-MiniLM-L6-v2 embeddings, the SQLite store with FTS5 and the flat index — and each
question through ``Retriever.retrieve``, the code path of chat's retrieval tool. A question is a hit at k when a
chunk of its gold document is among the first k; MRR uses the rank of the first such chunk (0 beyond 10).
Ingestion throughput (chunks per second, upload to ready) is measured on the way.

    .venv/bin/python benchmarks/bench_retrieval_quality.py [--questions 400]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openglm.accounts.auth import Principal  # noqa: E402
from openglm.catalog import Catalog  # noqa: E402
from openglm.config import Settings  # noqa: E402
from openglm.embeddings.service import EmbeddingService  # noqa: E402
from openglm.evals.corpus import corpus, python_version  # noqa: E402
from openglm.files.blobs import LocalBlobStore  # noqa: E402
from openglm.files.store import FileStore  # noqa: E402
from openglm.jobs.kinds import load_builtin_kinds  # noqa: E402
from openglm.jobs.runner import JobRunner  # noqa: E402
from openglm.jobs.store import JobStore  # noqa: E402
from openglm.knowledge.retrieval import RetrievalOptions  # noqa: E402
from openglm.knowledge.service import KnowledgeService  # noqa: E402
from openglm.store.db import open_database  # noqa: E402
from openglm.store.models import Account  # noqa: E402

MODES = ("vector", "keyword", "hybrid")
DEPTH = 10


async def ingest(
    service: KnowledgeService, knowledge_id: str, documents: list[Any]
) -> tuple[dict[str, str], float, float, int]:
    """Upload every document (one request after the other), wait until all are ready; (document id → name,
    seconds spent uploading, seconds from the first upload until every document is ready, chunks)."""
    principal = Principal("bench", None)
    started = time.perf_counter()
    names: dict[str, str] = {}
    for document in documents:
        upload = await service.upload(
            principal, knowledge_id, f"{document.name}.md", document.text.encode(), "text/markdown", {}
        )
        names[upload.document.id] = document.name
    uploaded = time.perf_counter() - started
    while True:
        pending = [r for r in (await _all(service, knowledge_id)) if r.status not in ("ready", "failed")]
        if not pending:
            break
        await asyncio.sleep(0.2)
    seconds = time.perf_counter() - started
    failed = [r.name for r in await _all(service, knowledge_id) if r.status == "failed"]
    if failed:
        raise SystemExit(f"documents failed to ingest: {failed[:5]}")
    chunks = sum(r.chunks_total for r in await _all(service, knowledge_id))
    return names, uploaded, seconds, chunks


async def _all(service: KnowledgeService, knowledge_id: str) -> list[Any]:
    out, page = [], 1
    while True:
        records, total = await service.store.documents("bench", knowledge_id, page, 100)
        out.extend(records)
        if len(out) >= total or not records:
            return out
        page += 1


async def evaluate(
    service: KnowledgeService, knowledge_id: str, names: dict[str, str], questions: list[Any]
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    knowledge = await service.store.get("bench", knowledge_id)
    for mode in MODES:
        hits5 = hits10 = 0
        reciprocal = 0.0
        for question in questions:
            retrieval = await service.retriever.retrieve(
                knowledge, question.text, RetrievalOptions(top_k=DEPTH, mode=mode)
            )
            ranked = [names[item.chunk.document_id] for item in retrieval.chunks]
            rank = next((i for i, name in enumerate(ranked, start=1) if name == question.gold), None)
            hits5 += rank is not None and rank <= 5
            hits10 += rank is not None
            reciprocal += 1 / rank if rank else 0.0
        n = len(questions)
        results[mode] = {"recall@5": hits5 / n, "recall@10": hits10 / n, "mrr@10": reciprocal / n}
    return results


async def main(args: argparse.Namespace) -> dict[str, Any]:
    documents, questions = corpus(args.questions)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), ingest_workers=args.workers)
        db = await open_database(f"sqlite:///{tmp}/bench.db")
        async with db.session() as session:
            session.add(Account(id="bench", name="bench"))
        embeddings = EmbeddingService(Catalog.from_file(settings.models_file), settings.threads)
        files = FileStore(db, LocalBlobStore(Path(tmp) / "blobs"))
        load_builtin_kinds()
        jobs = JobRunner.from_settings(settings, JobStore(db), kinds=["knowledge_ingest"])
        service = await KnowledgeService.open(settings, db, embeddings, files, None, jobs)
        await jobs.start()
        try:
            await embeddings.input_token_limit(embeddings.resolve(service.default_embedding_model()))  # load first
            knowledge = await service.create("bench", embedding_model=None, name="stdlib", description="")
            names, uploading, seconds, chunks = await ingest(service, knowledge.id, documents)
            quality = await evaluate(service, knowledge.id, names, questions)
        finally:
            await jobs.close()
            await service.close()
            await embeddings.close()
            await db.close()
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} cores={__import__('os').cpu_count()}".strip(),
        "python": python_version(),
        "command": " ".join(sys.argv),
        "documents": len(documents),
        "questions": len(questions),
        "chunks": chunks,
        "upload_seconds": uploading,
        "ingest_seconds": seconds,
        "ingest_chunks_per_second": chunks / seconds,
        "quality": quality,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    report = asyncio.run(main(parser.parse_args()))
    out = ROOT / "benchmarks" / "results" / f"retrieval-quality-{int(time.time())}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
