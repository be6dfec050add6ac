"""The ``fine_tune_merge`` job kind: a fine-tuned model's adapter merged into its base as one full GGUF, which
serving then loads as an engine of its own (``serving/merged.py``) instead of applying the adapter on the base.

    merge request (service) → job → a spawned, niced process runs ``merge.merge_gguf`` (base GGUF + adapter blob →
    workdir/merged.gguf) → blob merged-<job>.gguf → the model row points at it (if still wanted) → succeeded

The merge runs in a process of its own (``spawn``: the server has threads), niced like the trainer, with
``OPENGLM_FINE_TUNING_THREADS`` for llama.cpp's quantizer, so that serving keeps the cores it needs; cancelling the job
kills it. A model deleted, unmerged or merged again while the job ran gets nothing from it (``MergeSuperseded``:
the file is removed, the job fails saying so). The file a model was served from before is removed once the row
points at the new one (an engine still reading it keeps its mapping until it stops). After the row is updated the
handler checkpoints ``stage: done``, so an attempt that runs again returns that result.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import shutil
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from ..catalog import Catalog, CatalogError, resolve_source
from ..config import Settings
from ..errors import ModelNotFoundError
from ..files.blobs import LocalBlobStore
from ..files.quota import StorageQuota
from ..jobs.context import JobContext, JobFailed
from ..jobs.kinds import job_kinds, own_slots
from .finetuned import FineTunedModels, MergeSuperseded, merged_key
from .merge import Quantization

KIND = "fine_tune_merge"
JOB_PREFIX = "ftmerge"
NICE = 10  # as the trainer's: serving's threads win the cores
MERGED_FILE = "merged.gguf"


@dataclass(frozen=True)
class MergeTask:
    base_path: str
    adapter_path: str
    out: str
    quantization: Quantization
    threads: int


class MergeProcessDied(Exception):
    """The merging process ended without a result (killed: out of memory?). The job system retries it."""


# A merge takes seconds to minutes: one slot of its own, so it does not wait behind hours of training in the shared
# slots (and two merges of big models do not fill the memory at once).
own_slots.register(KIND)(lambda settings: 1)


@job_kinds.register(KIND)
async def merge_fine_tune(ctx: JobContext) -> dict[str, Any]:
    resume = ctx.resume or {}
    if resume.get("stage") == "done":
        return dict(resume["result"])
    settings = ctx.settings or Settings()
    account_id, name = ctx.account_id, str(ctx.payload["model"])
    if account_id is None:
        raise JobFailed("a merge job belongs to an account", code="invalid_job")
    blobs = LocalBlobStore(settings.data_dir / "blobs")
    # The merged file is not counted in the storage quota (an operator's bound: one per model); the quota object is
    # what ``FineTunedModels`` needs for the adapters it creates and deletes, which a merge does not do.
    models = FineTunedModels(ctx.store.db, blobs.root, StorageQuota(ctx.store.db, settings.storage_quota_bytes()))
    try:
        record = await models.get(account_id, name)
    except ModelNotFoundError:
        raise JobFailed(f"the fine-tuned model {name} was deleted", code="model_deleted") from None
    base_path = _base_path(settings, record.base_model)
    adapter = blobs.root / record.adapter_blob
    if not adapter.is_file():
        raise JobFailed(f"the adapter of {name} is missing on this server", code="adapter_missing")
    workdir = settings.data_dir / "fine-tuning" / ctx.job_id
    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    quantization = ctx.payload.get("quantization", "auto")
    task = MergeTask(base_path, str(adapter), str(workdir / MERGED_FILE), quantization, settings.fine_tuning_threads)
    await ctx.event(f"merging the adapter of {name} into {record.base_model} ({quantization})")
    try:
        made = await run_merge(task)
        key = merged_key(ctx.job_id)
        await blobs.put_file(key, Path(made["path"]))
        try:
            previous = await models.merged(account_id, name, ctx.job_id, key, made["file_type"])
        except MergeSuperseded as exc:
            await blobs.delete(key)
            raise JobFailed(str(exc), code="merge_superseded") from None
        if previous is not None and previous != key:
            await blobs.delete(previous)
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)
    result = {
        "fine_tuned_model": name,
        "quantization": quantization,
        "file_type": made["file_type"],
        "size_bytes": made["size_bytes"],
        "merged_tensors": made["merged_tensors"],
        "seconds": made["seconds"],
    }
    await ctx.checkpoint({"stage": "done", "result": result})
    await ctx.event(
        f"merged: {made['merged_tensors']} tensors, {made['file_type']}, {made['size_bytes'] / 2**20:.1f} MiB in "
        f"{made['seconds']:.1f} s; {name} is served from the merged file from its next request"
    )
    return result


def _base_path(settings: Settings, base_model: str) -> str:
    try:
        path = resolve_source(Catalog.from_file(settings.models_file).lookup(base_model).source)
    except (ModelNotFoundError, CatalogError) as exc:
        raise JobFailed(f"the base model is no longer available: {exc}", code="base_model_unavailable") from None
    if not (Path(path).is_file() and path.endswith(".gguf")):
        raise JobFailed(f"the base model {base_model} is not a GGUF file on this server", code="base_model_unavailable")
    return path


async def run_merge(task: MergeTask) -> dict[str, Any]:
    """``merge_gguf`` in a spawned, niced process; its ``MergeResult`` as a dict. Cancelling the await kills it."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    # Started from the event loop's thread, as the trainer is: the child's death signal follows the starting thread.
    process = context.Process(target=child_main, args=(task, sender), name="merge", daemon=True)
    process.start()
    sender.close()  # the child holds the only writing end: EOF when it ends
    try:
        message = await _outcome(receiver, process)
    finally:
        if process.is_alive():
            process.kill()
        process.join(5)
        receiver.close()
    if message[0] == "error":
        raise JobFailed(f"the merge failed: {message[1]}", code="merge_failed")
    if message[0] != "done":
        raise MergeProcessDied(f"the merging process ended without a result (exit code {process.exitcode})")
    result: dict[str, Any] = message[1]
    return result


async def _outcome(receiver: Connection, process: BaseProcess) -> tuple[Any, ...]:
    while True:
        if await asyncio.to_thread(receiver.poll, 0.25):
            try:
                message: tuple[Any, ...] = receiver.recv()
            except (EOFError, OSError):
                return ("died",)
            return message
        if not process.is_alive() and not receiver.poll():
            return ("died",)


# -- the merging process ---------------------------------------------------------------------------------------------


def child_main(task: MergeTask, conn: Connection) -> None:
    _die_with_parent()
    with contextlib.suppress(OSError):
        os.nice(NICE)
    threads = str(max(1, task.threads))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = threads  # numpy's matrix products: read when numpy loads, below
    from .merge import MergeError, merge_gguf

    began = time.monotonic()
    try:
        result = merge_gguf(
            task.base_path, task.adapter_path, task.out, quantization=task.quantization, threads=task.threads
        )
    except MergeError as exc:
        conn.send(("error", str(exc)))
        return
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"[:2000]))
        return
    made = asdict(result)
    made["path"] = str(result.path)
    made["seconds"] = round(time.monotonic() - began, 3)
    conn.send(("done", made))
    conn.close()


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the thread that started it ends (the server died)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
