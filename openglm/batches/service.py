"""``BatchService``: batches under both prefixes, on the job system and the run service.

create:  the input file checked line by line (in a worker process: it is the caller's data) → a failed batch
         listing the bad lines, or the key's limits and balance checked now and a ``batch`` job queued with it
run:     (``job.py``) the lines not yet answered, a few at once, each through ``RunService`` as a batch line
         (the batch price, background priority for the engine), each answer kept as it comes (``batch_lines``),
         so a batch whose replica died goes on where it was; between lines: a cancel, the expiry, an empty
         balance stop it
finalize: the output and error files written (the reference's line format), counts and status set, the
         input file removed if asked (Zhipu's ``auto_delete_input_file``)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from datetime import datetime
from typing import Any

from ..accounts.auth import Principal
from ..aio import to_the_end
from ..catalog import PricedModel
from ..errors import InsufficientBalanceError, InvalidFieldError, ModelNotFoundError, NotFoundError, OpenGLMError
from ..files.store import FileStore
from ..jobs.runner import JobRunner
from ..protocol.batches import (
    BatchCreate,
    BatchError,
    BatchErrors,
    BatchObject,
    BatchPage,
    BatchRequestCounts,
    BatchUsage,
)
from ..protocol.chat import ChatCompletionRequest
from ..protocol.embeddings import EmbeddingRequest
from ..runs.collect import collect
from ..runs.service import RunService
from ..store.models import Batch
from ..store.types import utcnow
from ..untrusted.pool import shared_pool
from .input import CHAT, EMBEDDINGS, Line, Parsed, canonical_endpoint, parse_input
from .store import FINISHED, BatchStore, LineResult, NewBatch, errors_of, metadata_of, timestamp

log = logging.getLogger(__name__)
WINDOWS = ("24h",)
# Why lines that never ran are in the error file, by the batch's end.
UNRUN = {
    "cancelled": ("batch_cancelled", "the batch was cancelled before this request ran"),
    "expired": ("batch_expired", "the batch's completion window ended before this request ran"),
    "out_of_balance": ("1113", "the account's balance ran out before this request ran"),
    "failed": ("batch_failed", "the batch failed before this request ran"),
}
OUT_OF_BALANCE = "out_of_balance"  # how a batch ends whose balance ran out: status failed, errors name 1113


class BatchService:
    def __init__(self, store: BatchStore, files: FileStore, jobs: JobRunner, runs: RunService, *, concurrency: int):
        self.store = store
        self.files = files
        self.jobs = jobs
        self.runs = runs
        self.concurrency = concurrency  # lines of one batch in flight at once

    # -- the API ----------------------------------------------------------------------------------------------

    async def create(self, principal: Principal, body: BatchCreate, base_url: str) -> BatchObject:
        endpoint = canonical_endpoint(body.endpoint)
        if endpoint is None:
            raise InvalidFieldError(
                f"endpoint: {body.endpoint!r} is not batched here; use /v1/chat/completions or /v1/embeddings "
                "(Zhipu's /v4/... spellings are the same)"
            )
        window = body.completion_window or WINDOWS[0]
        if window not in WINDOWS:
            raise InvalidFieldError(f"completion_window: {window!r}; the only window offered is 24h")
        parsed = await self.parse(principal.account_id, body.input_file_id, endpoint)
        spec = await self._model(principal, endpoint, parsed) if not parsed.errors else None
        errors = [BatchError.model_validate(vars(e)) for e in parsed.errors]
        if parsed.more_errors:
            errors = [*errors, BatchError(code="more_errors", message=f"{parsed.more_errors} more lines are invalid")]
        if spec is not None:  # the key's limits (one request) and the balance now: 1113 here, not a failed batch
            await self.runs.metering.check_submission(principal, spec, "batches")
        new = NewBatch(
            account_id=principal.account_id,
            key_id=principal.key_id,
            user_id=principal.user_id,
            endpoint=endpoint,
            model=parsed.model,
            input_file_id=body.input_file_id,
            completion_window=window,
            metadata=body.metadata,
            auto_delete_input_file=bool(body.auto_delete_input_file),
            base_url=base_url,
            total=len(parsed.lines),
        )
        batch = await self.store.create(new, errors)
        self.jobs.wake()
        return batch_object(batch)

    async def parse(self, account_id: str, file_id: str, endpoint: str) -> Parsed:
        try:
            record, data = await self.files.content(account_id, file_id)
        except NotFoundError:
            raise InvalidFieldError(f"input_file_id: no file {file_id!r} in your account") from None
        if record.purpose != "batch":
            raise InvalidFieldError(f"input_file_id: file {file_id!r} has purpose {record.purpose!r}, not batch")
        parsed: Parsed = await shared_pool().run(parse_input, data, endpoint, what="the batch input file")
        return parsed

    async def _model(self, principal: Principal, endpoint: str, parsed: Parsed) -> PricedModel | None:
        """The batch's one model, as the caller may use it; an unknown one fails the batch (its lines name it)."""
        name = parsed.model or ""
        try:
            if endpoint == EMBEDDINGS:
                return self.runs.embeddings.resolve(name)
            return await self.runs.targets.priced(principal.account_id, name)
        except ModelNotFoundError as exc:
            parsed.refuse(
                "model_not_found", f"body.model {name!r}: {exc.message}", parsed.lines[0].number, "body.model"
            )
            return None

    async def get(self, principal: Principal, batch_id: str) -> BatchObject:
        return batch_object(await self.store.get(batch_id, principal.account_id))

    async def page(self, principal: Principal, limit: int, after: str | None) -> BatchPage:
        try:
            batches, more = await self.store.page(principal.account_id, limit, after)
        except NotFoundError:
            batches, more = [], False
        data = [batch_object(b) for b in batches]
        first, last = (data[0].id, data[-1].id) if data else (None, None)
        return BatchPage(data=data, first_id=first, last_id=last, has_more=more)

    async def cancel(self, principal: Principal, batch_id: str) -> BatchObject:
        """A batch that has not ended is cancelling: its lines in flight finish (and are paid for), no more start,
        then it is cancelled with what it has. One whose job has not started is cancelled now."""
        batch = await self.store.get(batch_id, principal.account_id)
        if batch.status in FINISHED or batch.status == "finalizing":
            raise InvalidFieldError(
                f"batch {batch_id} is {batch.status}; only a batch that has not ended can be cancelled"
            )
        await self.store.move(batch.id, "cancelling", only_from=frozenset({"validating", "in_progress"}))
        if batch.job_id is not None:
            job = await self.jobs.store.get(batch.job_id)
            if job.status in ("queued", "paused"):
                job = await self.jobs.store.cancel(batch.job_id)
            if job.finished:  # it never ran, its worker is gone, or it ended for good: nobody else will end it
                await self.finalize(await self.store.get(batch.id), "cancelled", await self._lines(batch))
        return batch_object(await self.store.get(batch.id))

    async def _lines(self, batch: Batch) -> list[Line] | None:
        """The batch's input lines, or None when its file cannot be read any more."""
        try:
            return (await self.parse(batch.account_id, batch.input_file_id, batch.endpoint)).lines
        except OpenGLMError:
            return None

    # -- running (the job) ------------------------------------------------------------------------------------

    async def run(self, batch_id: str) -> None:
        batch = await self.store.get(batch_id)
        if batch.status in FINISHED:
            return
        if batch.status in ("cancelling", "finalizing"):  # a cancel that came first, or a finalize cut short
            await self.finalize(batch, resumed_ending(batch), await self._lines(batch), resume=True)
            return
        await self.store.move(batch.id, "in_progress", only_from=frozenset({"validating"}))
        try:
            parsed = await self.parse(batch.account_id, batch.input_file_id, batch.endpoint)
        except OpenGLMError as exc:  # its input file was removed meanwhile: it cannot go on
            await self.fail(batch.id, f"the input file cannot be read any more: {exc.message}", exc.code)
            return
        done = await self.store.done_lines(batch.id)
        try:  # the key checked again: revoked since, and the batch does not spend for it
            principal = await self.runs.authenticator.deferred(batch.account_id, batch.key_id, "batch", batch.user_id)
        except OpenGLMError as exc:
            await self.fail(batch.id, f"the batch's key can no longer be used: {exc.message}", exc.code)
            return
        try:
            ending = await self._run_lines(batch, principal, [ln for ln in parsed.lines if ln.number not in done])
        except BaseException:  # the job was cancelled under it (a cancel raced its start): end it cancelled
            current = await asyncio.shield(self.store.get(batch.id))
            if current.status == "cancelling":
                await asyncio.shield(self.finalize(current, "cancelled", parsed.lines))
            raise
        await self.finalize(await self.store.get(batch.id), ending, parsed.lines)

    async def fail(self, batch_id: str, message: str, code: str = "500") -> None:
        """End a batch whose job cannot go on: failed, with the answers it has written out."""
        batch = await self.store.get(batch_id)
        if batch.status in FINISHED:
            return
        await self.store.set_errors(batch.id, [*errors_of(batch), {"code": code, "message": message}])
        await self.finalize(await self.store.get(batch.id), "failed", await self._lines(batch), resume=True)

    async def _run_lines(self, batch: Batch, principal: Principal, todo: list[Line]) -> str:
        """Run ``todo``, ``concurrency`` lines at a time; how the batch ends: completed, or cancelled, expired or
        out of balance when that stopped it early. Lines in flight when it stops finish."""
        running: set[asyncio.Task[bool]] = set()
        stop: str | None = None
        try:
            for line in todo:
                while len(running) >= self.concurrency:
                    finished, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    if not all(task.result() for task in finished):
                        stop = OUT_OF_BALANCE
                stop = stop or await self._interruption(batch.id)
                if stop is not None:
                    break
                running.add(asyncio.create_task(self._run_line(batch, principal, line)))
            if running and not all(await asyncio.gather(*running)):
                stop = stop or OUT_OF_BALANCE
        finally:  # the run stopped under them (a shutdown, a lost lease): they stop too, unrecorded, to run again
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        return stop or "completed"

    async def _interruption(self, batch_id: str) -> str | None:
        """ "cancelled" when a cancel came, "expired" past the completion window, else None."""
        batch = await self.store.get(batch_id)
        if batch.status == "cancelling":
            return "cancelled"
        if batch.expires_at is not None and utcnow() > batch.expires_at:
            return "expired"
        return None

    async def _run_line(self, batch: Batch, principal: Principal, line: Line) -> bool:
        """One line answered and kept; False when the balance ran out (the batch stops)."""
        enough = True
        try:
            answer = await self._answer(batch, principal, line)
            result = LineResult(line.number, line.custom_id, True, 200, answer)
        except OpenGLMError as exc:
            enough = not isinstance(exc, InsufficientBalanceError)
            result = LineResult(line.number, line.custom_id, False, exc.status, exc.to_body())
        except Exception:
            log.exception("batch %s: line %d failed", batch.id, line.number)
            error = {"error": {"code": "500", "message": "internal error; see the server log"}}
            result = LineResult(line.number, line.custom_id, False, 500, error)
        usage = result.body.get("usage") or {}
        if not enough:  # not run: listed with the lines the stop left, not as an answer
            return False
        # Kept even when the run stops now: the answer is billed, and a line not kept runs (and bills) again.
        _, cancelled = await to_the_end(
            self.store.record_line(
                batch.id, result, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            )
        )
        if cancelled:
            raise asyncio.CancelledError
        return True

    async def _answer(self, batch: Batch, principal: Principal, line: Line) -> dict[str, Any]:
        if batch.endpoint == CHAT:
            return await self.runs.answer(principal, ChatCompletionRequest.model_validate(line.body), batch.base_url)
        return await collect(await self.runs.embed(principal, EmbeddingRequest.model_validate(line.body)))

    async def finalize(
        self, batch: Batch, ending: str, lines: list[Line] | None = None, *, resume: bool = False
    ) -> None:
        """Write the output and error files and end the batch ``ending`` (completed, cancelled, expired, failed).
        Moving to ``finalizing`` claims it: a second finalize at the same time does nothing, unless ``resume``
        (the job's next attempt after one that stopped while finalizing)."""
        if batch.status in FINISHED:
            return
        claimed = await self.store.move(
            batch.id, "finalizing", only_from=frozenset({"validating", "in_progress", "cancelling"})
        )
        if not claimed and not (resume and batch.status == "finalizing"):
            return
        results = await self.store.results(batch.id)
        answered = {r.line for r in results}
        unrun = [ln for ln in lines or [] if ln.number not in answered]
        output = [output_line(r) for r in results if r.ok]
        failures = [output_line(r) for r in results if not r.ok]
        if unrun:
            code, message = UNRUN.get(ending, UNRUN["cancelled"])
            failures += [unrun_line(ln, code, message) for ln in unrun]
        errors = errors_of(batch)
        try:
            output_id = await self._write(batch, "output", output)
            error_id = await self._write(batch, "errors", failures)
        except OpenGLMError as exc:  # the account's storage is full: the batch fails saying so, not stuck finalizing
            errors.append({"code": exc.code, "message": f"the output files could not be kept: {exc.message}"})
            await self.store.move(batch.id, "failed", errors=json.dumps(errors))
            return
        if ending == OUT_OF_BALANCE:
            errors.append({"code": "1113", "message": f"the balance ran out; {len(unrun)} requests did not run"})
        await self.store.move(
            batch.id,
            "failed" if ending == OUT_OF_BALANCE else ending,
            output_file_id=output_id,
            error_file_id=error_id,
            completed=sum(1 for r in results if r.ok),
            failed=len(results) - sum(1 for r in results if r.ok) + len(unrun),
            errors=json.dumps(errors) if errors else None,
        )
        await self.store.drop_lines(batch.id)
        if batch.auto_delete_input_file:
            with contextlib.suppress(NotFoundError):  # the caller removed it already
                await self.files.delete(batch.account_id, batch.input_file_id)

    async def _write(self, batch: Batch, part: str, lines: list[dict[str, Any]]) -> str | None:
        if not lines:
            return None
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
        record = await self.files.create(
            batch.account_id, "batch_output", f"{batch.id}_{part}.jsonl", data, "application/jsonl", by_platform=True
        )
        return record.id


def resumed_ending(batch: Batch) -> str:
    """How a batch whose finalize was cut short (or that a cancel reached first) ends: as it was asked to."""
    if batch.cancelling_at is not None:
        return "cancelled"
    if batch.expires_at is not None and utcnow() > batch.expires_at:
        return "expired"
    return "completed"


def output_line(result: LineResult) -> dict[str, Any]:
    """The reference's line: ``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``."""
    request_id = str(result.body.get("request_id") or result.body.get("id") or line_id())
    response = {"status_code": result.status_code, "request_id": request_id, "body": result.body}
    return {"id": line_id(), "custom_id": result.custom_id, "response": response, "error": None}


def unrun_line(line: Line, code: str, message: str) -> dict[str, Any]:
    return {"id": line_id(), "custom_id": line.custom_id, "response": None, "error": {"code": code, "message": message}}


def line_id() -> str:
    return f"batch_req_{secrets.token_hex(12)}"


def batch_object(batch: Batch) -> BatchObject:
    errors = errors_of(batch)
    tokens = batch.prompt_tokens + batch.completion_tokens
    return BatchObject(
        id=batch.id,
        endpoint=batch.endpoint,
        model=batch.model,
        errors=BatchErrors(data=[BatchError.model_validate(e) for e in errors]) if errors else None,
        input_file_id=batch.input_file_id,
        completion_window=batch.completion_window,
        status=batch.status,  # type: ignore[arg-type]
        output_file_id=batch.output_file_id,
        error_file_id=batch.error_file_id,
        created_at=_ts(batch.created_at),
        in_progress_at=timestamp(batch.in_progress_at),
        expires_at=timestamp(batch.expires_at),
        finalizing_at=timestamp(batch.finalizing_at),
        completed_at=timestamp(batch.completed_at),
        failed_at=timestamp(batch.failed_at),
        expired_at=timestamp(batch.expired_at),
        cancelling_at=timestamp(batch.cancelling_at),
        cancelled_at=timestamp(batch.cancelled_at),
        request_counts=BatchRequestCounts(total=batch.total, completed=batch.completed, failed=batch.failed),
        usage=BatchUsage(input_tokens=batch.prompt_tokens, output_tokens=batch.completion_tokens, total_tokens=tokens),
        metadata=metadata_of(batch),
    )


def _ts(value: datetime) -> int:
    return int(value.timestamp())
