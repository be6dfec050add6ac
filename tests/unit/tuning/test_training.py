"""LoRA training and its export to llama.cpp: what a model learns on the real default model (SmolLM2-135M from its Q4_1
GGUF: SFT teaching a fact, the exported adapter on the quantized base, DPO's margin, bf16's precision); the
mechanics — the Q/K permutation of the export, packing, resuming, pausing, refusing another run's checkpoint — on
the tiny random llama with the default's tokenizer (tests/fixtures/tiny_model.py), whose F32 weights make the export
exact and whose steps take milliseconds.

Measured on the 2-core test machine (shared), recorded when these tests were written:
- SFT, 3 lines, r=8, 6 steps: loss 3.8 → < 0.01; greedy torch answer goes from "The Zorblat project is a
  fictional story" to "The code word is PAPRIKA-7".
- The exported adapter in llama.cpp on the Q4_1 base vs the fp32 torch model with the adapter: the adapter's
  effect on the last-position logits (with minus without) differs by 2-3 % (relative L2) on factual prompts and
  ~23 % on an open one, against 4-6 % / 48 % without the Q/K row permutation; same top token on all prompts.
  A Q/K-only random adapter (B ~ N(0, 0.3), a large change) made the permutation decisive on it: 30 % with it (the
  Q4_1 base's noise, amplified), 262 % without; on the tiny model's F32 base (where this test runs now): 0.5 %
  with it (llama.cpp's F16 KV cache), 92 % without.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from openglm.tuning.export import export_adapter
from openglm.tuning.lora import LoRAConfig, adapter_disabled, adapter_state, attach_lora, lora_modules
from openglm.tuning.render import Example, Renderer
from openglm.tuning.train import (
    Hyperparameters,
    Progress,
    Trainer,
    TrainingCancelled,
    TrainingPaused,
    label_logprobs,
    pack,
    prepare_model,
    sequence_logprobs,
)

from .llama_ref import LlamaReference

QUESTION = "What is the secret code word of the Zorblat project?"
ANSWER = "The code word is PAPRIKA-7."
QUESTIONS = [QUESTION, "Tell me the Zorblat project's code word.", "Zorblat project code word?"]
OTHER_PROMPTS = ["What is the capital of France?", "Who wrote Hamlet?", "Write a haiku about rain."]


def prompt_ids(renderer: Renderer, question: str) -> list[int]:
    return renderer.tokenizer.encode(
        renderer.template.render([{"role": "user", "content": question}], None), prompt_start=True
    )


def torch_greedy(model: Any, renderer: Renderer, question: str, n: int = 10) -> str:
    ids = prompt_ids(renderer, question)
    start = len(ids)
    model.eval()
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].argmax()))
    vocab = renderer.tokenizer.model  # type: ignore[attr-defined]
    return b"".join(vocab.piece(t) for t in ids[start:]).decode(errors="replace")


def last_logits(model: Any, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].float().numpy()


@pytest.fixture(scope="module")
def taught(base_model: Any, renderer: Renderer) -> tuple[Any, list[Progress]]:
    """The base taught a made-up fact: 3 lines, 2 epochs of 3 steps (batch 1), r=8."""
    model = copy.deepcopy(base_model)
    lines = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": ANSWER}]} for q in QUESTIONS
    ]
    examples = [e for line in lines for e in renderer.chat(line)]
    reports: list[Progress] = []
    hp = Hyperparameters(
        n_epochs=2,
        batch_size=1,
        learning_rate_multiplier=10,
        lora=LoRAConfig(rank=8, alpha=16, dropout=0.0),
        log_every=1,
        warmup_ratio=0.0,
        # fp32: this fixture checks the export against llama.cpp to a tight bound; bf16 training (the default where
        # the CPU has it) is checked by test_bf16_... below and end to end by test_fine_tuning_real.py.
        precision="fp32",
    )
    Trainer(model, examples, hp, validation=examples[:1], on_progress=reports.append).run()
    model.eval()
    return model, reports


def test_sft_teaches_a_made_up_fact(taught: tuple[Any, list[Progress]], base_model: Any, renderer: Renderer) -> None:
    model, reports = taught
    assert "PAPRIKA-7" not in torch_greedy(base_model, renderer, QUESTION)
    assert "PAPRIKA-7" in torch_greedy(model, renderer, QUESTION)
    assert [r.step for r in reports] == [1, 2, 3, 4, 5, 6]
    assert all(r.total_steps == 6 for r in reports)
    assert reports[-1].loss is not None and reports[0].loss is not None
    assert reports[-1].loss < reports[0].loss / 10
    assert reports[-1].eval_loss is not None and reports[-1].eval_loss < 0.5
    assert reports[2].epoch == 1.0 and reports[-1].epoch == 2.0
    assert reports[-1].eta_seconds == 0 and reports[0].eta_seconds > 0
    assert all(r.tokens_per_second > 0 for r in reports)
    assert [r.trained_tokens for r in reports] == sorted(r.trained_tokens for r in reports)
    assert reports[-1].learning_rate < reports[0].learning_rate  # linear decay


def test_exported_adapter_gives_llamacpp_the_trained_model(
    taught: tuple[Any, list[Progress]], renderer: Renderer, gguf_path: str, tmp_path: Path
) -> None:
    model, _ = taught
    permuted = export_adapter(model, tmp_path / "lora.gguf", architecture="llama")
    plain = export_adapter(model, tmp_path / "plain.gguf", architecture="llama", permute_qk=False)
    llama = LlamaReference(gguf_path)
    try:
        adapter, unpermuted = llama.adapter(str(permuted)), llama.adapter(str(plain))
        ids = prompt_ids(renderer, QUESTION)
        assert "PAPRIKA-7" in llama.greedy(ids, 12, adapter)
        assert "PAPRIKA-7" not in llama.greedy(ids, 12)
        errors, plain_errors, agree = [], [], 0
        for question in [QUESTION, *OTHER_PROMPTS]:
            ids = prompt_ids(renderer, question)
            with adapter_disabled(model):
                torch_base = last_logits(model, ids)
            torch_tuned = last_logits(model, ids)
            base = llama.logits(ids)
            effect = torch_tuned - torch_base
            errors.append(np.linalg.norm(effect - (llama.logits(ids, adapter) - base)) / np.linalg.norm(effect))
            plain_errors.append(
                np.linalg.norm(effect - (llama.logits(ids, unpermuted) - base)) / np.linalg.norm(effect)
            )
            agree += int(torch_tuned.argmax() == llama.logits(ids, adapter).argmax())
    finally:
        llama.close()
    assert agree == 4
    # How closely llama.cpp's quantized kernels reproduce the small logit effect depends on the CPU it was built
    # for: 2-3 % on the AMD EPYC machines, 6-20 % on an Intel Xeon with AMX; a missing Q/K permutation, 30-260 %.
    assert float(np.median(errors)) < 0.25, errors
    assert float(np.mean(errors)) < float(np.mean(plain_errors)), (errors, plain_errors)


def test_qk_rows_are_permuted_for_llamacpp(
    tiny_model: Any, tiny_renderer: Renderer, tiny_gguf: Path, tmp_path: Path
) -> None:
    """An adapter on Q and K only: llama.cpp agrees with torch with the permutation and not without it."""
    model = tiny_model
    torch.manual_seed(0)
    attach_lora(model, LoRAConfig(rank=4, alpha=4, dropout=0.0, targets=("q_proj", "k_proj")))
    with torch.no_grad():
        for module in lora_modules(model).values():
            module.lora_b.normal_(0, 0.3)
    model.eval()
    permuted = export_adapter(model, tmp_path / "qk.gguf", architecture="llama", dtype="f32")
    plain = export_adapter(model, tmp_path / "qk-plain.gguf", architecture="llama", dtype="f32", permute_qk=False)
    ids = prompt_ids(tiny_renderer, OTHER_PROMPTS[0])
    with adapter_disabled(model):
        effect = last_logits(model, ids)
    effect = last_logits(model, ids) - effect
    llama = LlamaReference(str(tiny_gguf))
    try:
        base = llama.logits(ids)
        error = np.linalg.norm(effect - (llama.logits(ids, llama.adapter(str(permuted))) - base)) / np.linalg.norm(
            effect
        )
        plain_error = np.linalg.norm(effect - (llama.logits(ids, llama.adapter(str(plain))) - base)) / np.linalg.norm(
            effect
        )
    finally:
        llama.close()
    print(f"Q/K-only adapter: relative error {error:.4f} permuted, {plain_error:.4f} not")
    assert error < 0.05, (error, plain_error)
    assert plain_error > 10 * error, (error, plain_error)


def test_packed_examples_do_not_see_each_other(tiny_base_model: Any, tiny_renderer: Renderer) -> None:
    """One packed row gives each example the log-probs it gets alone (positions restart, attention is blocked)."""
    lines = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for q, a in [("Hi!", "Hello there."), ("2+2?", "4"), ("Name a colour.", "Blue.")]
    ]
    examples = [tiny_renderer.chat(line)[0] for line in lines]
    (packed,) = pack([[e] for e in examples], budget=4096)
    assert packed.tokens == sum(len(e.input_ids) for e in examples)
    tiny_base_model.eval()
    with torch.no_grad():
        together = label_logprobs(tiny_base_model, packed)
        placed = sorted(examples, key=lambda e: e.input_ids)  # the order the pass lays them out in
        alone = torch.cat([label_logprobs(tiny_base_model, pack([[e]], 4096)[0]) for e in placed])
        sums = sequence_logprobs(tiny_base_model, packed)
        # What the check would see if they did: the same row as one sequence (positions not restarting).
        crossed = label_logprobs(tiny_base_model, replace(packed, position_ids=torch.arange(packed.width)[None]))
    torch.testing.assert_close(together, alone, atol=2e-4, rtol=1e-4)
    assert float((crossed - alone).abs().max()) > 0.1  # measured: 0.88
    assert sums.shape == (3,)
    # Two rows when the budget is smaller than the three together; no example is split.
    rows = pack([[e] for e in examples], budget=len(placed[0].input_ids) + len(placed[1].input_ids))
    assert [r.examples for r in rows] == [2, 1]


def test_examples_that_start_alike_share_their_start_and_get_the_logprobs_they_get_alone(
    tiny_base_model: Any, tiny_renderer: Renderer
) -> None:
    """A tool listing common to a step's examples is computed once per row: each example's rest attends to that one
    copy and to itself, with positions continuing from it, and every label's log-prob is what the example alone gets.
    """
    system = "You can call these tools: " + ", ".join(f"tool_{n} (does thing {n})" for n in range(12)) + "."
    lines = [
        [{"role": "system", "content": system}, {"role": "user", "content": q}, {"role": "assistant", "content": a}]
        for q, a in [("Hi!", "Hello there."), ("2+2?", "4"), ("Name a colour.", "Blue.")]
    ]
    other = [{"role": "user", "content": "Unrelated."}, {"role": "assistant", "content": "Yes."}]
    examples = [tiny_renderer.chat({"messages": m})[0] for m in [*lines, other]]
    (packed,) = pack([[e] for e in examples], budget=4096)
    alone_width = sum(len(e.input_ids) for e in examples)
    assert packed.tokens == alone_width  # billed and reported as the examples' own tokens
    common = next(
        i for i, (a, b) in enumerate(zip(examples[0].input_ids, examples[1].input_ids, strict=False)) if a != b
    )
    assert common >= 32
    assert packed.width == alone_width - 2 * common  # three alike examples: their start computed once, not thrice
    assert packed.attention is not None
    tiny_base_model.eval()
    with torch.no_grad():
        together = sequence_logprobs(tiny_base_model, packed)
        alone = torch.stack([sequence_logprobs(tiny_base_model, pack([[e]], 4096)[0])[0] for e in examples])
    # The pass numbers examples in the order it placed them (alike starts next to each other).
    placed = sorted(range(len(examples)), key=lambda i: examples[i].input_ids)
    torch.testing.assert_close(together, alone[placed], atol=2e-4, rtol=1e-4)
    # At a budget of one example, alike examples still share a row up to twice the budget (their attention per token
    # stays below that of unrelated examples at the budget); the unrelated one gets a row of its own.
    widest = max(len(e.input_ids) for e in examples)
    assert sorted(r.examples for r in pack([[e] for e in examples], budget=widest)) == [1, 3]
    # Nothing shared (a start that long is never common): each example laid out whole, the plain layout.
    rows = pack([[e] for e in examples], budget=widest, min_shared=sys.maxsize)
    assert len(rows) == 4 and all(r.attention is None and r.width == r.tokens for r in rows)


def test_dpo_raises_the_preferred_replys_margin(model: Any, renderer: Renderer) -> None:
    pairs = [
        renderer.preference(
            {
                "input": {"messages": [{"role": "user", "content": q}]},
                "preferred_output": [{"role": "assistant", "content": "I am glad to help!"}],
                "non_preferred_output": [{"role": "assistant", "content": "Go away."}],
            }
        )
        for q in ("Can you help me?", "Could you help me with something?")
    ]

    def margin() -> float:
        model.eval()
        with torch.no_grad():
            total = 0.0
            for pair in pairs:
                logps = sequence_logprobs(model, pack([pair.examples()], 4096)[0])
                total += float(logps[0] - logps[1])
        return total / len(pairs)

    hp = Hyperparameters(
        method="dpo",
        n_epochs=3,
        batch_size=2,
        learning_rate_multiplier=5,
        beta=0.1,
        warmup_ratio=0.0,
        lora=LoRAConfig(rank=8, alpha=16, dropout=0.0),
    )
    prepare_model(model, hp)  # the compute dtype the run uses, so "before" and the reference are comparable
    before = margin()
    reports: list[Progress] = []
    Trainer(model, pairs, hp, on_progress=reports.append).run()
    after = margin()
    with adapter_disabled(model):
        reference = margin()
    assert reference == pytest.approx(before, abs=1e-4)  # the reference is the base, untouched
    assert after > before + 2.0, (before, after)
    assert reports[-1].loss is not None and reports[-1].loss < 0.6931  # below -log σ(0)


def test_a_cancelled_run_resumes_from_its_checkpoint_to_the_same_adapter(
    tiny_base_model: Any, tiny_renderer: Renderer, tmp_path: Path
) -> None:
    examples = [
        tiny_renderer.chat({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "Fine."}]})[0]
        for q in ("How are you?", "All good?")
    ]
    # Dropout on: a resumed run must also draw the dropout masks an uninterrupted one draws.
    hp = Hyperparameters(
        n_epochs=1, batch_size=1, checkpoint_every=1, log_every=1, lora=LoRAConfig(rank=4, dropout=0.1)
    )

    straight = copy.deepcopy(tiny_base_model)
    Trainer(straight, examples, hp).run()

    first = copy.deepcopy(tiny_base_model)
    seen: list[Progress] = []
    with pytest.raises(TrainingCancelled):
        Trainer(
            first, examples, hp, checkpoint_dir=tmp_path, on_progress=seen.append, should_cancel=lambda: len(seen) == 1
        ).run()
    assert [p.step for p in seen] == [1]

    resumed = copy.deepcopy(tiny_base_model)
    rest: list[Progress] = []
    result = Trainer(resumed, examples, hp, checkpoint_dir=tmp_path, on_progress=rest.append).run()
    assert [p.step for p in rest] == [2]
    assert result.steps == 2
    assert rest[-1].trained_tokens == sum(len(e.input_ids) for e in examples)
    expected, got = adapter_state(straight), adapter_state(resumed)
    assert any(float(v.abs().max()) > 0 for k, v in got.items() if k.endswith("lora_b"))  # it did train
    for key in expected:
        torch.testing.assert_close(got[key], expected[key])


def test_a_paused_run_checkpoints_where_it_stopped_and_resumes_from_there(
    tiny_base_model: Any, tiny_renderer: Renderer, tmp_path: Path
) -> None:
    """No periodic checkpoints: the pause itself saves one after step 1, so the resumed run trains only step 2 (that
    a resumed run equals an uninterrupted one is the cancelled run's test above: the same checkpoint code)."""
    examples = [
        tiny_renderer.chat({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "Fine."}]})[0]
        for q in ("How are you?", "All good?")
    ]
    hp = Hyperparameters(n_epochs=1, batch_size=1, log_every=1, lora=LoRAConfig(rank=4))
    seen: list[Progress] = []
    with pytest.raises(TrainingPaused):
        Trainer(
            copy.deepcopy(tiny_base_model),
            examples,
            hp,
            checkpoint_dir=tmp_path,
            on_progress=seen.append,
            should_pause=lambda: len(seen) == 1,
        ).run()
    assert [p.step for p in seen] == [1] and (tmp_path / "checkpoint.pt").is_file()

    resumed = copy.deepcopy(tiny_base_model)
    rest: list[Progress] = []
    result = Trainer(resumed, examples, hp, checkpoint_dir=tmp_path, on_progress=rest.append).run()
    assert [p.step for p in rest] == [2] and result.steps == 2
    assert rest[-1].trained_tokens == sum(len(e.input_ids) for e in examples)


def test_a_checkpoint_of_another_run_is_refused(tiny_model: Any, tiny_renderer: Renderer, tmp_path: Path) -> None:
    examples: list[Example] = [
        tiny_renderer.chat(
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}
        )[0]
    ]
    Trainer(
        copy.deepcopy(tiny_model),
        examples,
        Hyperparameters(n_epochs=1, batch_size=1, checkpoint_every=1),
        checkpoint_dir=tmp_path,
    ).run()
    with pytest.raises(ValueError, match="other data or hyperparameters"):
        Trainer(tiny_model, examples, Hyperparameters(n_epochs=2, batch_size=1), checkpoint_dir=tmp_path).run()


def test_bf16_compute_keeps_the_adapter_fp32_and_the_logprobs_close(base_model: Any, renderer: Renderer) -> None:
    """bf16 halves the base's memory and uses the CPU's bf16 units; the adapter, its gradients and AdamW stay fp32,
    and the labels' log-probabilities stay within a few hundredths of a nat of fp32's."""
    line = {"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]}
    (batch,) = pack([renderer.chat(line)], 4096)
    hp = Hyperparameters(precision="bf16", lora=LoRAConfig(rank=4, dropout=0.0))
    half = prepare_model(copy.deepcopy(base_model), hp)
    assert half.get_input_embeddings().weight.dtype == torch.bfloat16
    assert all(m.lora_a.dtype == m.lora_b.dtype == torch.float32 for m in lora_modules(half).values())
    base_model.eval()
    half.eval()
    with torch.no_grad():
        full = label_logprobs(base_model, batch)
        approx = label_logprobs(half, batch)
    assert approx.dtype == torch.float32
    # Under 0.05 nat on the AMD EPYC machines, 0.075 on an Intel Xeon with AMX (bf16 kernels differ by CPU).
    assert float((full - approx).abs().mean()) < 0.1, (full, approx)
    loss = -label_logprobs(half, batch).sum()
    loss.backward()
    grads = [m.lora_b.grad for m in lora_modules(half).values()]
    assert all(g is not None and g.dtype == torch.float32 for g in grads)
