"""The recipe ``openglm eval ship`` writes beside an adapter: one data file or several (checked against the job's
training file), and the parent adapter's recipe when the job continued a fine-tuned model."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from openglm.evals.alltools.ship import check_parts, data_parts, recipe_for


def _job(model: str) -> dict[str, Any]:
    return {"id": "ftjob-1", "model": model, "seed": 7, "hyperparameters": {"n_epochs": 1}, "trained_tokens": 10}


def _manifest(command: str, text: str = "{}\n") -> dict[str, Any]:
    return {
        "generator_version": "10",
        "seed": 2,
        "per_family": 4,
        "command": command,
        "lines": text.count("\n"),
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "family_sha256": {},
    }


def _recipe(job: dict[str, Any], manifests: list[dict[str, Any]], parent: dict[str, Any] | None = None) -> Any:
    return recipe_for(job, EVENTS, b"gguf", manifests, "train", parent, adapter_name="a.gguf", shipped="today")


EVENTS = [
    {"created_at": 2, "data": {"train_loss": 0.5}},
    {"created_at": 1, "data": {"train_loss": 0.9}},
    {"created_at": 3, "data": {}},
]


def test_a_job_from_the_base_records_its_one_data_file_and_no_parent() -> None:
    manifest = _manifest("openglm eval data --out a.jsonl")
    recipe = _recipe(_job("default"), [manifest])
    assert recipe["data"] == manifest and data_parts(recipe) == [manifest] and recipe["adapter"] == "a.gguf"
    assert recipe["adapter_sha256"] == hashlib.sha256(b"gguf").hexdigest() and recipe["adapter_bytes"] == 4
    assert recipe["training"]["losses"] == {"first": 0.9, "last": 0.5} and recipe["training"]["seed"] == 7
    assert "parent" not in recipe


def test_a_continued_job_records_its_parts_in_order_and_its_parents_recipe_without_its_file_name() -> None:
    parent = _recipe(_job("default"), [_manifest("v6 data")])
    parts = [_manifest("fn"), _manifest("verbs"), _manifest("chat")]
    recipe = _recipe(_job("ft:smollm2:v6:abc"), parts, parent)
    assert data_parts(recipe) == parts and recipe["data"] == {"parts": parts}
    assert recipe["parent"] == {k: v for k, v in parent.items() if k != "adapter"}  # the new file replaces it
    assert recipe["training"]["base_model"] == "ft:smollm2:v6:abc"
    grandchild = _recipe(_job("ft:smollm2:v10:def"), parts, recipe)  # parents all the way down
    assert grandchild["parent"]["parent"] == recipe["parent"]


def test_a_continued_job_needs_a_whole_chain_of_parents_and_a_fresh_one_refuses_one() -> None:
    parent = _recipe(_job("default"), [_manifest("v6 data")])
    with pytest.raises(ValueError, match="--parent"):
        _recipe(_job("ft:smollm2:v6:abc"), [_manifest("d")])
    with pytest.raises(ValueError, match="no parent adapter"):
        _recipe(_job("default"), [_manifest("d")], parent)
    with pytest.raises(ValueError, match="not an adapter recipe"):
        _recipe(_job("ft:smollm2:v6:abc"), [_manifest("d")], {"data": {}})
    orphan = _recipe(_job("ft:smollm2:v6:abc"), [_manifest("d")], parent)
    del orphan["parent"]  # a continued recipe that lost its own parent
    with pytest.raises(ValueError, match="exactly when"):
        _recipe(_job("ft:smollm2:v10:def"), [_manifest("d")], orphan)
    with pytest.raises(ValueError, match="manifest"):
        _recipe(_job("default"), [])


def test_the_parts_must_be_the_training_file_line_for_line() -> None:
    first, second = '{"a": "x\u2028y"}\n', '{"b": 1}\n{"c": 2}\n'
    parts = [_manifest("one", first), _manifest("two", second)]
    check_parts(parts, (first + second).encode())
    with pytest.raises(ValueError, match=r"manifest 1 .*lines 1-2 "):
        check_parts(list(reversed(parts)), (first + second).encode())
    with pytest.raises(ValueError, match="3 lines; the job's training file has 4"):
        check_parts(parts, (first + second + "{}\n").encode())
    with pytest.raises(ValueError, match="no data manifest: it has no lines"):
        check_parts([{k: v for k, v in parts[0].items() if k != "lines"}], first.encode())
    with pytest.raises(ValueError, match="manifest"):
        check_parts([], b"")
