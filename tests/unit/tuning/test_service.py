"""What a job may train on, and how "auto" hyperparameters resolve: clear refusals, decided before anything is
written."""

from __future__ import annotations

from pathlib import Path

import pytest

from openglm.catalog import Catalog, ModelSpec
from openglm.errors import InvalidFieldError, ModelNotFoundError
from openglm.tuning.service import FineTuningService, HyperparameterChoice, resolve_hyperparameters


def service(tmp_path: Path) -> FineTuningService:
    gguf = tmp_path / "base.gguf"
    gguf.write_bytes(b"GGUF")
    catalog = Catalog(
        [
            ModelSpec(id="local", aliases=["default"], source=str(gguf)),
            ModelSpec(id="gpu-box", engine="remote", source="http://gpu:8000/v1"),
            ModelSpec(id="missing", source=str(tmp_path / "gone.gguf")),
            ModelSpec(id="script", engine="scripted", source="-"),
        ]
    )
    return FineTuningService(catalog, None, None, None, None)  # type: ignore[arg-type]  # only the catalog is used


def test_a_local_gguf_base_is_trainable_by_any_of_its_names(tmp_path: Path) -> None:
    tuning = service(tmp_path)
    assert tuning.trainable_base("default").id == "local"
    assert tuning.trainable_names() == ["local", "missing"]
    # What /v1/models marks fine_tunable (the web app's base picker): the same checks, as a yes or no.
    names = ["local", "default", "gpu-box", "missing", "script", "nope", "ft:local:x:1234"]
    assert [name for name in names if tuning.fine_tunable(name)] == ["local", "default"]


@pytest.mark.parametrize(
    ("name", "error", "says"),
    [
        ("nope", ModelNotFoundError, "models that can be fine-tuned here: local, missing"),
        ("gpu-box", InvalidFieldError, "served by the remote engine"),
        ("script", InvalidFieldError, "served by the scripted engine"),
        ("missing", InvalidFieldError, "gone.gguf is neither on this server"),
        ("ft:local:x:1234", InvalidFieldError, "is a fine-tuned model; fine-tune its base"),
    ],
)
def test_a_base_that_cannot_be_trained_says_why(tmp_path: Path, name: str, error: type[Exception], says: str) -> None:
    with pytest.raises(error) as refused:
        service(tmp_path).trainable_base(name)
    assert says in str(refused.value)


def test_auto_and_missing_hyperparameters_resolve_and_bounds_hold() -> None:
    assert resolve_hyperparameters(HyperparameterChoice(), "supervised", 3) == {
        "n_epochs": 3,
        "batch_size": 3,
        "learning_rate_multiplier": 1.0,
    }
    method = HyperparameterChoice(n_epochs=2, beta="auto")
    assert resolve_hyperparameters(method.over(HyperparameterChoice(n_epochs=9, batch_size=4)), "dpo", 100) == {
        "n_epochs": 2,
        "batch_size": 4,
        "learning_rate_multiplier": 1.0,
        "beta": 0.1,
    }
    for choice, says in [
        (HyperparameterChoice(n_epochs=51), "n_epochs must be 1 to 50"),
        (HyperparameterChoice(batch_size=257), "batch_size must be 1 to 256"),
        (HyperparameterChoice(learning_rate_multiplier=11.0), "learning_rate_multiplier"),
        (HyperparameterChoice(beta=0.5), "beta is a DPO hyperparameter"),
    ]:
        with pytest.raises(InvalidFieldError, match=says):
            resolve_hyperparameters(choice, "supervised", 10)
