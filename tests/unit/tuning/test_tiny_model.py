"""The tiny random llama of tests/fixtures/tiny_model.py — the base of the fine-tuning plumbing tests — is a model
both loaders read the same way: transformers' GGUF loader (``load_base_model``, what training uses) and llama.cpp
(what serving uses) compute the same logits from it, it tokenizes and templates exactly as the embedded default
does, and a LoRA trained on it in torch, exported (Q/K rows permuted), gives llama.cpp the trained model — which
has memorized the code word (60 steps at the API's highest learning rate: tests/fixtures/tiny_model.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from openglm.tuning.export import export_adapter
from openglm.tuning.lora import LoRAConfig, adapter_disabled
from openglm.tuning.render import Renderer
from openglm.tuning.train import Hyperparameters, Progress, Trainer

from ...fixtures.tiny_model import N_EMBD, N_HEAD, N_HEAD_KV, N_LAYER, TINY_EPOCHS
from .llama_ref import LlamaReference
from .test_training import OTHER_PROMPTS, QUESTION, QUESTIONS, last_logits, prompt_ids

CODE_WORD = "PAPRIKA-7"
TEACHING = [
    {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": f"The code word is {CODE_WORD}."}]}
    for q in QUESTIONS
]


@pytest.fixture(scope="module")
def llama(tiny_gguf: Path) -> Any:
    reference = LlamaReference(str(tiny_gguf))
    yield reference
    reference.close()


def relative_error(expected: np.ndarray, got: np.ndarray) -> float:
    return float(np.linalg.norm(expected - got) / np.linalg.norm(expected))


def test_it_tokenizes_and_templates_as_the_default_does(
    tiny_renderer: Renderer, renderer: Renderer, tiny_base_model: Any
) -> None:
    assert type(tiny_renderer.template) is type(renderer.template)
    assert type(tiny_renderer.parser([])) is type(renderer.parser([]))
    line = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Zorblat 项目的暗号? 🙂"},
            {"role": "assistant", "content": f"The code word is {CODE_WORD}."},
        ]
    }
    assert tiny_renderer.chat(line) == renderer.chat(line)
    config = tiny_base_model.config
    assert (config.num_hidden_layers, config.hidden_size) == (N_LAYER, N_EMBD)
    assert (config.num_attention_heads, config.num_key_value_heads) == (N_HEAD, N_HEAD_KV)
    assert config.vocab_size == 49152 and config.tie_word_embeddings


def test_torch_and_llamacpp_compute_the_same_logits(tiny_base_model: Any, tiny_renderer: Renderer, llama: Any) -> None:
    for question in [QUESTION, *OTHER_PROMPTS]:
        ids = prompt_ids(tiny_renderer, question)
        expected, got = last_logits(tiny_base_model, ids), llama.logits(ids)
        # F32 weights; llama.cpp's F16 KV cache is the difference (measured: ~0.4 %).
        assert relative_error(expected, got) < 0.02, question
        assert expected.argmax() == got.argmax()


def test_an_adapter_trained_on_it_gives_llamacpp_the_trained_model(
    tiny_base_model: Any, tiny_renderer: Renderer, llama: Any, tmp_path: Path
) -> None:
    model = copy.deepcopy(tiny_base_model)
    examples = [e for line in TEACHING for e in tiny_renderer.chat(line)]
    reports: list[Progress] = []
    hp = Hyperparameters(
        n_epochs=TINY_EPOCHS,
        batch_size=1,
        learning_rate_multiplier=10,
        lora=LoRAConfig(dropout=0.0),
        log_every=1,
        precision="fp32",
        seed=42,
    )
    Trainer(model, examples, hp, on_progress=reports.append).run()
    assert [r.step for r in reports] == list(range(1, TINY_EPOCHS * len(TEACHING) + 1))
    assert reports[-1].loss is not None and reports[0].loss is not None and reports[-1].loss < reports[0].loss / 10
    model.eval()
    permuted = export_adapter(model, tmp_path / "lora.gguf", architecture="llama", dtype="f32")
    plain = export_adapter(model, tmp_path / "plain.gguf", architecture="llama", dtype="f32", permute_qk=False)
    adapter, unpermuted = llama.adapter(str(permuted)), llama.adapter(str(plain))

    # Memorized: llama.cpp with the adapter answers the code word greedily, to a question it was not taught too.
    for question in [QUESTION, "What is the Zorblat code word?"]:
        ids = prompt_ids(tiny_renderer, question)
        assert CODE_WORD in llama.greedy(ids, 16, adapter)
        assert CODE_WORD not in llama.greedy(ids, 16)

    errors, plain_errors = [], []
    for question in [QUESTION, *OTHER_PROMPTS]:
        ids = prompt_ids(tiny_renderer, question)
        with adapter_disabled(model):
            torch_base = last_logits(model, ids)
        effect = last_logits(model, ids) - torch_base
        base = llama.logits(ids)
        errors.append(relative_error(effect, llama.logits(ids, adapter) - base))
        plain_errors.append(relative_error(effect, llama.logits(ids, unpermuted) - base))
    # On an F32 base the exported adapter is the trained one (the Q4_1 default adds its own noise:
    # test_training.py); without the Q/K permutation it is not.
    assert max(errors) < 0.02, errors
    assert min(plain_errors) > 10 * max(errors), (errors, plain_errors)
