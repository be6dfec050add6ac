"""Run suites against models: every chosen task of every suite, for every model, through one client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .base import Outcome, Suite, Task
from .client import EvalClient
from .environment import EvalEnvironment

Progress = Callable[[str, str, Outcome], None]  # (suite, model, outcome) after each task


@dataclass
class EvalRun:
    """What one ``openglm eval run`` measured."""

    suites: list[str]
    models: list[str]
    server: str
    seed: int = 0
    split: str | None = None
    per_family: int | None = None
    families: list[str] | None = None
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    finished: str = ""
    wall_s: float = 0.0
    results: dict[str, dict[str, list[Outcome]]] = field(default_factory=dict)  # suite → model → outcomes
    summaries: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # suite → model → summary

    def to_json(self) -> dict[str, Any]:
        return {
            "suites": self.suites,
            "models": self.models,
            "server": self.server,
            "seed": self.seed,
            "split": self.split,
            "per_family": self.per_family,
            "families": self.families,
            "started": self.started,
            "finished": self.finished,
            "wall_s": round(self.wall_s, 1),
            "summaries": self.summaries,
            "results": {
                suite: {model: [o.to_json() for o in outcomes] for model, outcomes in by_model.items()}
                for suite, by_model in self.results.items()
            },
        }


def choose_tasks(
    tasks: Sequence[Task], *, split: str | None, per_family: int | None, families: Sequence[str] | None = None
) -> list[Task]:
    """The tasks of ``split`` (all when None) and of ``families`` (all when None), at most ``per_family`` of each
    family, in the suite's order."""
    chosen: list[Task] = []
    taken: dict[str, int] = {}
    for task in tasks:
        if split is not None and task.split != split:
            continue
        if families is not None and task.family not in families:
            continue
        if per_family is not None and taken.get(task.family, 0) >= per_family:
            continue
        taken[task.family] = taken.get(task.family, 0) + 1
        chosen.append(task)
    return chosen


async def run_task(suite: Suite, task: Task, model: str, client: EvalClient, env: EvalEnvironment) -> Outcome:
    """One task; a refused or failed request is a failed task with its error, never a crash of the run."""
    start = time.perf_counter()
    try:
        outcome = await suite.run(task, model, client, env)
    except Exception as exc:
        outcome = Outcome(task.id, task.family, task.split, False, 0.0, error=f"{type(exc).__name__}: {exc}")
    if not outcome.latency_s:
        outcome.latency_s = time.perf_counter() - start
    return outcome


async def run_suites(
    suites: Sequence[Suite],
    models: Sequence[str],
    client: EvalClient,
    env: EvalEnvironment,
    *,
    seed: int = 0,
    split: str | None = None,
    per_family: int | None = None,
    families: Sequence[str] | None = None,
    concurrency: int = 4,
    progress: Progress | None = None,
) -> EvalRun:
    run = EvalRun(
        [s.name for s in suites],
        list(models),
        client.base_url,
        seed,
        split,
        per_family,
        None if families is None else list(families),
    )
    start = time.perf_counter()
    gate = asyncio.Semaphore(concurrency)
    for suite in suites:
        tasks = choose_tasks(suite.tasks(seed), split=split, per_family=per_family, families=families)
        run.results[suite.name] = {}
        for model in models:  # one model at a time: models side by side must not slow each other down

            async def one(task: Task, suite: Suite = suite, model: str = model) -> Outcome:
                async with gate:
                    outcome = await run_task(suite, task, model, client, env)
                if progress is not None:
                    progress(suite.name, model, outcome)
                return outcome

            outcomes = list(await asyncio.gather(*(one(task) for task in tasks)))
            run.results[suite.name][model] = outcomes
        run.summaries[suite.name] = {m: suite.summarize(o) for m, o in run.results[suite.name].items()}
    run.wall_s = time.perf_counter() - start
    run.finished = datetime.now(UTC).isoformat(timespec="seconds")
    return run
