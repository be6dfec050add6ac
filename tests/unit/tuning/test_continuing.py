"""A job that continues a fine-tuned model: its adapter GGUF read back into torch (the export undone, Q/K rows
included), training that starts from it, DPO that compares with it, and the shape the job must keep."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from openglm.tuning.export import export_adapter, read_adapter
from openglm.tuning.lora import (
    LoRAConfig,
    adapter_state,
    attach_lora,
    keep_as_reference,
    lora_modules,
    reference_model,
    start_from,
)
from openglm.tuning.lora_settings import LoRASettings, adapter_misfit, adapter_settings
from openglm.tuning.render import Example, Renderer
from openglm.tuning.runner import JOB_FILE, read_task, write_job
from openglm.tuning.train import Hyperparameters, Progress, Trainer
from openglm.tuning.trainers import Hyperparameters as JobHyperparameters
from openglm.tuning.trainers import TrainingTask

ALL = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def trained_lora(base: Any, rank: int = 4, alpha: float = 8.0, targets: tuple[str, ...] = ALL) -> Any:
    """A copy of ``base`` with an adapter whose every matrix is random (B too, so no row is zero)."""
    model = copy.deepcopy(base)
    torch.manual_seed(3)
    attach_lora(model, LoRAConfig(rank=rank, alpha=alpha, dropout=0.0, targets=targets))
    with torch.no_grad():
        for module in lora_modules(model).values():
            module.lora_b.normal_(0, 0.3)
    return model


def examples(renderer: Renderer) -> list[Example]:
    return [
        renderer.chat(
            {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "Blue, always."}]}
        )[0]
        for q in ("Favourite colour?", "Which colour do you like?", "Pick a colour.")
    ]


def test_an_exported_adapter_reads_back_as_the_weights_it_was_written_from(
    tiny_base_model: Any, tmp_path: Path
) -> None:
    model = trained_lora(tiny_base_model)
    written = adapter_state(model)
    permuted = export_adapter(model, tmp_path / "a.gguf", architecture="llama", dtype="f32")
    read = read_adapter(copy.deepcopy(tiny_base_model), permuted, architecture="llama")
    assert read.keys() == written.keys()
    for key, value in written.items():
        torch.testing.assert_close(read[key], value, rtol=0, atol=0)
    # The Q/K rows really were reordered on the way out and back: read without undoing it, they differ.
    unpermuted = read_adapter(copy.deepcopy(tiny_base_model), permuted, architecture="llama", permute_qk=False)
    q_b = next(k for k in written if k.endswith("q_proj.lora_b"))
    assert not torch.equal(unpermuted[q_b], written[q_b])
    # F16, what jobs write: within F16's rounding.
    half = read_adapter(
        tiny_base_model, export_adapter(model, tmp_path / "h.gguf", architecture="llama"), architecture="llama"
    )
    for key, value in written.items():
        torch.testing.assert_close(half[key], value, rtol=1e-3, atol=1e-3)


def test_an_adapter_s_shape_is_read_from_its_file(tiny_base_model: Any, tiny_gguf: Path, tmp_path: Path) -> None:
    model = trained_lora(tiny_base_model, rank=2, alpha=6.0, targets=("v_proj", "q_proj"))
    path = export_adapter(model, tmp_path / "a.gguf", architecture="llama")
    assert adapter_settings(path) == LoRASettings(rank=2, alpha=6.0, targets=("q_proj", "v_proj"))
    with pytest.raises(ValueError, match=r"not a llama\.cpp LoRA adapter"):
        adapter_settings(tiny_gguf)  # a model, not an adapter
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all")
    with pytest.raises(ValueError, match="not a GGUF file"):
        adapter_settings(tmp_path / "junk.gguf")


def test_an_adapter_for_other_modules_is_refused_and_one_for_fewer_layers_fills_them(
    tiny_base_model: Any, tmp_path: Path
) -> None:
    path = export_adapter(trained_lora(tiny_base_model), tmp_path / "a.gguf", architecture="llama")
    narrower = copy.deepcopy(tiny_base_model)
    attach_lora(narrower, LoRAConfig(rank=4, alpha=8.0, targets=("q_proj",)))
    hp = Hyperparameters(n_epochs=1, batch_size=1, lora=LoRAConfig(rank=4, alpha=8.0, targets=("q_proj",)))
    state = read_adapter(narrower, path, architecture="llama")  # names every module the file has
    ex = [Example([1, 2, 3], [-100, 2, 3])]
    with pytest.raises(ValueError, match="has no LoRA module in this model"):
        Trainer(narrower, ex, hp, initial_adapter=state).run()

    # An adapter made elsewhere on some layers only: those start from it, the rest from nothing (B = 0).
    model = copy.deepcopy(tiny_base_model)
    attach_lora(model, LoRAConfig(rank=4, alpha=8.0, dropout=0.0))
    first_layer = {k: v for k, v in state.items() if ".layers.0." in k}
    assert first_layer and len(first_layer) < len(state)
    start_from(model, first_layer)
    for key, value in adapter_state(model).items():
        if key in first_layer:
            assert torch.equal(value, first_layer[key])
        elif key.endswith("lora_b"):
            assert not value.any()
    wrong = {key: torch.zeros(3, 3) for key in list(first_layer)[:1]}
    with pytest.raises(ValueError, match=r"is \[3, 3\]; this model's is"):
        start_from(model, wrong)


def test_the_reference_adapter_sees_no_dropout(tiny_base_model: Any, tiny_renderer: Renderer) -> None:
    """DPO's reference is computed in train mode: with dropout on, the policy's passes differ and the reference's
    (the adapter a continued job started from) must not."""
    model = trained_lora(tiny_base_model)
    for module in lora_modules(model).values():
        module.dropout = torch.nn.Dropout(0.5)
    keep_as_reference(model)
    model.train()
    ids = torch.tensor([tiny_renderer.tokenizer.encode("Hello there, how are you?", prompt_start=True)])
    with torch.no_grad():
        policy = [model(input_ids=ids).logits for _ in range(2)]
        with reference_model(model):
            reference = [model(input_ids=ids).logits for _ in range(2)]
    assert not torch.equal(policy[0], policy[1])
    assert torch.equal(reference[0], reference[1])


def test_an_adapter_s_alpha_must_be_a_number_above_zero(tmp_path: Path) -> None:
    import gguf
    import numpy as np

    for alpha in (float("nan"), 0.0, -2.0):
        writer = gguf.GGUFWriter(str(tmp_path / "bad.gguf"), "llama")
        writer.add_string("general.type", "adapter")
        writer.add_string("adapter.type", "lora")
        writer.add_float32("adapter.lora.alpha", alpha)
        writer.add_tensor("blk.0.attn_q.weight.lora_a", np.zeros((4, 64), dtype=np.float32))
        writer.add_tensor("blk.0.attn_q.weight.lora_b", np.zeros((64, 4), dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with pytest.raises(ValueError, match="must be a number above 0"):
            adapter_settings(tmp_path / "bad.gguf")


def test_a_continued_run_starts_from_the_adapter(tiny_base_model: Any, tiny_renderer: Renderer, tmp_path: Path) -> None:
    """The adapter a run made, exported and read back, is where the next run's first step starts: that step's loss is
    the first run's final one, far below a fresh adapter's first."""
    data = examples(tiny_renderer)
    hp = Hyperparameters(
        n_epochs=10, batch_size=3, learning_rate_multiplier=25, warmup_ratio=0.0, log_every=1, precision="fp32",
        lora=LoRAConfig(rank=4, alpha=8.0, dropout=0.0),
    )  # fmt: skip
    first: list[Progress] = []
    parent = copy.deepcopy(tiny_base_model)
    Trainer(parent, data, hp, on_progress=first.append).run()
    path = export_adapter(parent, tmp_path / "parent.gguf", architecture="llama", dtype="f32")
    assert first[-1].loss is not None and first[0].loss is not None and first[-1].loss < first[0].loss / 2

    once = dataclasses.replace(hp, n_epochs=1)
    child = copy.deepcopy(tiny_base_model)
    state = read_adapter(child, path, architecture="llama")
    continued: list[Progress] = []
    Trainer(child, data, once, on_progress=continued.append, initial_adapter=state).run()
    start = continued[0].loss
    assert start is not None and start < first[0].loss / 2 and start < first[-1].loss * 1.5, (first, continued)


def test_dpo_on_a_continued_adapter_compares_the_policy_with_that_adapter(
    tiny_base_model: Any, tiny_renderer: Renderer
) -> None:
    """The first DPO step's policy is the adapter it starts from: against that adapter as the reference every margin
    is 0 and the loss is exactly -log σ(0) = log 2; against the bare base (a fresh job's reference) it would not be."""
    pairs = [
        tiny_renderer.preference(
            {
                "input": {"messages": [{"role": "user", "content": q}]},
                "preferred_output": [{"role": "assistant", "content": "Gladly."}],
                "non_preferred_output": [{"role": "assistant", "content": "No."}],
            }
        )
        for q in ("Help me?", "Can you help?")
    ]
    state = adapter_state(trained_lora(tiny_base_model))
    hp = Hyperparameters(
        method="dpo", n_epochs=1, batch_size=2, beta=0.5, warmup_ratio=0.0, log_every=1, precision="fp32",
        lora=LoRAConfig(rank=4, alpha=8.0, dropout=0.0),
    )  # fmt: skip
    reports: list[Progress] = []
    Trainer(copy.deepcopy(tiny_base_model), pairs, hp, on_progress=reports.append, initial_adapter=state).run()
    assert reports[0].loss == pytest.approx(math.log(2), abs=1e-5)

    # The same adapter reached by training from the bare base's reference would start away from log 2: the test's
    # adapter changes these replies' log-probabilities (so the check above is not true of any reference).
    model = copy.deepcopy(tiny_base_model)
    attach_lora(model, hp.lora)
    from openglm.tuning.lora import adapter_disabled, load_adapter_state
    from openglm.tuning.train import pack, sequence_logprobs

    load_adapter_state(model, state)
    batch = pack([pairs[0].examples()], 4096)[0]
    with torch.no_grad():
        policy = sequence_logprobs(model, batch)
        with adapter_disabled(model):
            base = sequence_logprobs(model, batch)
    assert abs(float((policy[0] - base[0]) - (policy[1] - base[1]))) > 0.1


def test_the_command_trainer_s_job_directory_carries_the_adapter(tiny_gguf: Path, tmp_path: Path) -> None:
    from openglm.catalog import ModelSpec

    adapter = tmp_path / "elsewhere" / "parent.gguf"
    adapter.parent.mkdir()
    adapter.write_bytes(b"the parent's adapter")
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    task = TrainingTask(
        job_id="ftjob-1",
        base=ModelSpec(id="tiny", source=str(tiny_gguf)),
        base_path=str(tiny_gguf),
        method="supervised",
        training=[{"messages": []}],
        validation=[],
        hyperparameters=JobHyperparameters(n_epochs=1, batch_size=1, learning_rate_multiplier=1.0),
        workdir=job_dir,
        continues=adapter,
    )
    write_job(job_dir, task, "attempt-1")
    assert json.loads((job_dir / JOB_FILE).read_text())["continues"] == "continues.gguf"
    read = read_task(job_dir)
    assert read.continues == job_dir / "continues.gguf" and read.continues.read_bytes() == b"the parent's adapter"
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    write_job(fresh, dataclasses.replace(task, workdir=fresh, continues=None), "attempt-1")
    assert read_task(fresh).continues is None and not (fresh / "continues.gguf").exists()


def test_an_adapter_fits_only_the_base_it_was_made_for(
    tiny_base_model: Any, tiny_gguf: Path, gguf_path: str, tmp_path: Path
) -> None:
    """What ``openglm adapters import`` checks before keeping an adapter made elsewhere."""
    path = export_adapter(trained_lora(tiny_base_model), tmp_path / "a.gguf", architecture="llama")
    assert adapter_misfit(path, str(tiny_gguf)) is None
    assert adapter_misfit(export_adapter(trained_lora(tiny_base_model), tmp_path / "f.gguf", architecture="llama",
                                         dtype="f32"), str(tiny_gguf)) is None  # fmt: skip
    wrong = adapter_misfit(path, gguf_path)  # the same architecture, another model's shapes
    assert wrong is not None and "the base needs [576" in wrong, wrong
    assert adapter_misfit(tiny_gguf, str(tiny_gguf)) == (
        "not a llama.cpp LoRA adapter (no adapter.type = lora and adapter.lora.alpha)"
    )


async def test_the_job_copies_its_parent_s_adapter_once_and_fails_when_the_parent_is_gone(tmp_path: Path) -> None:
    """The handler's side: the first attempt copies the model's blob into the workdir (the job's own from then on);
    a model deleted before that — its row hidden, or its blob gone — fails the job with model_not_found."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from openglm.errors import ModelNotFoundError
    from openglm.jobs.context import JobFailed
    from openglm.tuning.finetuned import FineTunedRecord
    from openglm.tuning.handler import _continued_adapter

    blobs = tmp_path / "blobs"
    blobs.mkdir()
    (blobs / "adapter-ftjob-1.gguf").write_bytes(b"the parent's adapter")
    present = {"ft:m:a:1"}

    class Models:
        blob_root = blobs

        async def get(self, account_id: str, name: str) -> FineTunedRecord:
            if account_id != "alice" or name not in present:
                raise ModelNotFoundError(f"model {name!r} does not exist")
            return FineTunedRecord(name, "alice", "m", "ftjob-1", "adapter-ftjob-1.gguf", "alice", datetime.now(UTC))

    shop: Any = SimpleNamespace(models=Models())
    payload = {"continues": {"model": "ft:m:a:1", "adapter_blob": "adapter-ftjob-1.gguf"}}
    assert await _continued_adapter(shop, {"continues": None}, "alice", tmp_path / "w0") is None
    work = tmp_path / "w1"
    work.mkdir()
    copied = await _continued_adapter(shop, payload, "alice", work)
    assert copied == work / "continues.gguf" and copied.read_bytes() == b"the parent's adapter"
    present.clear()  # deleted after the first attempt copied it: a later attempt goes on with its copy
    assert await _continued_adapter(shop, payload, "alice", work) == copied
    for workdir, blob_gone in ((tmp_path / "w2", False), (tmp_path / "w3", True)):
        workdir.mkdir()
        if blob_gone:
            present.add("ft:m:a:1")
            (blobs / "adapter-ftjob-1.gguf").unlink()
        with pytest.raises(JobFailed, match="was deleted before the job started") as failed:
            await _continued_adapter(shop, payload, "alice", workdir)
        assert failed.value.code == "model_not_found" and not list(workdir.iterdir())
