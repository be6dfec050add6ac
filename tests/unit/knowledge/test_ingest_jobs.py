"""Ingestion on the job system (#13 part 6): a worker process SIGKILLed mid-embedding leaves the document to
another worker, which ingests it once and charges it once; deleting a document cancels its job; a restart
ingests what was waiting. Real SQLite and PostgreSQL, real worker processes, a real embedding backend that
pauses on a file (``paused_embeddings.py``) so the kill lands mid-embedding every time."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from openglm.accounts import ledger
from openglm.accounts.auth import Principal
from openglm.catalog import Catalog
from openglm.config import Settings
from openglm.embeddings.service import EmbeddingService
from openglm.files.blobs import LocalBlobStore
from openglm.files.store import FileStore
from openglm.jobs.kinds import load_builtin_kinds
from openglm.jobs.runner import JobRunner
from openglm.jobs.store import JobRecord, JobStore
from openglm.knowledge.ingest import KIND, IngestQueue
from openglm.knowledge.service import KnowledgeService
from openglm.knowledge.store import KnowledgeStore
from openglm.store.db import Database
from openglm.store.models import Account, KnowledgeChunk, LedgerEntry, UsageRecord

from . import paused_embeddings
from .paused_embeddings import calls

ROOT = Path(__file__).resolve().parents[3]
LEASE = 1.5
ACCOUNT = "acct_ingest"
TEXT = "".join(f"# Part {n}\n\nThe quick brown fox number {n} jumps over the lazy dog.\n\n" for n in range(12))
CATALOG = """
[[embeddings]]
id = "paused"
engine = "test.paused"
source = "{home}"
dimensions = 8
max_input_tokens = 512
[embeddings.prices]
input = 1
"""
assert paused_embeddings  # registers the backend in this process too


@pytest.fixture(params=["sqlite", "postgresql"])
def db_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "models.toml").write_text(CATALOG.format(home=tmp_path), encoding="utf-8")
    return tmp_path


def settings_for(home: Path, db_url: str) -> Settings:
    return Settings(
        database_url=db_url,
        data_dir=home / "data",
        models_file=home / "models.toml",
        vector_index="flat",
        job_workers=0,
        ingest_workers=1,
        job_lease_seconds=LEASE,
        job_heartbeat_seconds=0.3,
        job_poll_seconds=0.1,
    )


@pytest.fixture
async def funded(database: Database) -> AsyncIterator[Database]:
    async with database.session() as session:
        session.add(Account(id=ACCOUNT, name=ACCOUNT))
    async with database.session() as session:
        await ledger.append(session, ACCOUNT, "grant", 10**9, note="test")  # 1 CNY
    yield database


@pytest.fixture
def start_worker(db_url: str, home: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "OPENGLM_DATABASE_URL": db_url,
            "OPENGLM_DATA_DIR": str(home / "data"),
            "OPENGLM_MODELS_FILE": str(home / "models.toml"),
            "OPENGLM_AUTH": "on",  # the balance is enforced: the ingestion reserves before it embeds
            "OPENGLM_INGEST_WORKERS": "1",
            "OPENGLM_JOB_LEASE_SECONDS": str(LEASE),
            "OPENGLM_JOB_HEARTBEAT_SECONDS": "0.3",
            "OPENGLM_JOB_POLL_SECONDS": "0.1",
        }
        command = [sys.executable, "-m", "openglm.jobs.worker", "--kinds", KIND]
        process = subprocess.Popen([*command, "--import", "tests.unit.knowledge.paused_embeddings"], env=env, cwd=ROOT)
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


async def until(check: Callable[[], object], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def ingestion_jobs(store: JobStore) -> list[JobRecord]:
    return await store.list_jobs(kinds=[KIND])


async def test_a_worker_killed_mid_embedding_leaves_the_document_to_another_ingested_and_charged_once(
    funded: Database, home: Path, start_worker: Callable[[], subprocess.Popen[bytes]]
) -> None:
    database = funded
    knowledge = KnowledgeStore(database)
    jobs = JobStore(database)
    load_builtin_kinds()
    queue = IngestQueue(JobRunner(jobs, slots=0))  # queues only: the worker processes run the jobs
    base = await knowledge.create(
        ACCOUNT, name="kb", description="", embedding_model="paused", dimensions=8, chunk_tokens=32, overlap_tokens=0
    )
    await LocalBlobStore(home / "data" / "blobs").put("file-doc", TEXT.encode())
    document, _ = await knowledge.add_document(
        ACCOUNT, base.id, name="doc.md", content_hash="h", file_id="file-doc", options={}, enqueue=queue.enqueue
    )
    [job] = await ingestion_jobs(jobs)
    assert job.payload["document_id"] == document.id and job.account_id == ACCOUNT

    (home / "pause").touch()
    first = start_worker()
    await until(lambda: any(f"pid={first.pid}" in line for line in calls(home)), "the first worker to embed")
    assert (await knowledge.document(ACCOUNT, document.id)).status == "embedding"
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (await jobs.get(job.id)).status == "running"  # held by a dead worker until its lease runs out

    (home / "pause").unlink()
    second = start_worker()

    async def finished() -> bool:
        return (await jobs.get(job.id)).finished

    await until(finished, "the job to finish")
    done = await jobs.get(job.id)
    assert (done.status, done.attempts) == ("succeeded", 2), done
    assert any(f"pid={second.pid}" in line for line in calls(home))
    ready = await knowledge.document(ACCOUNT, document.id)
    assert (ready.status, ready.error) == ("ready", None)
    async with database.read() as session:
        chunk_ids = list(await session.scalars(select(KnowledgeChunk.id).where(KnowledgeChunk.document_id == ready.id)))
        records = list(await session.scalars(select(UsageRecord).where(UsageRecord.request_id == document.id)))
        charges = list(
            await session.scalars(select(LedgerEntry.amount).where(LedgerEntry.usage_id == job.payload["usage_id"]))
        )
    assert len(chunk_ids) == len(set(chunk_ids)) == ready.chunks_total > 1
    [record] = records  # one usage record, under the job's usage id, whatever the dead worker had done
    assert record.id == job.payload["usage_id"] == done.result["usage_id"]  # type: ignore[index]
    assert record.cost > 0 and charges == [-record.cost]


async def test_deleting_a_document_cancels_its_running_ingestion(funded: Database, home: Path, db_url: str) -> None:
    settings = settings_for(home, db_url)
    service, runner = await open_service(settings, funded)
    try:
        base = await service.create(ACCOUNT, embedding_model="paused", name="kb", description="")
        (home / "pause").touch()
        upload = await service.upload(Principal(ACCOUNT, None), base.id, "a.md", TEXT.encode(), "text/markdown", {})
        await until(lambda: bool(calls(home)), "the ingestion to embed")
        [job] = await ingestion_jobs(runner.store)
        assert job.status == "running"
        await service.delete_document(ACCOUNT, upload.document.id)

        async def cancelled() -> bool:
            return (await runner.store.get(job.id)).status == "cancelled"

        await until(cancelled, "the job to be cancelled", timeout=5)
        (home / "pause").unlink()
        assert runner.running == []
        async with funded.read() as session:
            assert list(await session.scalars(select(KnowledgeChunk.id))) == []
            assert list(await session.scalars(select(UsageRecord.id))) == []
    finally:
        await runner.close()
        await service.close()


async def test_a_restart_ingests_what_was_waiting(funded: Database, home: Path, db_url: str) -> None:
    """Documents queued when the server stopped — one with its job, one left by a server from before ingestion
    ran on jobs (no job) — are ingested after the restart, each by one job."""
    settings = settings_for(home, db_url)
    knowledge = KnowledgeStore(funded)
    load_builtin_kinds()
    queue = IngestQueue(JobRunner(JobStore(funded), slots=0))
    base = await knowledge.create(
        ACCOUNT, name="kb", description="", embedding_model="paused", dimensions=8, chunk_tokens=32, overlap_tokens=0
    )
    blobs = LocalBlobStore(home / "data" / "blobs")
    documents = []
    for n, enqueue in enumerate((queue.enqueue, None)):
        await blobs.put(f"file-{n}", f"# Doc {n}\n\nSome words about the number {n}.\n".encode())
        document, _ = await knowledge.add_document(
            ACCOUNT, base.id, name=f"{n}.md", content_hash=str(n), file_id=f"file-{n}", options={}, enqueue=enqueue
        )
        documents.append(document)
    assert len(await ingestion_jobs(JobStore(funded))) == 1

    service, runner = await open_service(settings, funded)  # the restart
    try:

        async def all_ready() -> bool:
            found = [await knowledge.document(ACCOUNT, d.id) for d in documents]
            return all(d.status == "ready" for d in found)

        await until(all_ready, "both documents to be ingested")

        # A document turns ready inside its job, a moment before the runner records the job as succeeded.
        async def all_jobs_ended() -> bool:
            return all(j.finished for j in await ingestion_jobs(runner.store))

        await until(all_jobs_ended, "the ingestion jobs to be recorded as ended")
        ingested = await ingestion_jobs(runner.store)
        assert sorted(j.payload["document_id"] for j in ingested) == sorted(d.id for d in documents)
        assert {j.status for j in ingested} == {"succeeded"}
    finally:
        await runner.close()
        await service.close()


async def open_service(settings: Settings, database: Database) -> tuple[KnowledgeService, JobRunner]:
    """What the server's lifespan does for knowledge: a runner with the ingestion slots, the service on it."""
    load_builtin_kinds()
    embeddings = EmbeddingService(Catalog.from_file(settings.models_file), settings.threads)
    files = FileStore(database, LocalBlobStore(settings.data_dir / "blobs"))
    runner = JobRunner.from_settings(settings, JobStore(database), kinds=[KIND])
    service = await KnowledgeService.open(settings, database, embeddings, files, None, runner)
    await runner.start()
    return service, runner
