"""The registry of job kinds: a name → an async handler given a ``JobContext``; what it returns (a JSON
object, or None) is the job's result.

    @job_kinds.register("fine_tuning")
    async def fine_tune(ctx: JobContext) -> dict[str, Any] | None: ...

A kind may also register a hook for a job of it that the job system ended without its handler knowing
(``lost_hooks``: every attempt's worker died, ``worker_lost``), so the kind can mark what it was working on (a
document's status) failed; and slots of its own in every runner (``own_slots``: a function of the settings), so
that long jobs of other kinds cannot hold every slot while it waits (ingestion behind fine-tuning).

Workers run the kinds registered in their process: the built-in modules are imported by ``load_builtin_kinds``;
a worker process can import more (``openglm jobs work --import module``).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..registry import Registry
from .context import JobContext
from .store import JobRecord, JobStore

if TYPE_CHECKING:
    from ..config import Settings

JobHandler = Callable[[JobContext], Awaitable[dict[str, Any] | None]]
job_kinds: Registry[JobHandler] = Registry("job kind")
LostHook = Callable[[JobStore, JobRecord], Awaitable[None]]
lost_hooks: Registry[LostHook] = Registry("lost-job hook")
SlotsSetting = Callable[["Settings"], int]
own_slots: Registry[SlotsSetting] = Registry("own slots")

# Modules whose import registers the platform's own kinds (fine-tuning, ingestion, ... as they move here).
BUILTIN_MODULES: tuple[str, ...] = (
    "openglm.tuning.handler",
    "openglm.tuning.merge_job",
    "openglm.knowledge.ingest",
    "openglm.evals.job",
)


# What a worker process runs when it stops, after its runner: kinds that opened something of their own for the
# process (ingestion's embedding models, in a worker process without the server's) close it here.
shutdown_hooks: list[Callable[[], Awaitable[None]]] = []


async def shut_down_kinds() -> None:
    for hook in shutdown_hooks:
        await hook()


def load_builtin_kinds() -> None:
    import_kinds(BUILTIN_MODULES)


def import_kinds(modules: Iterable[str]) -> None:
    for module in modules:
        importlib.import_module(module)
