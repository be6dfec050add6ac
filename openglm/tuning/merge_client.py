"""Merging a fine-tuned model through a running server's HTTP API: what a client such as ``openglm finetune merge``
calls. ``client`` is an ``httpx.Client`` with the server's ``base_url`` and the caller's ``Authorization`` header;
each function answers the server's ``fine_tuning.merge`` object (a dict: ``status``, ``job_id``, ``quantization``,
``merged_type``, ``serving``, ``loaded``, ``size_bytes``, ``error``) or raises ``MergeRequestFailed`` with the
platform's error (e.g. 1211: no such model for this key; 1215: a merge is already under way).

(Offline, on files: ``openglm.tuning.merge.merge_gguf(base_gguf, adapter_gguf, out, quantization=...)``.)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

FINISHED = ("none", "succeeded", "failed", "cancelled")


class MergeRequestFailed(Exception):
    def __init__(self, status_code: int, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message


def merge_path(model: str, prefix: str = "/v1") -> str:
    return f"{prefix}/fine_tuning/fine_tuned_models/{quote(model, safe=':')}/merge"


def request_merge(client: httpx.Client, model: str, quantization: str = "auto") -> dict[str, Any]:
    """Queue a merge (``auto``: the base's types if 8-bit or finer, else Q8_0; ``base``: the base's own types,
    Q4_1 for the default, which loses most of a small fine-tune; ``q8_0``; ``f16``)."""
    return _answer(client.post(merge_path(model), json={"quantization": quantization}))


def merge_status(client: httpx.Client, model: str) -> dict[str, Any]:
    return _answer(client.get(merge_path(model)))


def unmerge(client: httpx.Client, model: str) -> dict[str, Any]:
    """Serve the model as its adapter on the base again (a merge under way is cancelled)."""
    return _answer(client.delete(merge_path(model)))


def wait_for_merge(
    client: httpx.Client,
    model: str,
    *,
    poll_seconds: float = 1.0,
    timeout: float | None = None,
    on_status: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Poll until the model's latest merge has ended; its last status (``TimeoutError`` past ``timeout``)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = merge_status(client, model)
        if on_status is not None:
            on_status(status)
        if status["status"] in FINISHED:
            return status
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"the merge of {model} is still {status['status']}")
        time.sleep(poll_seconds)


def _answer(response: httpx.Response) -> dict[str, Any]:
    body: Any = None
    with contextlib.suppress(ValueError):  # not JSON: a proxy's page, say
        body = response.json()
    if response.status_code != 200 or not isinstance(body, dict):
        error = body.get("error", {}) if isinstance(body, dict) else {}
        raise MergeRequestFailed(
            response.status_code, str(error.get("code", response.status_code)), str(error.get("message", response.text))
        )
    return body
