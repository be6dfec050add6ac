"""A job worker process: ``openglm jobs work`` or ``python -m openglm.jobs.worker``.

It opens the database the server uses (the same settings, ``OPENGLM_*``) and runs a ``JobRunner`` until SIGTERM or
SIGINT, when it gives its running jobs back. Run as many as the work needs, on any machine that reaches the
database (PostgreSQL across machines; a SQLite file on one machine). A worker that is killed outright holds its
jobs until their leases expire (``OPENGLM_JOB_LEASE_SECONDS``); then any worker or server takes them over and
their handlers resume from their last checkpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from ..config import Settings
from ..store.db import open_database
from ..store.private import private_directory
from .kinds import import_kinds, load_builtin_kinds, shut_down_kinds
from .runner import JobRunner
from .store import JobStore

log = logging.getLogger(__name__)


async def work(
    settings: Settings,
    *,
    kinds: Sequence[str] | None = None,
    modules: Sequence[str] = (),
    slots: int | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run jobs until ``stop`` is set (or SIGTERM/SIGINT arrive)."""
    load_builtin_kinds()
    import_kinds([*settings.split(settings.plugins), *modules])
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    private_directory(settings.data_dir)
    db = await open_database(settings.resolved_database_url())
    try:
        runner = JobRunner.from_settings(
            settings, JobStore(db), kinds=kinds, slots=slots if slots is not None else max(1, settings.job_workers)
        )
        runner.kind_slots = {kind: max(1, n) for kind, n in runner.kind_slots.items()}  # 0 means "not in the server"
        await runner.start()
        own = "".join(f", {n} more for {kind}" for kind, n in runner.kind_slots.items())
        log.info(
            "job worker %s: %d slots%s (kinds: %s)", runner.owner, runner.slots, own, ", ".join(runner.kind_names())
        )
        try:
            await stop.wait()
        finally:
            await runner.close()
            await shut_down_kinds()
    finally:
        await db.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kinds", help="comma-separated job kinds to run (default: every registered kind)")
    parser.add_argument(
        "--import",
        dest="modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module that registers more job kinds (repeatable)",
    )
    parser.add_argument(
        "--slots",
        type=int,
        help="jobs run at once of the kinds without slots of their own (default: OPENGLM_JOB_WORKERS, at least 1; "
        "ingestion has OPENGLM_INGEST_WORKERS of its own)",
    )


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    kinds = Settings.split(args.kinds) if args.kinds else None
    asyncio.run(work(settings, kinds=kinds, modules=args.modules, slots=args.slots))
    return 0


def add_parsers(sub: Any) -> None:
    jobs = sub.add_parser("jobs", help="background jobs")
    commands = jobs.add_subparsers(dest="jobs_command", required=True)
    worker = commands.add_parser("work", help="run a job worker until SIGTERM")
    add_arguments(worker)
    worker.set_defaults(func=run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m openglm.jobs.worker", description="run a job worker")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
