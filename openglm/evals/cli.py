"""``openglm eval``: list the suites, or run some against models and write the report."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from .base import Outcome, eval_suites, get_suite, load_suites


def _list(args: argparse.Namespace) -> int:
    load_suites()
    for name in eval_suites.names():
        suite = eval_suites.get(name)()
        tasks = suite.tasks(0)
        families = sorted({t.family for t in tasks})
        print(f"{name}: {suite.description}")
        print(f"  {len(tasks)} tasks in {len(families)} families: {', '.join(families)}")
    return 0


def _exit_on_sigterm(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _split_names(values: list[str]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _run(args: argparse.Namespace) -> int:
    from .client import EvalClient
    from .environment import EvalEnvironment, website_pages
    from .report import write_report
    from .runner import run_suites
    from .server import EvalServer

    try:
        suites = [get_suite(name) for name in _split_names(args.suite)]
    except KeyError as exc:
        print(f"openglm eval: {exc.args[0]}", file=sys.stderr)
        return 2
    models = _split_names(args.model)
    families = _split_names(args.family) if args.family is not None else None
    if families is not None:
        if not families:
            print("openglm eval: --family: no family named", file=sys.stderr)
            return 2
        known = sorted({task.family for suite in suites for task in suite.tasks(args.seed)})
        unknown = [name for name in families if name not in known]
        if unknown:
            print(
                f"openglm eval: --family {', '.join(unknown)}: not a family of these suites ({', '.join(known)})",
                file=sys.stderr,
            )
            return 2
    # A run stopped with SIGTERM (a job runner, `kill`) unwinds like Ctrl-C, so the server it started is stopped.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    env = EvalEnvironment.start(pages=website_pages(suites, args.seed))
    server = None
    try:
        if args.url:
            url = args.url
        else:
            print("starting a server for the eval…", file=sys.stderr)
            server = EvalServer(env, models_file=args.models_file, data_dir=args.data_dir)
            url = server.url
        client = EvalClient(url, args.api_key or os.environ.get("OPENGLM_API_KEY"))

        def progress(suite: str, model: str, outcome: Outcome) -> None:
            mark = "ok  " if outcome.passed else "FAIL"
            why = "" if outcome.passed else f"  {outcome.error or outcome.detail}"[:160]
            print(f"{mark} {suite}/{model} {outcome.task_id} {outcome.latency_s:.1f}s{why}", file=sys.stderr)

        async def go() -> Any:
            try:
                return await run_suites(
                    suites,
                    models,
                    client,
                    env,
                    seed=args.seed,
                    split=args.split,
                    per_family=args.per_family,
                    families=families,
                    concurrency=args.concurrency,
                    progress=None if args.quiet else progress,
                )
            finally:
                await client.close()

        run = asyncio.run(go())
    finally:
        if server is not None:
            server.stop()
        env.stop()
    shutil.rmtree(env.work_dir, ignore_errors=True)  # the started server's data; kept when the run failed
    report = write_report(run, suites, args.out)
    for suite, by_model in run.summaries.items():
        for model, summary in by_model.items():
            held = f", held-out {100 * summary['heldout']:.1f}%" if "heldout" in summary else ""
            print(f"{suite} {model}: {100 * summary['score']:.1f}%{held} ({summary['tasks']} tasks)")
    print(f"report: {report}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from .alltools.data import GENERATOR_VERSION, VERSIONS, generate

    version = GENERATOR_VERSION if args.generator_version is None else args.generator_version
    if version not in VERSIONS:  # refused before the platform starts
        print(f"openglm eval: --generator-version: this code makes {VERSIONS[0]} to {VERSIONS[-1]}", file=sys.stderr)
        return 2
    only = _split_names(args.family) if args.family else None
    command = " ".join(["openglm eval data", *sys.argv[3:]])
    args.out.parent.mkdir(parents=True, exist_ok=True)  # before the lessons run, not after (they take minutes)
    manifest = asyncio.run(
        generate(
            args.out,
            serve=args.serve,
            seed=args.seed,
            per_family=args.per_family,
            student=args.student,
            only=only,
            command=command,
            version=version,
        )
    )
    manifest_path = args.out.with_suffix(".manifest.json")
    manifest_path.write_text(json.dumps(manifest.to_json(), indent=1, ensure_ascii=False) + "\n")
    dropped = sum(len(v) for v in manifest.dropped.values())
    print(f"{manifest.lines} lines in {args.out} (sha256 {manifest.sha256[:16]}…), {dropped} instances dropped")
    print(f"manifest: {manifest_path}")
    return 0


def _ship(args: argparse.Namespace) -> int:
    import httpx

    from .alltools.ship import ship

    try:
        adapter, recipe = ship(
            args.url,
            args.api_key or os.environ.get("OPENGLM_API_KEY"),
            args.job,
            args.manifest,
            args.name,
            args.command,
            parent=args.parent,
        )
    except (ValueError, httpx.HTTPError) as exc:
        print(f"openglm eval ship: {exc}", file=sys.stderr)
        return 2
    print(f"shipped {adapter} ({adapter.stat().st_size:,} bytes) with its recipe {recipe}")
    return 0


def add_parsers(sub: Any, serve: Any) -> None:
    """``serve``: the in-process platform for ``eval data`` (the top-level CLI passes the API's; this package is
    below the API and does not import it)."""
    evals = sub.add_parser("eval", help="run the evaluation suites against models through a server")
    commands = evals.add_subparsers(dest="eval_command", required=True)
    listing = commands.add_parser("list", help="the suites and their task families")
    listing.set_defaults(func=_list)
    run = commands.add_parser("run", help="run suites against models and write results.json + report.md")
    run.add_argument("--suite", action="append", required=True, help="suite name(s), comma-separated or repeated")
    run.add_argument("--model", action="append", required=True, help="model/agent name(s) to compare side by side")
    run.add_argument("--url", help="a running server (default: start one on the catalog plus the eval environment)")
    run.add_argument("--api-key", help="the key to call --url with (default: $OPENGLM_API_KEY)")
    run.add_argument("--models-file", type=Path, help="catalog of the started server (default: OPENGLM_MODELS_FILE)")
    run.add_argument("--data-dir", type=Path, help="data directory of the started server (its fine-tuned models)")
    run.add_argument("--split", choices=["train", "heldout"], help="only this split's tasks (default: both)")
    run.add_argument("--per-family", type=int, help="at most this many tasks of each family")
    run.add_argument("--family", action="append", help="only these families' tasks (comma-separated or repeated)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--concurrency", type=int, default=4)
    run.add_argument("--out", type=Path, default=Path("eval-report"))
    run.add_argument("--quiet", action="store_true")
    run.set_defaults(func=_run)
    data = commands.add_parser("data", help="All Tools training data, made by running the real tools")
    data.add_argument("--out", type=Path, required=True, help="the JSONL file to write (manifest beside it)")
    data.add_argument("--per-family", type=int, default=40, help="instances of each training family")
    data.add_argument("--seed", type=int, default=1)
    data.add_argument("--student", default="default", help="the catalog model whose chat format the data uses")
    data.add_argument("--family", action="append", help="only these training families (comma-separated)")
    data.add_argument(
        "--generator-version",
        type=int,
        help="make an older version's data, as a recipe's generator_version records it (default: the newest)",
    )
    data.set_defaults(func=_data, serve=serve)
    shipping = commands.add_parser("ship", help="copy a fine-tuning job's adapter into the package, with its recipe")
    shipping.add_argument("--url", required=True, help="the server that ran the job")
    shipping.add_argument("--api-key")
    shipping.add_argument("--job", required=True, help="the succeeded fine-tuning job")
    shipping.add_argument(
        "--manifest",
        type=Path,
        action="append",
        required=True,
        help="the training data's manifest (repeated: data files written one after another, in that order)",
    )
    shipping.add_argument(
        "--parent", type=Path, help="the recipe of the adapter the job continued (a job on an ft: model)"
    )
    shipping.add_argument("--name", default="alltools-smollm2-135m", help="file name (without extension)")
    shipping.add_argument("--command", required=True, help="the training command, as run (recorded)")
    shipping.set_defaults(func=_ship)
