"""``EvalService``: what the evals API does (an OpenGLM extension). Routes parse and call one method here.

Starting a run checks the suites against the registry (an unknown one is a 1214 whose message is the registry's,
listing the known suites), bounds how many runs an account has going at once, counts the tasks, then writes the
run's row and its ``eval_run`` job in one transaction (``job.py`` runs it). Runs are private: another account's id
is not found.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..accounts.auth import Principal
from ..errors import ConcurrencyLimitError, InvalidFieldError
from ..jobs.runner import JobRunner
from .base import Suite, eval_suites, load_suites
from .job import JOB_PREFIX, KIND, count_tasks, suites_of
from .runs import EvalRunRecord, EvalRuns, RunRequest

RUNS_AT_ONCE = 2  # unfinished runs an account may have; more wait for one to end


@dataclass(frozen=True)
class FamilyInfo:
    name: str
    split: str
    tasks: int


@dataclass(frozen=True)
class SuiteInfo:
    name: str
    description: str
    needs: tuple[str, ...]
    families: list[FamilyInfo]

    @property
    def tasks(self) -> int:
        return sum(family.tasks for family in self.families)


def describe(suite: Suite) -> SuiteInfo:
    """A suite's listing: its families (in the order its tasks first name them) with their split and task count."""
    families: dict[str, FamilyInfo] = {}
    for task in suite.tasks(0):
        known = families.get(task.family)
        count = known.tasks + 1 if known is not None else 1
        families[task.family] = FamilyInfo(task.family, task.split, count)
    return SuiteInfo(suite.name, suite.description, tuple(suite.needs), list(families.values()))


class EvalService:
    def __init__(self, jobs: JobRunner, runs: EvalRuns):
        self.jobs = jobs
        self.runs = runs
        self._listing: dict[str, SuiteInfo] = {}  # tasks are made from a seed: a suite's listing never changes
        # Counting an account's unfinished runs and adding one are a pair: two requests at once must not both pass
        # the count (this process's requests; replicas share the bound only as far as their counts are current).
        self._starting = asyncio.Lock()

    async def suites(self) -> list[SuiteInfo]:
        """Every registered suite's listing (tasks are made in a thread the first time: a suite may build many)."""
        return await asyncio.to_thread(self._suites)

    def _suites(self) -> list[SuiteInfo]:
        load_suites()
        for name in eval_suites.names():
            if name not in self._listing:
                self._listing[name] = describe(eval_suites.get(name)())
        return [self._listing[name] for name in eval_suites.names()]

    async def start(self, principal: Principal, request: RunRequest) -> EvalRunRecord:
        for what, names in (("suites", request.suites), ("models", request.models)):
            if len(set(names)) != len(names):
                raise InvalidFieldError(f"{what}: each one once")
        try:
            suites = suites_of(request.suites)
        except KeyError as exc:
            raise InvalidFieldError(f"suites: {exc.args[0]}") from None
        total = await asyncio.to_thread(count_tasks, suites, request)
        if total == 0:
            raise InvalidFieldError("the suites have no task of this split: nothing to run")
        async with self._starting:
            return await self._add(principal, request, total)

    async def _add(self, principal: Principal, request: RunRequest, total: int) -> EvalRunRecord:
        going = await self.jobs.store.unfinished(KIND, account_id=principal.account_id)
        if len(going) >= RUNS_AT_ONCE:
            raise ConcurrencyLimitError(
                f"this account has {len(going)} eval runs going; start another when one has ended (or cancel one)"
            )
        payload = {"key_id": principal.key_id, "user_id": principal.user_id}  # the run's key is made with these
        async with self.runs.db.session() as session:
            job = self.jobs.store.add(
                session, KIND, payload, account_id=principal.account_id, max_attempts=1, prefix=JOB_PREFIX
            )
            await self.runs.add(session, job, request, total)
        self.jobs.wake()
        return await self.runs.get(job.id)

    async def list_runs(
        self, principal: Principal, *, limit: int, after: str | None
    ) -> tuple[list[EvalRunRecord], bool]:
        """A page of the account's runs, newest first, and whether more follow."""
        runs = await self.runs.list_runs(principal.account_id, limit=limit + 1, after=after)
        return runs[:limit], len(runs) > limit

    async def get(self, principal: Principal, run_id: str) -> EvalRunRecord:
        return await self.runs.get(run_id, account_id=principal.account_id)

    async def cancel(self, principal: Principal, run_id: str) -> EvalRunRecord:
        """Cancel the run (a finished one is left as it is); its job stops at once in this process, else at its
        worker's next heartbeat."""
        await self.runs.get(run_id, account_id=principal.account_id)
        await self.jobs.cancel(run_id, account_id=principal.account_id)
        return await self.runs.get(run_id)
