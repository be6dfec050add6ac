"""Shipping a trained All Tools adapter as package data (``openglm eval ship``): the adapter a finished
fine-tuning job published (its result file), copied beside a recipe that says how to make it again — the data
command, version, seed and hashes (from the data manifest), the training command, the job's hyperparameters,
seed and outcome, and the adapter's own SHA-256, which the tests compare with the file.

A job that continued a fine-tuned model (its ``model`` is an ``ft:`` name) started from another adapter: its recipe
holds that adapter's recipe as ``parent`` (the adapter is made again by the parent's recipe, imported with
``openglm adapters import``, then trained on by this recipe's command). Its data may be several ``openglm eval data``
files written one after another (``parts``: each part's manifest, in the order of the training file)."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ADAPTERS_DIR = Path(__file__).resolve().parents[2] / "adapters"


def ship(
    url: str,
    api_key: str | None,
    job_id: str,
    manifests: list[Path],
    name: str,
    training_command: str,
    parent: Path | None = None,
    into: Path = ADAPTERS_DIR,
) -> tuple[Path, Path]:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}", name):
        raise ValueError(f"--name {name!r}: letters, digits, '.', '_' and '-' only")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        job = http.get(f"/v1/fine_tuning/jobs/{job_id}").raise_for_status().json()
        if job["status"] != "succeeded":
            raise ValueError(f"job {job_id} is {job['status']}, not succeeded")
        events = http.get(f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 1000}).raise_for_status().json()
        names = {f: http.get(f"/v1/files/{f}").raise_for_status().json()["filename"] for f in job["result_files"]}
        adapters = [f for f, filename in names.items() if filename.endswith("-adapter.gguf")]
        if len(adapters) != 1:
            raise ValueError(f"job {job_id} published {len(adapters)} adapters among its result files {names}")
        (file_id,) = adapters
        adapter = http.get(f"/v1/files/{file_id}/content").raise_for_status().content
    recipe = recipe_for(
        job,
        events.get("data") or [],
        adapter,
        [json.loads(path.read_text()) for path in manifests],
        training_command,
        json.loads(parent.read_text()) if parent is not None else None,
    )
    into.mkdir(exist_ok=True)
    adapter_path = into / f"{name}.gguf"
    adapter_path.write_bytes(adapter)
    recipe["adapter"] = adapter_path.name
    recipe_path = into / f"{name}.json"
    recipe_path.write_text(json.dumps(recipe, indent=1, ensure_ascii=False) + "\n")
    return adapter_path, recipe_path


def recipe_for(
    job: dict[str, Any],
    events: list[dict[str, Any]],
    adapter: bytes,
    manifests: list[dict[str, Any]],
    training_command: str,
    parent: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The recipe of ``adapter``, which ``job`` published after training on the data ``manifests`` describe."""
    if not manifests:
        raise ValueError("give the training data's manifest (one --manifest per data file, in the file's order)")
    continued = str(job["model"]).startswith("ft:")
    if continued and parent is None:
        raise ValueError(
            f"job {job['id']} continued {job['model']}: give --parent, the recipe of the adapter it started from"
        )
    if parent is not None and not continued:
        raise ValueError(f"job {job['id']} trained {job['model']} from scratch: it has no parent adapter")
    if parent is not None and "adapter_sha256" not in parent:
        raise ValueError("--parent is not an adapter recipe (it has no adapter_sha256)")
    data: dict[str, Any] = manifests[0] if len(manifests) == 1 else {"parts": manifests}
    recipe: dict[str, Any] = {
        "adapter": "",
        "adapter_sha256": hashlib.sha256(adapter).hexdigest(),
        "adapter_bytes": len(adapter),
        "shipped": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": data,
        "training": {
            "command": training_command,
            "job": job["id"],
            "base_model": job["model"],
            "method": job.get("method"),
            "hyperparameters": job.get("hyperparameters"),
            "seed": job.get("seed"),
            "trained_tokens": job.get("trained_tokens"),
            "created_at": job.get("created_at"),
            "finished_at": job.get("finished_at"),
            "losses": _losses(events),
        },
    }
    if parent is not None:
        recipe["parent"] = parent
    return recipe


def data_parts(recipe: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifests of a recipe's training data, in the order of the training file."""
    data = recipe["data"]
    return list(data["parts"]) if "parts" in data else [data]


def _losses(events: list[dict[str, Any]]) -> dict[str, float]:
    """The first and last training loss the job reported."""
    losses = [
        e["data"]["train_loss"]
        for e in sorted(events, key=lambda e: e["created_at"])
        if e.get("data", {}).get("train_loss") is not None
    ]
    return {"first": losses[0], "last": losses[-1]} if losses else {}
