"""The server's lifespan runs a job runner (``app.state.jobs``) on the platform's database, and stopping the server
gives its running jobs back at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from openglm.api.app import create_app
from openglm.config import Settings
from openglm.jobs.runner import JobRunner
from openglm.jobs.store import JobStore
from openglm.store.db import open_database

from . import sample_kinds  # noqa: F401  (registers the test kinds)
from .helpers import lines, wait_for

CATALOG = """
[[models]]
id = "script-echo"
engine = "scripted"
source = "-"
template = "chatml"
[[models.options.script]]
when = ""
reply = "ok"
"""


async def test_the_server_runs_jobs_and_releases_them_when_it_stops(tmp_path: Path) -> None:
    (tmp_path / "models.toml").write_text(CATALOG)
    settings = Settings(
        models_file=tmp_path / "models.toml",
        data_dir=tmp_path / "data",
        secret_key_file=tmp_path / "config" / "secret.key",
        sandbox_warm=0,
        job_workers=1,
        job_lease_seconds=30,
        job_heartbeat_seconds=0.5,
        job_poll_seconds=0.1,
    )
    app = create_app(settings)
    log = tmp_path / "steps.log"
    async with app.router.lifespan_context(app):
        runner = app.state.jobs
        assert isinstance(runner, JobRunner) and runner.slots == 1
        quick = await runner.submit("test.steps", {"path": str(tmp_path / "quick.log"), "steps": 2})
        assert (await wait_for(runner.store, quick.id, {"succeeded"})).result == {"steps": 2, "attempt": 1}
        slow = await runner.submit("test.steps", {"path": str(log), "steps": 1000, "step_seconds": 0.01})
        await wait_for(runner.store, slow.id, {"running"})
        while len(lines(log)) < 3:
            await asyncio.sleep(0.02)
    database = await open_database(settings.resolved_database_url())
    try:
        released = await JobStore(database).get(slow.id)
    finally:
        await database.close()
    assert (released.status, released.attempts) == ("queued", 0)  # for the next worker, without waiting 30 s
