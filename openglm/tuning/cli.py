"""``openglm finetune create | list | show | events | cancel``: fine-tuning jobs through a running server's API.
(And ``openglm adapters import``, an operator's command on the server's own database: ``imported.py``.)

A client of the HTTP API like any SDK (``/v1/files``, ``/v1/fine_tuning/jobs...``), not of the store: it works
against a server on another machine. The server is ``--url`` or ``OPENGLM_URL`` (default: this machine's
``OPENGLM_HOST``/``OPENGLM_PORT``), the key ``--api-key`` or ``OPENGLM_API_KEY`` (none for a server with
authentication off). ``create`` prints the job id alone on stdout (``JOB=$(openglm finetune create ...)``).

``--follow`` polls the job's events until it ends: a progress bar redrawn in place (``\\r``) on a terminal,
one plain line per step otherwise. Exit status: 0 done (or succeeded), 1 failed (the job, the server or the
connection), 2 refused as invalid (a training file's line-numbered problems, an unknown model, a bad flag),
3 cancelled, 130 interrupted (the job goes on).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import httpx

from ..config import Settings

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_CANCELLED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
FINISHED = {"succeeded": EXIT_OK, "failed": EXIT_FAILED, "cancelled": EXIT_CANCELLED}
EVENT_PAGE = 1000  # the API's largest events page
UPLOAD_TIMEOUT = 600.0  # seconds: a training file may be 100 MB


class ApiError(Exception):
    """The server's ``{"error": {"code", "message"}}``, or a connection that failed (status 0)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Client:
    """The endpoints this command uses, as JSON in and out; every failure is an ``ApiError``."""

    def __init__(self, url: str, api_key: str, timeout: float = 30.0):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url
        self.http = httpx.Client(base_url=url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **options: Any) -> Any:
        try:
            response = self.http.request(method, path, **options)
        except httpx.HTTPError as exc:
            raise ApiError(0, "", f"cannot reach the server at {self.url}: {exc}") from None
        if response.status_code >= 400:
            raise error_of(response)
        return response.json()

    def upload(self, path: Path) -> str:
        with path.open("rb") as data:
            files = {"file": (path.name, data, "application/jsonl")}
            uploaded = self.call(
                "POST", "/v1/files", files=files, data={"purpose": "fine-tune"}, timeout=UPLOAD_TIMEOUT
            )
        return str(uploaded["id"])

    def delete_file(self, file_id: str) -> None:
        self.call("DELETE", f"/v1/files/{file_id}")

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        job: dict[str, Any] = self.call("POST", "/v1/fine_tuning/jobs", json=body)
        return job

    def jobs(self, limit: int, after: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit} | ({"after": after} if after else {})
        page: dict[str, Any] = self.call("GET", "/v1/fine_tuning/jobs", params=params)
        return page

    def job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.call("GET", f"/v1/fine_tuning/jobs/{job_id}")
        return job

    def events(self, job_id: str, after: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": EVENT_PAGE} | ({"after": after} if after else {})
        page: dict[str, Any] = self.call("GET", f"/v1/fine_tuning/jobs/{job_id}/events", params=params)
        return page

    def cancel(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.call("POST", f"/v1/fine_tuning/jobs/{job_id}/cancel")
        return job


def error_of(response: httpx.Response) -> ApiError:
    try:
        error = response.json()["error"]
        return ApiError(response.status_code, str(error.get("code", "")), str(error.get("message", "")))
    except (ValueError, KeyError, TypeError, AttributeError):
        return ApiError(response.status_code, "", f"HTTP {response.status_code}: {response.text[:200]}")


# The server lists a file's problems as "…: line 2: …; line 5: … (and 3 more lines with problems)".
LINE_PROBLEM = re.compile(r"(?:^|; |: )(?=line \d+[: ])")
MORE_PROBLEMS = re.compile(r" (\(and \d+ more lines? with problems\))$")


def problems_of(message: str) -> tuple[str, list[str]]:
    """A message's head and its line-numbered problems, one per item (none when it names no line)."""
    more = MORE_PROBLEMS.search(message)
    body = message[: more.start()] if more else message
    parts = LINE_PROBLEM.split(body)
    head = parts[0].rstrip(":; ")
    if len(parts) < 2 or (not head and len(parts) == 2 and not more):  # no line, or one line and nothing else
        return message, []
    return head, [part.rstrip("; ") for part in parts[1:]] + ([more.group(1)] if more else [])


def report_error(error: ApiError, err: TextIO) -> int:
    code = f" ({error.code})" if error.code else ""
    head, problems = problems_of(error.message)
    print(f"error{code}: {head}" + (":" if problems else ""), file=err)
    for problem in problems:
        print(f"  {problem}", file=err)
    return EXIT_INVALID if error.status == 400 else EXIT_FAILED


# --- progress ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """A metrics event's numbers (the API's ``data``: both SDKs' names; these are OpenAI's and Zhipu's)."""

    step: int
    total: int
    epoch: float | None = None
    loss: float | None = None
    eval_loss: float | None = None
    tokens_per_second: float | None = None
    remaining: str | None = None  # "HH:MM:SS"

    @classmethod
    def of(cls, data: dict[str, Any]) -> Progress:
        return cls(
            step=int(data.get("step") or data.get("current_steps") or 0),
            total=int(data.get("total_steps") or 0),
            epoch=data.get("epoch"),
            loss=data.get("train_loss", data.get("loss")),
            eval_loss=data.get("valid_loss", data.get("eval_loss")),
            tokens_per_second=data.get("tokens_per_second"),
            remaining=data.get("remaining_time"),
        )

    def summary(self) -> str:
        parts = [f"step {self.step}/{self.total or '?'}"]
        if self.epoch is not None:
            parts.append(f"epoch {self.epoch:.2f}")
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        if self.eval_loss is not None:
            parts.append(f"eval loss {self.eval_loss:.4f}")
        if self.tokens_per_second is not None:
            parts.append(f"{self.tokens_per_second:,.0f} tok/s")
        if self.remaining is not None:
            parts.append(f"ETA {self.remaining}")
        return "  ".join(parts)

    def bar(self, width: int) -> str:
        """``[#####.....] 50% step 5/10 …`` in at most ``width`` characters (the bar shrinks, then the text)."""
        fraction = min(1.0, self.step / self.total) if self.total else 0.0
        text = f"{fraction:4.0%} {self.summary()}"
        cells = max(10, min(40, width - len(text) - 3))
        filled = round(fraction * cells)
        return f"[{'#' * filled}{'.' * (cells - filled)}] {text}"[: max(1, width)]


class Display:
    """Events as they come: on a terminal, messages scroll above a progress bar redrawn in place with ``\\r``;
    elsewhere (a pipe, a log file), one plain line per event."""

    def __init__(self, out: TextIO, tty: bool | None = None):
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.shown = ""  # the bar on the screen now
        self.step = -1  # the last step shown

    def event(self, event: dict[str, Any]) -> None:
        data = event.get("data")
        if event.get("type") == "metrics" and isinstance(data, dict):
            progress = Progress.of(data)
            if progress.step != self.step:  # a checkpoint repeats its step's numbers: shown as its message
                self.step = progress.step
                self.progress(progress)
                return
        level = event.get("level", "info")
        self.message(("" if level == "info" else f"{level}: ") + str(event.get("message", "")))

    def progress(self, progress: Progress) -> None:
        if not self.tty:
            self.line(progress.summary())
            return
        width = shutil.get_terminal_size().columns - 1  # the last column would wrap on some terminals
        bar = progress.bar(width)
        self.out.write("\r" + bar.ljust(len(self.shown)))
        self.out.flush()
        self.shown = bar

    def message(self, text: str) -> None:
        bar = self.shown
        self.clear()
        self.line(text)
        if bar:
            self.out.write(bar)
            self.out.flush()
            self.shown = bar

    def line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def clear(self) -> None:
        if self.shown:
            self.out.write("\r" + " " * len(self.shown) + "\r")
            self.shown = ""

    def close(self) -> None:
        """Leave the last bar on the screen and end its line."""
        if self.shown:
            self.out.write("\n")
            self.out.flush()
            self.shown = ""


def follow(client: Client, job_id: str, display: Display, interval: float, *, sleep: Callable[[float], None]) -> int:
    """Show the job's events until it ends (then its outcome); the exit status of its end. Ctrl-C stops
    following, not the job."""
    after: str | None = None
    try:
        while True:
            after = drain(client, job_id, after, display)
            job = client.job(job_id)
            if job["status"] in FINISHED:
                drain(client, job_id, after, display)  # what it wrote before it ended
                display.close()
                return outcome(job, display.out)
            sleep(interval)
    except KeyboardInterrupt:
        display.close()
        print(f"stopped following; the job goes on (openglm finetune cancel {job_id} stops it)", file=sys.stderr)
        return EXIT_INTERRUPTED


def drain(client: Client, job_id: str, after: str | None, display: Display) -> str | None:
    """Show every event after ``after``; the id of the last one."""
    while True:
        page = client.events(job_id, after)
        for event in page["data"]:
            display.event(event)
            after = event["id"]
        if not page.get("has_more") or not page["data"]:
            return after


def outcome(job: dict[str, Any], out: TextIO) -> int:
    status = job["status"]
    if status == "succeeded":
        print(f"succeeded: {job['fine_tuned_model']} ({job.get('trained_tokens') or 0} trained tokens)", file=out)
    elif status == "failed":
        error = job.get("error") or {}
        print(f"failed: {error.get('message', 'the job failed')} ({error.get('code', '')})", file=out)
    else:
        print(f"{status}", file=out)
    return FINISHED.get(status, EXIT_OK)


# --- commands ------------------------------------------------------------------------------------------------


def _file_id(client: Client, given: str, uploaded: list[str]) -> str:
    """A local JSONL file is uploaded (purpose fine-tune); anything else is taken as an uploaded file's id."""
    path = Path(given).expanduser()
    if path.is_file():
        file_id = client.upload(path)
        uploaded.append(file_id)
        return file_id
    if "/" in given or given.endswith((".jsonl", ".json")):
        raise ApiError(400, "", f"{given}: no such file")
    return given


def _number(value: str) -> int | float | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number or auto") from None


def job_body(args: argparse.Namespace, training: str, validation: str | None) -> dict[str, Any]:
    """OpenAI's create body: ``method`` carries the hyperparameters given (the server fills in the rest)."""
    given = {
        "n_epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate_multiplier": args.lr_multiplier,
        "beta": args.beta,
    }
    hyperparameters = {name: value for name, value in given.items() if value is not None}
    body: dict[str, Any] = {
        "model": args.model,
        "training_file": training,
        "method": {"type": args.method, args.method: {"hyperparameters": hyperparameters}},
    }
    for name, value in (("validation_file", validation), ("suffix", args.suffix), ("seed", args.seed)):
        if value is not None:
            body[name] = value
    return body


def create(client: Client, args: argparse.Namespace) -> int:
    uploaded: list[str] = []
    try:
        training = _file_id(client, args.training_file, uploaded)
        validation = None if args.validation_file is None else _file_id(client, args.validation_file, uploaded)
        job = client.create(job_body(args, training, validation))
    except ApiError:
        for file_id in uploaded:  # uploaded for this job alone, which does not exist
            with contextlib.suppress(ApiError):
                client.delete_file(file_id)
        raise
    print(job["id"], flush=True)
    print(f"created {job['id']} ({job['status']}): {job['method']['type']} on {job['model']}", file=sys.stderr)
    if not args.follow:
        return EXIT_OK
    return follow(client, job["id"], Display(sys.stdout), args.interval, sleep=time.sleep)


def _when(seconds: int | None) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S") if seconds else ""


def list_jobs(client: Client, args: argparse.Namespace) -> int:
    from ..accounts.cli import table

    page = client.jobs(args.limit, args.after)
    if args.json:
        print(json.dumps(page, indent=2))
        return EXIT_OK
    rows = [
        (j["id"], j["status"], j["model"], j.get("fine_tuned_model"), j.get("trained_tokens"), _when(j["created_at"]))
        for j in page["data"]
    ]
    print(table(("id", "status", "model", "fine_tuned_model", "trained_tokens", "created (UTC)"), rows))
    if page.get("has_more") and page["data"]:
        print(f"more: --after {page['data'][-1]['id']}", file=sys.stderr)
    return EXIT_OK


def show(client: Client, args: argparse.Namespace) -> int:
    job = client.job(args.job_id)
    if args.json:
        print(json.dumps(job, indent=2))
    else:
        print(describe(job))
    if not args.follow:
        return EXIT_OK
    return follow(client, job["id"], Display(sys.stdout), args.interval, sleep=time.sleep)


def describe(job: dict[str, Any]) -> str:
    hp = job["hyperparameters"]
    hyperparameters = ", ".join(f"{name} {value}" for name, value in hp.items() if value is not None)
    error = job.get("error")
    rows = [
        ("id", job["id"]),
        ("status", job["status"]),
        ("model", job["model"]),
        ("method", job["method"]["type"]),
        ("hyperparameters", f"{hyperparameters}, seed {job['seed']}"),
        ("training_file", job["training_file"]),
        ("validation_file", job.get("validation_file")),
        ("suffix", job.get("user_provided_suffix")),
        ("fine_tuned_model", job.get("fine_tuned_model")),
        ("trained_tokens", job.get("trained_tokens")),
        ("result_files", ", ".join(job.get("result_files") or []) or None),
        ("created (UTC)", _when(job["created_at"])),
        ("finished (UTC)", _when(job.get("finished_at")) or None),
        ("error", f"{error['message']} ({error['code']})" if error else None),
    ]
    return "\n".join(f"{name + ':':17} {value}" for name, value in rows if value not in (None, ""))


def events(client: Client, args: argparse.Namespace) -> int:
    if args.follow:
        return follow(client, args.job_id, Display(sys.stdout), args.interval, sleep=time.sleep)
    after: str | None = None
    while True:
        page = client.events(args.job_id, after)
        for event in page["data"]:
            extra = f"  {json.dumps(event['data'])}" if event.get("data") else ""
            print(f"{_when(event['created_at'])}  {event['level']:5}  {event['message']}{extra}")
            after = event["id"]
        if not page.get("has_more") or not page["data"]:
            return EXIT_OK


def cancel(client: Client, args: argparse.Namespace) -> int:
    """A queued job ends cancelled at once; a running one stops within seconds (``show --follow`` sees it end)."""
    job = client.cancel(args.job_id)
    status = job["status"]
    if status in ("queued", "running", "validating_files"):
        print(f"{job['id']}  {status}: cancellation requested")
    else:
        print(f"{job['id']}  {status}" + ("" if status == "cancelled" else " (it had already ended)"))
    return EXIT_OK


Command = Callable[[Client, argparse.Namespace], int]


def _run(command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        settings = Settings()
        client = Client(args.url or settings.client_url(), args.api_key or settings.api_key)
        try:
            return command(client, args)
        except ApiError as error:
            return report_error(error, sys.stderr)
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        finally:
            client.close()

    return run


def add_parsers(sub: Any) -> None:
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument("--url", help="the server (default: OPENGLM_URL, else OPENGLM_HOST:OPENGLM_PORT)")
    server.add_argument("--api-key", help="the key to send (default: OPENGLM_API_KEY)")
    parser = sub.add_parser(
        "finetune",
        help="fine-tuning jobs on a running server (OPENGLM_URL, OPENGLM_API_KEY)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="action", required=True)
    create_parser = commands.add_parser("create", parents=[server], help="start a job; prints its id")
    create_parser.add_argument("training_file", help="a local JSONL file (uploaded, purpose fine-tune) or a file id")
    create_parser.add_argument(
        "--model", required=True, help="the base model (a catalog model), or your fine-tuned model to train further"
    )
    create_parser.add_argument("--method", choices=("supervised", "dpo"), default="supervised")
    create_parser.add_argument("--validation-file", help="a local JSONL file or a file id")
    create_parser.add_argument("--epochs", type=_number, help='a number or "auto"')
    create_parser.add_argument("--batch-size", type=_number, help='a number or "auto"')
    create_parser.add_argument("--lr-multiplier", type=_number, help='a number or "auto"')
    create_parser.add_argument("--beta", type=_number, help='DPO only: a number or "auto"')
    create_parser.add_argument("--suffix", help="part of the fine-tuned model's name")
    create_parser.add_argument("--seed", type=int)
    _follow_arguments(create_parser)
    create_parser.set_defaults(func=_run(create))
    listing = commands.add_parser("list", parents=[server], help="your jobs, newest first")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--after", help="a job id: the page after it")
    listing.add_argument("--json", action="store_true", help="the API's JSON")
    listing.set_defaults(func=_run(list_jobs))
    for name, handler, what in (("show", show, "a job"), ("events", events, "a job's events, oldest first")):
        command = commands.add_parser(name, parents=[server], help=what)
        command.add_argument("job_id")
        if name == "show":
            command.add_argument("--json", action="store_true", help="the API's JSON")
        _follow_arguments(command)
        command.set_defaults(func=_run(handler))
    cancel_parser = commands.add_parser("cancel", parents=[server], help="cancel a queued or running job")
    cancel_parser.add_argument("job_id")
    cancel_parser.set_defaults(func=_run(cancel))
    adapters = sub.add_parser("adapters", help="LoRA adapters made elsewhere, as fine-tuned models (operators)")
    adapter_commands = adapters.add_subparsers(dest="action", required=True)
    importing = adapter_commands.add_parser(
        "import", help="a llama.cpp LoRA adapter GGUF as a fine-tuned model of an account; prints its id"
    )
    importing.add_argument("adapter", type=Path, help="the adapter GGUF")
    importing.add_argument("--base", required=True, help="the catalog model it adapts")
    importing.add_argument("--account", required=True, help="the account that will own it (id or name)")
    importing.add_argument("--suffix", help="part of the model's name")
    importing.set_defaults(func=import_command)


def import_command(args: argparse.Namespace) -> int:
    """``openglm adapters import``: the server's own settings (database, data directory, catalog) like the other
    operator commands; a running server serves the model at once (fine-tuned models are read per request)."""
    import asyncio

    from ..accounts.cli import open_store
    from ..catalog import Catalog
    from ..errors import OpenGLMError
    from ..files.blobs import LocalBlobStore
    from ..files.quota import StorageQuota
    from .imported import import_adapter

    settings = Settings()

    async def main() -> str:
        async with open_store(settings) as store:
            account = (await store.account_view(args.account)).account
            record = await import_adapter(
                store.db,
                LocalBlobStore(settings.data_dir / "blobs"),
                StorageQuota(store.db, settings.storage_quota_bytes()),
                Catalog.from_file(settings.models_file),
                account_id=account.id,
                base=args.base,
                adapter=args.adapter,
                label=args.suffix,
            )
            return record.id

    try:
        print(asyncio.run(main()))
    except OpenGLMError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


def _follow_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--follow", action="store_true", help="show progress until the job ends")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls with --follow")
