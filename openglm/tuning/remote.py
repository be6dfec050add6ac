"""The ``remote`` trainer: a job trained by an OpenAI-compatible fine-tuning API — another OpenGLM on a GPU box, or
a provider that lets the LoRA adapter be downloaded — and served here, on the local base, with the adapter it made.

    RemoteTrainer.train
      upload the validated lines          POST /files (purpose fine-tune), training and validation
      create the job                      POST /fine_tuning/jobs (the base's remote name, method, hyperparameters,
                                          seed); its id saved at once as this job's checkpoint
      poll                                GET /fine_tuning/jobs/{id}/events?after=<last seen> → progress (billed
                                          here), checkpoints, messages; GET /fine_tuning/jobs/{id} → status
      succeeded                           the ``.gguf`` among its result_files → GET /files/{id}/content → the
                                          adapter in this job's workdir
      failed / cancelled there            this job fails with the remote's message
      cancelled here                      POST /fine_tuning/jobs/{id}/cancel
      paused here                         POST /fine_tuning/jobs/{id}/pause (OpenAI's and OpenGLM's); resumed here:
                                          the next attempt re-attaches and POSTs .../resume to a job found paused

An attempt that runs again (the job re-claimed after its worker died, or after a restart) re-attaches to the remote
job named in its checkpoint instead of starting another; an attempt that died after creating the remote job but
before saving its id finds it by its training file (uploaded and saved first). The remote's being unreachable or
answering 5xx/429 is waited out for ``OPENGLM_FINE_TUNING_REMOTE_PATIENCE_SECONDS``, then the attempt is given up
as retryable (and the next one re-attaches); a 4xx is the job's failure, with the remote's message. A remote that
cannot pause (its API has no pause, or it answered an error) goes on training while this job is paused, which the
job's events say; the resumed job re-attaches to it, finished or not.

LoRA's settings (OpenGLM's ``lora_*`` hyperparameters) are sent only when the job set them away from the defaults:
another OpenGLM honours them, and a provider that does not know them refuses the job (its message is this job's
failure) rather than train an adapter of another shape.

Events are read oldest first, after the last id seen (OpenGLM's order). ``metrics`` events carry OpenGLM's fields
(``step``, ``total_steps``, ``epoch``, ``train_loss``, ``valid_loss``, ``learning_rate``, ``tokens_per_second``,
``trained_tokens``, ``elapsed_time``/``remaining_time`` as HH:MM:SS) or only OpenAI's (``step``, ``train_loss``,
``valid_loss``, ``train_mean_token_accuracy``); what is missing is derived from the task (total steps) or kept
from the last report (trained tokens; the final count is the remote job's ``trained_tokens``). A metrics event
without a training loss is a checkpoint listing (OpenGLM's) and becomes this job's checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import httpx

from ..config import Settings
from ..jobs.context import JobCancelled, JobFailed, JobPaused
from .lora_settings import LoRASettings
from .pipeline import ADAPTER_FILE
from .trainers import Metrics, TrainerUnavailable, TrainingOutcome, TrainingReporter, TrainingTask

CANCEL_TIMEOUT = 10.0  # seconds the remote cancel (or pause) may take when this job is cancelled (or paused)
EVENT_PAGE = 100


class RemoteRefused(Exception):
    """The remote answered 4xx: a request it will not take (an unknown base, a bad file, a wrong key)."""


class RemoteUnavailable(Exception):
    """The remote could not be reached or answered 5xx/429: worth asking again later. Past the patience it is the
    attempt's exception, which the job system retries (the next attempt re-attaches)."""


class RemoteAPI:
    """The few calls the trainer makes, over one HTTP client; errors as ``RemoteRefused`` / ``RemoteUnavailable``
    with the remote's own message."""

    def __init__(self, url: str, api_key: str):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(
            base_url=url.rstrip("/") + "/", headers=headers, timeout=httpx.Timeout(120.0, connect=10.0)
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self.client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise RemoteUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        _raise_for(response, f"{method} {path}")
        try:
            return response.json()
        except ValueError:
            raise RemoteUnavailable(f"{method} {path}: the answer is not JSON") from None

    async def upload(self, name: str, lines: list[dict[str, Any]]) -> str:
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
        record = await self.call(
            "POST", "files", files={"file": (name, data, "application/jsonl")}, data={"purpose": "fine-tune"}
        )
        return str(record["id"])

    async def events(self, job_id: str, after: str | None) -> list[dict[str, Any]]:
        """Every event after ``after``, oldest first, page by page."""
        found: list[dict[str, Any]] = []
        while True:
            params: dict[str, Any] = {"limit": EVENT_PAGE, **({"after": after} if after else {})}
            page = await self.call("GET", f"fine_tuning/jobs/{job_id}/events", params=params)
            data = [event for event in page.get("data") or [] if isinstance(event, dict)]
            found += data
            if not data or not page.get("has_more"):
                return found
            after = str(data[-1]["id"])

    async def download(self, file_id: str, path: Path) -> None:
        """The file's content into ``path`` (written whole, then renamed: never a half adapter)."""
        partial = path.with_suffix(".partial")
        try:
            async with self.client.stream("GET", f"files/{file_id}/content") as response:
                if response.status_code >= 400:
                    await response.aread()
                _raise_for(response, f"GET files/{file_id}/content")
                with partial.open("wb") as out:
                    async for chunk in response.aiter_bytes(1 << 20):
                        await asyncio.to_thread(out.write, chunk)
        except httpx.TransportError as exc:
            raise RemoteUnavailable(f"GET files/{file_id}/content: {type(exc).__name__}: {exc}") from None
        os.replace(partial, path)


def _raise_for(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status < 400:
        return
    message = response.text[:500]
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        error = response.json()["error"]
        message = str(error.get("message") or message) if isinstance(error, dict) else str(error)
    if status >= 500 or status in (408, 429):
        raise RemoteUnavailable(f"{what}: {status} {message}")
    raise RemoteRefused(f"{what}: {status} {message}")


class RemoteTrainer:
    def __init__(self, settings: Settings):
        self.url = settings.fine_tuning_remote_url
        self.api_key = settings.fine_tuning_remote_api_key
        self.names = _mapping(settings.fine_tuning_remote_models)
        self.poll = settings.fine_tuning_remote_poll_seconds
        self.patience = settings.fine_tuning_remote_patience_seconds

    async def train(self, task: TrainingTask, reporter: TrainingReporter) -> TrainingOutcome:
        if not self.url:
            raise TrainerUnavailable(
                "the remote trainer needs OPENGLM_FINE_TUNING_REMOTE_URL (an OpenAI-compatible fine-tuning API, "
                "e.g. another OpenGLM's http://host:8000/v1)"
            )
        api = RemoteAPI(self.url, self.api_key)
        state = dict(task.resume or {})
        try:
            if state.get("remote_job_id"):
                await reporter.message(f"re-attached to the remote job {state['remote_job_id']} at {self.url}")
            else:
                await self._start(api, task, reporter, state)
            return await Follower(api, task, reporter, state, self.poll, self.patience).run()
        except RemoteRefused as exc:
            raise JobFailed(f"the remote fine-tuning API refused: {exc}", code="remote_refused") from None
        except (JobCancelled, asyncio.CancelledError):
            # Cancelled (paused) here: the remote job is cancelled (paused) too. Not when the server is stopping or
            # the lease was lost (the task cancelled, the job not): the next attempt re-attaches to it.
            remote = state.get("remote_job_id")
            if reporter.cancelled() and remote:
                await _stop_remote(api, str(remote), "cancel", reporter)
            elif reporter.pausing() and remote:
                await _stop_remote(api, str(remote), "pause", reporter)
            raise
        finally:
            await api.close()

    async def _start(
        self, api: RemoteAPI, task: TrainingTask, reporter: TrainingReporter, state: dict[str, Any]
    ) -> None:
        """Upload the files (saved first), then create the remote job — or find the one an earlier attempt
        created before it could save its id — and save its id."""
        zero = Metrics(step=0, total_steps=total_steps(task), epoch=0.0, trained_tokens=0)
        files = dict(state.get("remote_files") or {})
        job = await _job_of(api, files["training"]) if "training" in files else None
        if "training" not in files:
            files["training"] = await api.upload(f"{task.job_id}-training.jsonl", task.training)
        if task.validation and "validation" not in files:
            files["validation"] = await api.upload(f"{task.job_id}-validation.jsonl", task.validation)
        state["remote_files"] = files
        await reporter.checkpoint(dict(state), zero)
        verb = "found (an earlier attempt created it)"
        if job is None:
            job, verb = await api.call("POST", "fine_tuning/jobs", json=self._job_body(task, files)), "created"
        state["remote_job_id"] = str(job["id"])
        await reporter.checkpoint(dict(state), zero)
        await reporter.message(f"remote job {state['remote_job_id']} {verb} at {self.url} on {job.get('model') or '?'}")

    def _job_body(self, task: TrainingTask, files: dict[str, str]) -> dict[str, Any]:
        hp = task.hyperparameters
        hyperparameters: dict[str, Any] = {
            "n_epochs": hp.n_epochs,
            "batch_size": hp.batch_size,
            "learning_rate_multiplier": hp.learning_rate_multiplier,
        }
        if task.method == "dpo" and hp.beta is not None:
            hyperparameters["beta"] = hp.beta
        lora = LoRASettings(hp.lora_rank, hp.lora_alpha, hp.lora_dropout, tuple(hp.lora_target_modules))
        if lora != LoRASettings():
            hyperparameters.update(
                lora_rank=lora.rank,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                lora_target_modules=list(lora.targets),
            )
        return {
            "model": self.names.get(task.base.id, task.base.id),
            "training_file": files["training"],
            **({"validation_file": files["validation"]} if "validation" in files else {}),
            "seed": hp.seed,
            "method": {"type": task.method, task.method: {"hyperparameters": hyperparameters}},
        }


class Follower:
    """Polls one remote job to its end: its events become the reporter's calls, its adapter the outcome."""

    def __init__(
        self,
        api: RemoteAPI,
        task: TrainingTask,
        reporter: TrainingReporter,
        state: dict[str, Any],
        poll: float,
        patience: float,
    ):
        self.api, self.task, self.reporter, self.state = api, task, reporter, state
        self.job_id = str(state["remote_job_id"])
        self.poll, self.patience = poll, patience
        self.after: str | None = None
        self.resumed = False  # a job found paused there (this one was paused, so was it) was resumed
        self.history: list[Metrics] = []
        self.last = Metrics(step=0, total_steps=total_steps(task), epoch=0.0, trained_tokens=0)

    async def run(self) -> TrainingOutcome:
        unreachable_since: float | None = None
        while True:
            if self.reporter.cancelled():
                raise JobCancelled(f"job {self.task.job_id} was cancelled")
            if self.reporter.pausing():  # ``train`` pauses the remote job on the way out
                raise JobPaused(f"job {self.task.job_id} was paused")
            try:
                await self.relay_events()
                job = await self.api.call("GET", f"fine_tuning/jobs/{self.job_id}")
                if job.get("status") in ("succeeded", "failed", "cancelled"):
                    await self.relay_events()  # what it said between the events and the status
                    return await self.finish(job)
                if job.get("status") == "paused" and not self.resumed:
                    await self.api.call("POST", f"fine_tuning/jobs/{self.job_id}/resume")
                    self.resumed = True
                    await self.reporter.message(f"resumed the remote job {self.job_id}")
                unreachable_since = None
            except RemoteUnavailable as exc:
                now = time.monotonic()
                if unreachable_since is None:
                    unreachable_since = now
                    await self.reporter.message(f"the remote fine-tuning API is unreachable ({exc}); retrying")
                elif now - unreachable_since > self.patience:
                    raise RemoteUnavailable(
                        f"the remote job {self.job_id}: unreachable for {self.patience:.0f} s: {exc}"
                    ) from None
            await asyncio.sleep(self.poll)

    async def relay_events(self) -> None:
        for event in await self.api.events(self.job_id, self.after):
            self.after = str(event["id"])
            data = event.get("data")
            if event.get("type") == "metrics" and isinstance(data, dict) and _number(data, "step") is not None:
                metrics = self.metrics(data)
                self.last = metrics
                if _number(data, "train_loss", "loss") is None:  # OpenGLM lists a checkpoint this way
                    await self.reporter.checkpoint({**self.state, "step": metrics.step}, metrics)
                else:
                    self.history.append(metrics)
                    await self.reporter.progress(metrics)
            elif event.get("message"):
                await self.reporter.message(f"remote: {event['message']}")

    def metrics(self, data: dict[str, Any]) -> Metrics:
        step = int(_number(data, "step", "current_steps") or 0)
        total = int(_number(data, "total_steps") or max(self.last.total_steps, step))
        per_epoch = steps_per_epoch(self.task)
        tokens = _number(data, "trained_tokens")
        trained = self.last.trained_tokens if tokens is None else max(int(tokens), self.last.trained_tokens)
        return Metrics(
            step=step,
            total_steps=total,
            epoch=float(_number(data, "epoch") or step / per_epoch),
            trained_tokens=trained,
            loss=_number(data, "train_loss", "loss"),
            eval_loss=_number(data, "valid_loss", "eval_loss"),
            accuracy=_number(data, "train_mean_token_accuracy", "acc"),
            learning_rate=_number(data, "learning_rate"),
            tokens_per_second=_number(data, "tokens_per_second"),
            elapsed_seconds=_clock(data.get("elapsed_time")),
            remaining_seconds=_clock(data.get("remaining_time")),
        )

    async def finish(self, job: dict[str, Any]) -> TrainingOutcome:
        status = job["status"]
        if status == "failed":
            error = job.get("error")
            error = error if isinstance(error, dict) else {}
            message = str(error.get("message") or "no reason given")
            raise JobFailed(
                f"the remote job {self.job_id} failed: {message}", code=str(error.get("code") or "remote_failed")
            )
        if status == "cancelled":
            raise JobFailed(f"the remote job {self.job_id} was cancelled there", code="remote_cancelled")
        adapter = await self.fetch_adapter(job)
        last = self.history[-1] if self.history else self.last
        trained = int(job.get("trained_tokens") or self.last.trained_tokens)
        final = Metrics(
            step=max(self.last.step, last.step),
            total_steps=self.last.total_steps,
            epoch=max(self.last.epoch, last.epoch),
            trained_tokens=max(trained, self.last.trained_tokens),
            loss=last.loss,
            eval_loss=last.eval_loss,
            accuracy=last.accuracy,
            learning_rate=last.learning_rate,
            tokens_per_second=last.tokens_per_second,
            remaining_seconds=0.0,
        )
        return TrainingOutcome(adapter, final, self.history)

    async def fetch_adapter(self, job: dict[str, Any]) -> Path:
        """The job's published adapter: the result file whose name ends in ``.gguf``."""
        for file_id in job.get("result_files") or []:
            record = await self.api.call("GET", f"files/{file_id}")
            if str(record.get("filename", "")).lower().endswith(".gguf"):
                path = self.task.workdir / ADAPTER_FILE
                await self.api.download(str(file_id), path)
                with path.open("rb") as head:
                    if head.read(4) != b"GGUF":
                        raise JobFailed(
                            f"the remote job {self.job_id}'s adapter file {file_id} is not a GGUF file",
                            code="remote_no_adapter",
                        )
                await self.reporter.message(
                    f"downloaded the adapter {record.get('filename')} ({path.stat().st_size} bytes) of the remote "
                    f"job {self.job_id}"
                )
                return path
        raise JobFailed(
            f"the remote job {self.job_id} succeeded but published no adapter (a .gguf file among its result_files); "
            "the remote trainer needs a fine-tuning API that lets the LoRA adapter be downloaded",
            code="remote_no_adapter",
        )


async def _job_of(api: RemoteAPI, training_file: str) -> dict[str, Any] | None:
    """The remote job training on ``training_file`` (made by an attempt that died before saving its id)."""
    page = await api.call("GET", "fine_tuning/jobs", params={"limit": 100})
    for job in page.get("data") or []:
        if isinstance(job, dict) and job.get("training_file") == training_file:
            return job
    return None


async def _stop_remote(api: RemoteAPI, job_id: str, action: str, reporter: TrainingReporter) -> None:
    """``cancel`` or ``pause`` the remote job; one that will not is said in the job's events."""
    try:
        await asyncio.wait_for(api.call("POST", f"fine_tuning/jobs/{job_id}/{action}"), CANCEL_TIMEOUT)
    except (RemoteRefused, RemoteUnavailable, TimeoutError) as exc:
        consequence = "" if action == "cancel" else "; it trains on there, and resuming this job re-attaches to it"
        with contextlib.suppress(Exception):
            await reporter.message(f"the remote job {job_id} could not be {action}d: {exc}{consequence}")
    else:
        if action == "pause":
            with contextlib.suppress(Exception):
                await reporter.message(f"paused the remote job {job_id}")


def steps_per_epoch(task: TrainingTask) -> int:
    return max(1, math.ceil(len(task.training) / max(1, task.hyperparameters.batch_size)))


def total_steps(task: TrainingTask) -> int:
    """The estimate until the remote says (one example per line; a template that splits conversations makes more)."""
    return steps_per_epoch(task) * task.hyperparameters.n_epochs


def _number(data: dict[str, Any], *names: str) -> float | None:
    for name in names:
        value = data.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def _clock(value: Any) -> float | None:
    """Seconds from ``HH:MM:SS`` (OpenGLM's and Zhipu's elapsed/remaining time) or a number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            hours, minutes, seconds = (float(part) for part in value.split(":"))
            return hours * 3600 + minutes * 60 + seconds
    return None


def _mapping(text: str) -> dict[str, str]:
    """``local=remote,…`` (OPENGLM_FINE_TUNING_REMOTE_MODELS)."""
    pairs = [item.split("=", 1) for item in Settings.split(text)]
    bad = [item for item in pairs if len(item) != 2 or not item[0].strip() or not item[1].strip()]
    if bad:
        raise TrainerUnavailable(
            f"OPENGLM_FINE_TUNING_REMOTE_MODELS: {'='.join(bad[0])!r} is not local=remote (comma-separated pairs)"
        )
    return {local.strip(): remote.strip() for local, remote in pairs}
