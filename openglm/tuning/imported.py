"""An adapter trained elsewhere, brought in as a fine-tuned model (``openglm adapters import``, an operator's
command on the server's machine): a llama.cpp LoRA adapter GGUF for a catalog base — PEFT's converted by llama.cpp's
``convert_lora_to_gguf.py``, another OpenGLM's ``<job>-adapter.gguf``, the package's All Tools adapter — checked
against that base's shapes (``lora_settings.adapter_misfit``), kept as a blob and made a fine-tuned model of an
account: listed, served, merged, deleted and trained further (a job on its ``ft:`` name) like a job's.

The model's row names a job id of its own (``ftimport-<hex>``), as every fine-tuned model's does; no job has it.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from ..catalog import Catalog, CatalogError, resolve_source
from ..errors import InvalidFieldError
from ..files.blobs import LocalBlobStore
from ..files.quota import StorageQuota
from ..store.db import Database
from .finetuned import FineTunedModels, FineTunedRecord, adapter_key
from .lora_settings import adapter_misfit

IMPORT_PREFIX = "ftimport-"


async def import_adapter(
    db: Database,
    blobs: LocalBlobStore,
    quota: StorageQuota,
    catalog: Catalog,
    *,
    account_id: str,
    base: str,
    adapter: Path,
    label: str | None = None,
) -> FineTunedRecord:
    """The adapter at ``adapter`` as a new fine-tuned model of ``account_id`` on the catalog model ``base``; its
    bytes count in the account's storage. A 4xx error and nothing kept when it does not fit the base or the quota."""
    spec = catalog.lookup(base)
    if spec.engine != "llamacpp":
        raise InvalidFieldError(f"model {base!r} is served by the {spec.engine} engine; adapters apply to llamacpp")
    try:
        base_path = resolve_source(spec.source)
    except CatalogError as exc:
        raise InvalidFieldError(f"model {base!r}: its weights are not on this server ({exc})") from None
    if not adapter.is_file():
        raise InvalidFieldError(f"{adapter}: no such file")
    problem = await asyncio.to_thread(adapter_misfit, adapter, base_path)
    if problem is not None:
        raise InvalidFieldError(f"{adapter.name} does not fit {spec.id}: {problem}")
    data = await asyncio.to_thread(adapter.read_bytes)
    job_id = IMPORT_PREFIX + secrets.token_hex(12)
    key = adapter_key(job_id)
    await blobs.put(key, data)
    models = FineTunedModels(db, blobs.root, quota)
    try:
        return await models.create(
            account_id=account_id,
            base_model=spec.id,
            job_id=job_id,
            label=label or account_id[:12],
            owned_by=account_id,
            size=len(data),
        )
    except BaseException:  # the quota's refusal, or anything else: no blob without its model
        await blobs.delete(key)
        raise
