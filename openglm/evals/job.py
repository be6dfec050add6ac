"""The ``eval_run`` job kind: an eval run started through the API (``POST /v1/evals/runs``), run by the job system.

    request → eval_runs row + job (service) → a short-lived key of the account → ``run_suites`` through this server's
    HTTP API on its loopback address (``Settings.client_url``), progress as tasks end → report (summaries, outcomes)
    → the key revoked

The run calls the API as the account that asked, with a key of its own made the way a web sign-in's is (named
``eval run <id>``, the asking key as its parent, so the asking key's limits bound it and revoking that key stops the
run's calls too). Every model call is an ordinary API call: admitted, limited and billed to the account. The key
lives ``KEY_LIFETIME`` and is renewed while the run goes on, so a key a crashed worker leaves behind dies soon; it is
deleted when the run ends, however it ends (succeeded, failed, cancelled, given back at shutdown), and by the lost-
job hook when the job's worker died.

The eval environment (a local website, the stand-in image model) is started inside the job as ``openglm eval run``
starts it; the server is not reconfigured for it, so a task that needs a tool the server does not offer fails with
the server's own error in its outcome. Outcomes are stored without their transcripts (``results.json`` of the CLI
has them), their texts cut at ``TEXT_KEPT`` characters. A run given back (the server stopped) starts over on its
next claim; one that fails is not retried (``max_attempts`` 1): its calls were billed, and a second attempt would
bill them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..accounts.sealing import SecretBox, load_master_key
from ..accounts.store import AccountStore, delete_key
from ..config import Settings
from ..errors import NotFoundError
from ..jobs.context import JobContext, JobFailed
from ..jobs.kinds import job_kinds, lost_hooks
from ..jobs.store import JobRecord, JobStore
from ..store.db import Database
from ..store.types import utcnow
from .base import Outcome, Suite, get_suite
from .client import EvalClient
from .environment import EvalEnvironment, website_pages
from .runner import EvalRun, choose_tasks, run_suites
from .runs import EvalRuns, RunRequest

KIND = "eval_run"
JOB_PREFIX = "evalrun"
CONCURRENCY = 4  # tasks in flight at once, as ``openglm eval run``'s default
PROGRESS_SECONDS = 0.5  # how often progress is written while tasks end
KEY_LIFETIME = timedelta(hours=1)  # renewed while the run goes on, once less than half of it is left
TEXT_KEPT = 2000  # characters kept of an outcome's detail and error


@dataclass
class Tally:
    """Tasks done of the total, counted by ``run_suites``' progress callback."""

    total: int
    done: int = 0
    failed: int = 0
    written: tuple[int, int] = field(default=(-1, -1))

    def add(self, suite: str, model: str, outcome: Outcome) -> None:
        self.done += 1
        self.failed += 0 if outcome.passed else 1

    def progress(self) -> dict[str, int]:
        return {"done": self.done, "failed": self.failed, "total": self.total}

    def changed(self) -> bool:
        return self.written != (self.done, self.failed)

    def mark_written(self) -> None:
        self.written = (self.done, self.failed)


def suites_of(names: Sequence[str]) -> list[Suite]:
    """The named suites (``KeyError`` listing the known ones for a name the registry does not have)."""
    return [get_suite(name) for name in names]


def count_tasks(suites: Sequence[Suite], request: RunRequest) -> int:
    """The tasks the run will run: each suite's chosen tasks, for every model."""
    chosen = sum(
        len(choose_tasks(suite.tasks(request.seed), split=request.split, per_family=request.per_family))
        for suite in suites
    )
    return chosen * len(request.models)


def account_keys(settings: Settings, db: Database) -> AccountStore:
    """The key store on the job system's database, sealing secrets with the server's master key."""
    box = SecretBox(load_master_key(settings.secret_key, settings.secret_key_file, settings.data_dir))
    return AccountStore(db, box)


async def revoke(db: Database, runs: EvalRuns, run_id: str, key_id: str) -> None:
    with contextlib.suppress(NotFoundError):
        await delete_key(db, key_id)
    await runs.set_key(run_id, None)


@job_kinds.register(KIND)
async def run_eval(ctx: JobContext) -> dict[str, Any]:
    settings = ctx.settings or Settings()
    if ctx.account_id is None:
        raise JobFailed("an eval run belongs to an account", code="invalid_job")
    runs = EvalRuns(ctx.store.db)
    run = await runs.get(ctx.job_id)
    try:
        suites = suites_of(run.request.suites)
    except KeyError as exc:  # a worker process without a suite the server that took the request has
        raise JobFailed(str(exc.args[0]), code="unknown_suite") from None
    keys = account_keys(settings, ctx.store.db)
    if run.key_id is not None:  # an earlier attempt's, given back before it could revoke it
        await revoke(keys.db, runs, run.id, run.key_id)
    expires = utcnow() + KEY_LIFETIME
    key, secret = await keys.create_key(
        ctx.account_id,
        name=f"eval run {run.id}",
        user_id=ctx.payload.get("user_id"),
        expires_at=expires,
        parent_id=ctx.payload.get("key_id"),
    )
    await runs.set_key(run.id, key.id)
    env: EvalEnvironment | None = None
    client: EvalClient | None = None
    try:
        env = EvalEnvironment.start(pages=website_pages(suites, run.request.seed))
        client = EvalClient(settings.client_url(), secret)
        tally = Tally(count_tasks(suites, run.request))
        await ctx.progress(**tally.progress())
        await ctx.event(
            f"running {tally.total} tasks of {', '.join(run.request.suites)} on {', '.join(run.request.models)}"
        )
        work = asyncio.ensure_future(
            run_suites(
                suites,
                run.request.models,
                client,
                env,
                seed=run.request.seed,
                split=run.request.split,
                per_family=run.request.per_family,
                concurrency=CONCURRENCY,
                progress=tally.add,
            )
        )
        try:
            while not work.done():
                await asyncio.wait({work}, timeout=PROGRESS_SECONDS)
                if tally.changed():
                    await ctx.progress(**tally.progress())  # raises JobCancelled when a cancel was asked
                    tally.mark_written()
                expires = await _renewed(keys, key.id, expires)
            finished = work.result()
        finally:
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
        summaries, results = report_of(finished)
        await runs.save_report(ctx.store, ctx.lease, summaries, results, tally.progress())
        await ctx.event(f"done: {tally.done} tasks, {tally.failed} failed, in {finished.wall_s:.1f} s")
        return {"tasks": tally.done, "failed": tally.failed, "wall_s": round(finished.wall_s, 1)}
    finally:
        # The key goes first and whole: a cancel arrives twice (the handler's own progress check raises, then the
        # runner's heartbeat cancels the task), and the second one, landing in a slower step of this cleanup, left
        # the key alive until it expired — and ended the run "cancelled" while it was still listed.
        await _despite_cancellation(_clean_up(keys.db, runs, run.id, key.id, client, env))


async def _clean_up(
    db: Database, runs: EvalRuns, run_id: str, key_id: str, client: EvalClient | None, env: EvalEnvironment | None
) -> None:
    await revoke(db, runs, run_id, key_id)
    if client is not None:
        await client.close()
    if env is not None:
        env.stop()
        await asyncio.to_thread(shutil.rmtree, env.work_dir, True)


async def _despite_cancellation(step: Coroutine[Any, Any, None]) -> None:
    """Run ``step`` to its end even when this task is cancelled (once or more) meanwhile; the cancellation is
    raised after it."""
    task = asyncio.ensure_future(step)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    task.result()
    if cancelled:
        raise asyncio.CancelledError


async def _renewed(keys: AccountStore, key_id: str, expires: datetime) -> datetime:
    """The key's expiry, moved ``KEY_LIFETIME`` ahead once less than half of it is left."""
    now = utcnow()
    if expires - now > KEY_LIFETIME / 2:
        return expires
    await keys.update_key(key_id, expires_at=now + KEY_LIFETIME)
    return now + KEY_LIFETIME


def report_of(run: EvalRun) -> tuple[dict[str, Any], dict[str, Any]]:
    """The summaries and the outcomes as stored: no transcripts, texts cut at ``TEXT_KEPT``."""
    results: dict[str, Any] = {}
    for suite, by_model in run.results.items():
        results[suite] = {model: [_kept(outcome) for outcome in outcomes] for model, outcomes in by_model.items()}
    return run.summaries, results


def _kept(outcome: Outcome) -> dict[str, Any]:
    data = outcome.to_json()
    data.pop("transcript", None)
    data["detail"] = data["detail"][:TEXT_KEPT]
    if data["error"] is not None:
        data["error"] = data["error"][:TEXT_KEPT]
    return data


@lost_hooks.register(KIND)
async def _revoke_when_lost(store: JobStore, record: JobRecord) -> None:
    """The job's workers died before its end: the key its last attempt made goes now, not when it expires."""
    runs = EvalRuns(store.db)
    run = await runs.get(record.id)
    if run.key_id is not None:
        await revoke(store.db, runs, run.id, run.key_id)
