"""The recipe ``openglm eval ship`` writes beside an adapter: one data file or several, and the parent adapter's
recipe when the job continued a fine-tuned model."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from openglm.evals.alltools.ship import data_parts, recipe_for


def _job(model: str) -> dict[str, Any]:
    return {"id": "ftjob-1", "model": model, "seed": 7, "hyperparameters": {"n_epochs": 1}, "trained_tokens": 10}


def _manifest(command: str) -> dict[str, Any]:
    return {"generator_version": "10", "seed": 2, "per_family": 4, "command": command, "family_sha256": {}}


EVENTS = [
    {"created_at": 2, "data": {"train_loss": 0.5}},
    {"created_at": 1, "data": {"train_loss": 0.9}},
    {"created_at": 3, "data": {}},
]


def test_a_job_from_the_base_records_its_one_data_file_and_no_parent() -> None:
    manifest = _manifest("openglm eval data --out a.jsonl")
    recipe = recipe_for(_job("default"), EVENTS, b"gguf", [manifest], "openglm finetune create a.jsonl")
    assert recipe["data"] == manifest and data_parts(recipe) == [manifest]
    assert recipe["adapter_sha256"] == hashlib.sha256(b"gguf").hexdigest() and recipe["adapter_bytes"] == 4
    assert recipe["training"]["losses"] == {"first": 0.9, "last": 0.5} and recipe["training"]["seed"] == 7
    assert "parent" not in recipe


def test_a_continued_job_records_its_parts_in_order_and_its_parents_recipe() -> None:
    parent = recipe_for(_job("default"), [], b"v6", [_manifest("v6 data")], "v6 training")
    parts = [_manifest("fn"), _manifest("verbs"), _manifest("chat")]
    recipe = recipe_for(_job("ft:smollm2:v6:abc"), EVENTS, b"v10", parts, "import, then continue", parent)
    assert data_parts(recipe) == parts and recipe["data"] == {"parts": parts}
    assert recipe["parent"] == parent and recipe["training"]["base_model"] == "ft:smollm2:v6:abc"


def test_a_continued_job_needs_its_parent_and_a_fresh_one_refuses_one() -> None:
    parent = recipe_for(_job("default"), [], b"v6", [_manifest("v6 data")], "v6 training")
    with pytest.raises(ValueError, match="--parent"):
        recipe_for(_job("ft:smollm2:v6:abc"), [], b"x", [_manifest("d")], "c")
    with pytest.raises(ValueError, match="no parent adapter"):
        recipe_for(_job("default"), [], b"x", [_manifest("d")], "c", parent)
    with pytest.raises(ValueError, match="not an adapter recipe"):
        recipe_for(_job("ft:smollm2:v6:abc"), [], b"x", [_manifest("d")], "c", {"data": {}})
    with pytest.raises(ValueError, match="manifest"):
        recipe_for(_job("default"), [], b"x", [], "c")
