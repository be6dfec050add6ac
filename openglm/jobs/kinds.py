"""The registry of job kinds: a name → an async handler given a ``JobContext``; what it returns (a JSON
object, or None) is the job's result.

    @job_kinds.register("fine_tuning")
    async def fine_tune(ctx: JobContext) -> dict[str, Any] | None: ...

Workers run the kinds registered in their process: the built-in modules are imported by ``load_builtin_kinds``;
a worker process can import more (``openglm jobs work --import module``).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..registry import Registry
from .context import JobContext

JobHandler = Callable[[JobContext], Awaitable[dict[str, Any] | None]]
job_kinds: Registry[JobHandler] = Registry("job kind")

# Modules whose import registers the platform's own kinds (fine-tuning, ingestion, ... as they move here).
BUILTIN_MODULES: tuple[str, ...] = ("openglm.tuning.handler",)


def load_builtin_kinds() -> None:
    import_kinds(BUILTIN_MODULES)


def import_kinds(modules: Iterable[str]) -> None:
    for module in modules:
        importlib.import_module(module)
