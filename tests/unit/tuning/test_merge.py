"""Merging a LoRA adapter into the real default model (SmolLM2-135M, Q4_1 GGUF) and what llama.cpp makes of it.

The adapter is random but meaningful (``tests/fixtures/lora_adapter.py``: every projection of every layer, deltas 8 %
of each tensor's RMS), so the base and the base-with-adapter disagree clearly; the merged files must agree with the
base-with-adapter as llama.cpp computes it. Distances are KL(adapter-on-base ‖ x) of the next-token distribution
after each prompt: the F16 merge is within rounding (measured ~0.003 against the base's ~0.5), the Q4_1 requantized
merge loses part of it to the second quantization (~0.2), which ``benchmarks/bench_merge.py`` measures on a trained
adapter. The rest runs on a tiny random GLM-4 (``chatglm``: fused QKV with a bias, gate and up stacked; quantized to
Q4_1 here, with the Q8_0 output llama.cpp chose), where a merge takes milliseconds: another architecture, the
byte-for-byte round trip, refusals.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from openglm.tuning.merge import MergeError, merge_gguf, read_adapter, read_header
from tests.fixtures.cores import TEST_THREADS
from tests.fixtures.lora_adapter import random_adapter
from tests.fixtures.tiny_glm4 import write_tiny_glm4_gguf

from .llama_ref import LlamaReference

PROMPTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "The quick brown fox",
    "def fibonacci(n):",
    "<|im_start|>user\nName three colours.<|im_end|>\n<|im_start|>assistant\n",
    "Water boils at",
]


def kl(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    """KL(p ‖ q) of the softmax distributions."""
    lp = p_logits - np.logaddexp.reduce(p_logits)
    lq = q_logits - np.logaddexp.reduce(q_logits)
    return float(np.sum(np.exp(lp) * (lp - lq)))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("merge")


@pytest.fixture(scope="module")
def adapter(gguf_path: str, work: Path) -> Path:
    return random_adapter(gguf_path, work / "adapter.gguf", rank=4, alpha=8.0, relative=0.08, seed=1)


@pytest.fixture(scope="module")
def llama(gguf_path: str) -> Iterator[LlamaReference]:
    reference = LlamaReference(gguf_path)
    yield reference
    reference.close()


@pytest.fixture(scope="module")
def on_base(llama: LlamaReference, adapter: Path) -> list[tuple[list[int], np.ndarray, np.ndarray]]:
    """Per prompt: its tokens, the base's logits and the base-with-adapter's (llama.cpp applying the adapter)."""
    loaded = llama.adapter(str(adapter))
    rows = []
    for prompt in PROMPTS:
        ids = llama.model.tokenize(prompt, add_special=True, parse_special=True)
        rows.append((ids, llama.logits(ids), llama.logits(ids, loaded)))
    return rows


def merged_logits(path: Path, rows: list[tuple[list[int], Any, Any]]) -> list[np.ndarray]:
    reference = LlamaReference(str(path))
    try:
        return [reference.logits(ids) for ids, _, _ in rows]
    finally:
        reference.close()


def test_merged_f16_computes_what_the_adapter_on_the_base_computes(
    gguf_path: str, adapter: Path, work: Path, on_base: list[tuple[list[int], np.ndarray, np.ndarray]]
) -> None:
    result = merge_gguf(gguf_path, adapter, work / "merged-f16.gguf", quantization="f16")
    assert result.file_type == "F16" and result.merged_tensors == 210  # 7 projections × 30 layers
    merged = merged_logits(result.path, on_base)
    base_kl = [kl(with_adapter, base) for _, base, with_adapter in on_base]
    merged_kl = [kl(with_adapter, m) for (_, _, with_adapter), m in zip(on_base, merged, strict=True)]
    assert sum(base_kl) > 1.0  # the adapter matters
    assert sum(merged_kl) < 0.03 * sum(base_kl), (merged_kl, base_kl)
    assert all(m < 0.2 * b for m, b in zip(merged_kl, base_kl, strict=True)), (merged_kl, base_kl)
    assert [m.argmax() for m in merged] == [with_adapter.argmax() for _, _, with_adapter in on_base]


def test_requantized_merge_has_the_bases_layout_and_keeps_large_deltas(
    gguf_path: str, adapter: Path, work: Path, on_base: list[tuple[list[int], np.ndarray, np.ndarray]]
) -> None:
    result = merge_gguf(gguf_path, adapter, work / "merged-q4_1.gguf", quantization="base", threads=TEST_THREADS)
    assert result.file_type == "Q4_1"
    # Tensor for tensor the base's types: Q4_1 projections, the Q8_0 embeddings, F32 norms.
    assert read_header(result.path).types == read_header(gguf_path).types
    assert result.size_bytes == Path(gguf_path).stat().st_size
    # This adapter's deltas (8 % of the weights' RMS) are about Q4_1's step, so most of them survive requantizing;
    # a trained adapter's are far smaller and round away (benchmarks/bench_merge.py: why ``auto`` makes Q8_0 here).
    merged = merged_logits(result.path, on_base)
    base_kl = sum(kl(with_adapter, base) for _, base, with_adapter in on_base)
    merged_kl = sum(kl(with_adapter, m) for (_, _, with_adapter), m in zip(on_base, merged, strict=True))
    assert merged_kl < 0.6 * base_kl, (merged_kl, base_kl)  # measured ~0.38


# -- a tiny GLM-4 ---------------------------------------------------------------------------------------------

TINY_TARGETS = ("attn_qkv", "attn_output", "ffn_up", "ffn_down")
TINY_PROMPTS = ["hi there", "the answer", "<|user|>\nhello<|assistant|>"]


@pytest.fixture(scope="module")
def tiny(work: Path) -> Path:
    """The tiny GLM-4 quantized to Q4_1 by llama.cpp (its output tensor falls back to Q8_0)."""
    import llama_cpp as lc

    from openglm.engines.llamacpp.model import init_backend

    f32 = write_tiny_glm4_gguf(work / "tiny-f32.gguf")
    out = work / "tiny-q4_1.gguf"
    init_backend()
    params = lc.llama_model_quantize_default_params()
    params.ftype, params.nthread = 3, 1  # LLAMA_FTYPE_MOSTLY_Q4_1
    assert lc.llama_model_quantize(str(f32).encode(), str(out).encode(), ctypes.byref(params)) == 0
    return out


def test_merging_another_architecture(tiny: Path, work: Path) -> None:
    adapter = random_adapter(tiny, work / "tiny-adapter.gguf", targets=TINY_TARGETS, relative=0.5, seed=2)
    llama = LlamaReference(str(tiny))
    merged = {q: merge_gguf(tiny, adapter, work / f"tiny-{q}.gguf", quantization=q) for q in ("f16", "q8_0", "base")}
    assert merged["f16"].merged_tensors == 8
    assert read_header(merged["base"].path).types == read_header(tiny).types
    assert set(read_header(merged["q8_0"].path).types.values()) == {"Q8_0", "F32"}
    # auto: a 4-bit base's merge is Q8_0 (a 4-bit requantization loses small deltas), a float base keeps its type.
    assert merge_gguf(tiny, adapter, work / "tiny-auto.gguf").file_type == "Q8_0"
    assert merge_gguf(work / "tiny-f32.gguf", adapter, work / "tiny-f32-auto.gguf").file_type == "F32"
    references = {q: LlamaReference(str(result.path)) for q, result in merged.items()}
    try:
        loaded = llama.adapter(str(adapter))
        for prompt in TINY_PROMPTS:
            ids = llama.model.tokenize(prompt, add_special=False, parse_special=True)
            with_adapter, base = llama.logits(ids, loaded), llama.logits(ids)
            distances = {q: kl(with_adapter, reference.logits(ids)) for q, reference in references.items()}
            assert distances["f16"] < 0.05 * kl(with_adapter, base), (prompt, distances, kl(with_adapter, base))
            assert distances["q8_0"] < 0.2 * kl(with_adapter, base), (prompt, distances, kl(with_adapter, base))
            assert distances["base"] < kl(with_adapter, base), (prompt, distances, kl(with_adapter, base))
    finally:
        for reference in (llama, *references.values()):
            reference.close()


def test_a_zero_adapter_requantizes_to_the_base_byte_for_byte(tiny: Path, work: Path) -> None:
    """Merged tensors go through dequantize → F16 → llama.cpp's quantizer: with nothing added, the same bytes (no
    second quantization error where the adapter changes nothing)."""
    from gguf import GGUFReader

    zero = random_adapter(tiny, work / "zero.gguf", relative=0.0, targets=TINY_TARGETS)
    result = merge_gguf(tiny, zero, work / "zero-merged.gguf", quantization="base")
    assert result.merged_tensors == 8
    base = {t.name: t.data for t in GGUFReader(str(tiny)).tensors}
    merged = {t.name: t.data for t in GGUFReader(str(result.path)).tensors}  # llama.cpp writes its own order
    assert base.keys() == merged.keys()
    assert [name for name in base if not np.array_equal(base[name], merged[name])] == []


def test_an_adapter_that_does_not_fit_is_refused(tiny: Path, work: Path) -> None:
    from gguf import GGUFWriter

    with pytest.raises(MergeError, match=r"not a llama\.cpp LoRA adapter"):
        read_adapter(tiny)  # a model, not an adapter

    def adapter(name: str, architecture: str, a: tuple[int, int], b: tuple[int, int]) -> Path:
        path = work / name
        writer = GGUFWriter(str(path), architecture)
        writer.add_string("general.type", "adapter")
        writer.add_string("adapter.type", "lora")
        writer.add_float32("adapter.lora.alpha", 8.0)
        writer.add_tensor("blk.0.attn_output.weight.lora_a", np.zeros(a, dtype=np.float16))
        writer.add_tensor("blk.0.attn_output.weight.lora_b", np.zeros(b, dtype=np.float16))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path

    with pytest.raises(MergeError, match="ranks differ"):
        read_adapter(adapter("ranks.gguf", "chatglm", (4, 64), (64, 2)))
    with pytest.raises(MergeError, match=r"B A is 32×64, the base's tensor is 64×64"):
        merge_gguf(tiny, adapter("shape.gguf", "chatglm", (4, 64), (32, 4)), work / "never.gguf")
    with pytest.raises(MergeError, match="for 'llama' models, the base is 'chatglm'"):
        merge_gguf(tiny, adapter("arch.gguf", "llama", (4, 64), (64, 4)), work / "never.gguf")
    assert not list(work.glob("never.gguf*"))  # nothing left behind
