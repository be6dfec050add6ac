"""Eval runs on a real database (SQLite and PostgreSQL), without a server: the service's checks and bounds, runs
private to their account, cursor pages, a queued run cancelled at once; the report as stored; the lost-job hook
deleting the key a dead worker's run left behind."""

from __future__ import annotations

import asyncio

import pytest

from openglm.accounts.auth import Principal
from openglm.accounts.sealing import SecretBox
from openglm.accounts.store import AccountStore
from openglm.errors import ConcurrencyLimitError, InvalidFieldError, NotFoundError
from openglm.evals.base import Outcome
from openglm.evals.job import KIND, TEXT_KEPT, _despite_cancellation, report_of
from openglm.evals.runner import EvalRun
from openglm.evals.runs import EvalRuns, RunRequest
from openglm.evals.service import EvalService
from openglm.jobs.kinds import lost_hooks
from openglm.jobs.runner import JobRunner
from openglm.jobs.store import JobStore
from openglm.store.db import Database
from tests.fixtures.eval_suite import SUITE


async def setup(database: Database) -> tuple[AccountStore, EvalService, Principal, Principal]:
    accounts = AccountStore(database, SecretBox(b"k" * 32))
    alice, bob = await accounts.create_account("alice"), await accounts.create_account("bob")
    runner = JobRunner(JobStore(database), slots=0)  # never started: the runs stay queued
    return accounts, EvalService(runner, EvalRuns(database)), Principal(alice.id, None), Principal(bob.id, None)


async def test_runs_are_private_paged_bounded_and_a_queued_one_cancels_at_once(database: Database) -> None:
    _, service, alice, bob = await setup(database)
    first = await service.start(alice, RunRequest([SUITE], ["m1", "m2"], split="heldout", per_family=2))
    assert (first.status, first.total_tasks, first.progress()) == ("queued", 4, {"done": 0, "failed": 0, "total": 4})
    assert first.request == RunRequest([SUITE], ["m1", "m2"], "heldout", 2, 0) and first.job.max_attempts == 1
    for other in (service.get(bob, first.id), service.cancel(bob, first.id)):
        with pytest.raises(NotFoundError):
            await other
    second = await service.start(alice, RunRequest([SUITE], ["m1"]))
    assert second.total_tasks == 6
    with pytest.raises(ConcurrencyLimitError):
        await service.start(alice, RunRequest([SUITE], ["m1"]))
    assert [r.id for r in (await service.list_runs(bob, limit=5, after=None))[0]] == []
    page, more = await service.list_runs(alice, limit=1, after=None)
    assert ([r.id for r in page], more) == ([second.id], True)
    page, more = await service.list_runs(alice, limit=1, after=second.id)
    assert ([r.id for r in page], more) == ([first.id], False)
    cancelled = await service.cancel(alice, first.id)
    assert cancelled.status == "cancelled" and cancelled.job.finished_at is not None
    assert (await service.start(alice, RunRequest([SUITE], ["m3"]))).status == "queued"  # one slot was freed


async def test_bad_suites_and_repeated_names_are_refused_before_anything_is_written(database: Database) -> None:
    _, service, alice, _ = await setup(database)
    with pytest.raises(InvalidFieldError, match=rf"suites: unknown eval suite 'nope'; known: .*{SUITE}"):
        await service.start(alice, RunRequest(["nope"], ["m1"]))
    with pytest.raises(InvalidFieldError, match="models: each one once"):
        await service.start(alice, RunRequest([SUITE], ["m1", "m1"]))
    assert (await service.list_runs(alice, limit=5, after=None))[0] == []
    listing = {suite.name: suite for suite in await service.suites()}
    assert [(f.name, f.split, f.tasks) for f in listing[SUITE].families] == [
        ("echo", "train", 3),
        ("shout", "heldout", 3),
    ]


def test_the_report_keeps_outcomes_without_transcripts_and_cuts_long_texts() -> None:
    long = Outcome("t1", "echo", "train", False, 0.0, 0.5, detail="x" * 5000, error="e" * 3000)
    long.transcript = [{"role": "user", "content": "hi"}]
    run = EvalRun([SUITE], ["m1"], "http://127.0.0.1:1")
    run.results = {SUITE: {"m1": [long]}}
    run.summaries = {SUITE: {"m1": {"score": 0.0}}}
    summaries, results = report_of(run)
    [kept] = results[SUITE]["m1"]
    assert "transcript" not in kept and len(kept["detail"]) == len(kept["error"]) == TEXT_KEPT
    assert summaries == {SUITE: {"m1": {"score": 0.0}}} and long.transcript  # the run itself is left as it was


async def test_the_lost_job_hook_deletes_the_key_a_dead_workers_run_left(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENGLM_SECRET_KEY", "test-master-key")  # the hook opens the key store from the settings
    accounts, service, alice, _ = await setup(database)
    run = await service.start(alice, RunRequest([SUITE], ["m1"]))
    key, _ = await accounts.create_key(alice.account_id, name=f"eval run {run.id}")
    await service.runs.set_key(run.id, key.id)
    await lost_hooks.get(KIND)(service.jobs.store, run.job)
    [view] = [v for v in await accounts.keys(alice.account_id, include_deleted=True) if v.key.id == key.id]
    assert view.key.status == "deleted" and view.key.sealed_secret is None
    assert (await service.runs.get(run.id)).key_id is None


async def test_the_runs_cleanup_ends_even_when_cancelled_twice_meanwhile() -> None:
    """A cancelled run is cancelled twice (its own progress check, then the runner's heartbeat): the key's
    revocation and the rest of the cleanup still run to their end, and the cancellation comes after."""
    done: list[str] = []

    async def cleanup() -> None:
        await asyncio.sleep(0.05)
        done.append("revoked")
        await asyncio.sleep(0.05)
        done.append("cleaned")

    outer = asyncio.ensure_future(_despite_cancellation(cleanup()))
    await asyncio.sleep(0.01)
    outer.cancel()
    await asyncio.sleep(0.06)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert done == ["revoked", "cleaned"]
