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
    parts = [_read_json(path) for path in manifests]  # before anything is downloaded
    parent_recipe = _read_json(parent) if parent is not None else None
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        job = http.get(f"/v1/fine_tuning/jobs/{job_id}").raise_for_status().json()
        if job["status"] != "succeeded":
            raise ValueError(f"job {job_id} is {job['status']}, not succeeded")
        training_file = http.get(f"/v1/files/{job['training_file']}/content").raise_for_status().content
        check_parts(parts, training_file)
        events = http.get(f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 1000}).raise_for_status().json()
        names = {f: http.get(f"/v1/files/{f}").raise_for_status().json()["filename"] for f in job["result_files"]}
        adapters = [f for f, filename in names.items() if filename.endswith("-adapter.gguf")]
        if len(adapters) != 1:
            raise ValueError(f"job {job_id} published {len(adapters)} adapters among its result files {names}")
        (file_id,) = adapters
        adapter = http.get(f"/v1/files/{file_id}/content").raise_for_status().content
    adapter_path = into / f"{name}.gguf"
    recipe = recipe_for(
        job,
        events.get("data") or [],
        adapter,
        parts,
        training_command,
        parent_recipe,
        adapter_name=adapter_path.name,
        shipped=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    into.mkdir(exist_ok=True)
    adapter_path.write_bytes(adapter)
    recipe_path = into / f"{name}.json"
    recipe_path.write_text(json.dumps(recipe, indent=1, ensure_ascii=False) + "\n")
    return adapter_path, recipe_path


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{path}: not a JSON object")
    return value


MANIFEST_KEYS = ("generator_version", "seed", "per_family", "command", "lines", "sha256", "family_sha256")


def check_parts(parts: list[dict[str, Any]], training_file: bytes) -> None:
    """The data manifests, in order, describe exactly the job's training file (each part its run of lines)."""
    if not parts:
        raise ValueError("give the training data's manifest (one --manifest per data file, in the file's order)")
    # Split on "\n" only: a line's JSON may hold other characters str.splitlines() breaks at (U+2028).
    pieces = training_file.decode().split("\n")
    lines = [piece + "\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    start = 0
    for n, part in enumerate(parts):
        missing = [key for key in MANIFEST_KEYS if key not in part]
        if missing:
            raise ValueError(f"manifest {n + 1} is no data manifest: it has no {', '.join(missing)}")
        text = "".join(lines[start : start + part["lines"]])
        if hashlib.sha256(text.encode()).hexdigest() != part["sha256"]:
            raise ValueError(
                f"manifest {n + 1} ({part['command'][:80]}) does not match lines {start + 1}-{start + part['lines']} "
                "of the job's training file"
            )
        start += part["lines"]
    if start != len(lines):
        raise ValueError(f"the manifests describe {start} lines; the job's training file has {len(lines)}")


def recipe_for(
    job: dict[str, Any],
    events: list[dict[str, Any]],
    adapter: bytes,
    manifests: list[dict[str, Any]],
    training_command: str,
    parent: dict[str, Any] | None = None,
    *,
    adapter_name: str,
    shipped: str,
) -> dict[str, Any]:
    """The recipe of ``adapter`` (to be written as ``adapter_name``), which ``job`` published after training on the
    data ``manifests`` describe."""
    if not manifests:
        raise ValueError("give the training data's manifest (one --manifest per data file, in the file's order)")
    continued = str(job["model"]).startswith("ft:")
    if continued and parent is None:
        raise ValueError(
            f"job {job['id']} continued {job['model']}: give --parent, the recipe of the adapter it started from"
        )
    if parent is not None and not continued:
        raise ValueError(f"job {job['id']} trained {job['model']} from scratch: it has no parent adapter")
    if parent is not None:
        _check_recipe(parent)
    data: dict[str, Any] = manifests[0] if len(manifests) == 1 else {"parts": manifests}
    recipe: dict[str, Any] = {
        "adapter": adapter_name,
        "adapter_sha256": hashlib.sha256(adapter).hexdigest(),
        "adapter_bytes": len(adapter),
        "shipped": shipped,
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
        # The parent's file name is left out: the continued adapter usually replaces that very file.
        recipe["parent"] = {key: value for key, value in parent.items() if key != "adapter"}
    return recipe


def _check_recipe(recipe: dict[str, Any]) -> None:
    """An adapter recipe, and its parents' all the way down: each continued one names the recipe it started from."""
    if "adapter_sha256" not in recipe or "training" not in recipe or "data" not in recipe:
        raise ValueError("--parent is not an adapter recipe (it needs adapter_sha256, data and training)")
    continued = str(recipe["training"].get("base_model", "")).startswith("ft:")
    if continued != ("parent" in recipe):
        raise ValueError("--parent: a recipe has a parent exactly when its job continued an ft: model")
    if continued:
        _check_recipe(recipe["parent"])


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
