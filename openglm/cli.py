"""``openglm``: serve the platform, list models, run job workers (``openglm jobs work``), operate accounts, and
fine-tuning jobs on a running server (``openglm finetune``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from .config import Settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .api.app import create_app

    overrides: dict[str, object] = {}
    for key in ("host", "port", "models_file", "load_models", "threads"):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    settings = Settings(**overrides)  # type: ignore[arg-type]
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.geteuid() == 0:
        from .agent.sandbox.enter import private_mount_namespace

        # Before uvicorn starts any thread: the sandboxes' mounts are the server's alone and die with it.
        if not private_mount_namespace():
            logging.getLogger(__name__).warning("no private mount namespace: a killed server may leave mounts")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=5,
    )
    return 0


def _models(args: argparse.Namespace) -> int:
    from .catalog import Catalog, CatalogError, resolve_source

    settings = Settings(**({"models_file": args.models_file} if args.models_file else {}))
    catalog = Catalog.from_file(settings.models_file)
    for spec in catalog.specs:
        try:
            where = resolve_source(spec.source) if spec.engine != "remote" else spec.source
        except CatalogError as exc:
            where = f"unavailable: {exc}"
        aliases = f" (aliases: {', '.join(spec.aliases)})" if spec.aliases else ""
        print(f"{spec.id}{aliases}")
        print(f"  engine={spec.engine} template={spec.template} context={spec.context_length}\n  {where}")
    return 0


def _serve_in_process(settings: Settings) -> Any:
    from .api.inprocess import serve_in_process

    return serve_in_process(settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openglm", description="Self-hosted GLM-4 platform")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the API server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--models-file", type=Path)
    serve.add_argument("--load-models", help="comma-separated catalog ids to load (default: all)")
    serve.add_argument("--threads", type=int)
    serve.set_defaults(func=_serve)
    models = sub.add_parser("models", help="list the model catalog")
    models.add_argument("--models-file", type=Path)
    models.set_defaults(func=_models)
    from .accounts.cli import add_parsers

    add_parsers(sub)
    from .jobs.worker import add_parsers as add_job_parsers

    add_job_parsers(sub)
    from .tuning.cli import add_parsers as add_finetune_parsers

    add_finetune_parsers(sub)
    from .evals.cli import add_parsers as add_eval_parsers

    add_eval_parsers(sub, serve=_serve_in_process)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
