"""LoRA adapters served on the base model by the llamacpp engine (issue #13), on the real default model.

The adapters are small random LoRA GGUFs written here the way llama.cpp's converter writes them; they are strong
enough to change the greedy output. "Solo" outputs come from an engine that runs one sequence at a time without a
prefix cache: what each (prompt, adapter) gives when nothing else shares the context.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

import gguf
import numpy as np
import pytest

from openglm.catalog import ModelSpec
from openglm.config import Settings
from openglm.engines.base import AdapterRef, GenerationHandle, GenerationRequest, SamplingParams
from openglm.engines.remote import completion_body
from openglm.engines.scripted import ScriptedEngine
from openglm.errors import AdapterLoadError, AdapterUnsupportedError

from .test_llamacpp import GREEDY, chat, engine, generate, run

# SmolLM2-135M: hidden 576, 30 layers, 3 KV heads of 64, feed-forward 1536 (ggml order: in, out).
SHAPES = {"attn_q": (576, 576), "attn_k": (576, 192), "attn_v": (576, 192), "ffn_up": (576, 1536)}
PROMPT = chat("Tell me about cats.")
TOKENS = 16
Output = tuple[str, str | None, int]


def write_adapter(path: Path, seed: int, layers: Iterable[int] = range(0, 30, 3), rank: int = 8) -> Path:
    """A random LoRA adapter GGUF: A is (rank, in) and B is (out, rank) as numpy arrays, which gguf's writer
    stores with reversed dimensions, i.e. ggml's (in, rank) and (rank, out), what llama.cpp checks on load."""
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 2.0 * rank)
    for layer in layers:
        for name, (n_in, n_out) in SHAPES.items():
            writer.add_tensor(f"blk.{layer}.{name}.weight.lora_a", rng.normal(0, 0.05, (rank, n_in)).astype(np.float32))
            writer.add_tensor(
                f"blk.{layer}.{name}.weight.lora_b", rng.normal(0, 0.05, (n_out, rank)).astype(np.float32)
            )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AdapterRef]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        "a": AdapterRef("ft:a", str(write_adapter(root / "a.gguf", 1))),
        "b": AdapterRef("ft:b", str(write_adapter(root / "b.gguf", 2))),
    }


async def solo(runs: list[tuple[str, AdapterRef | None]]) -> list[Output]:
    eng = engine(parallel=1, prefix_cache=False)
    await eng.start()
    try:
        return [await generate(eng, prompt, TOKENS, adapter=adapter) for prompt, adapter in runs]
    finally:
        await eng.stop()


@pytest.fixture(scope="module")
def expected(adapters: dict[str, AdapterRef]) -> dict[str | None, Output]:
    """PROMPT's solo output with no adapter, with a and with b."""
    keys: list[str | None] = [None, "a", "b"]
    outputs = run(solo([(PROMPT, adapters[k] if k else None) for k in keys]))
    return dict(zip(keys, outputs, strict=True))


def test_an_adapter_changes_the_output_and_leaves_the_base_as_it_was(
    adapters: dict[str, AdapterRef], expected: dict[str | None, Output]
) -> None:
    assert len({expected[None][0], expected["a"][0], expected["b"][0]}) == 3  # each adapter makes a difference

    async def scenario() -> tuple[list[Output], dict[str, int]]:
        eng = engine(prefix_cache=False)
        await eng.start()
        try:
            outputs = [
                await generate(eng, PROMPT, TOKENS),
                await generate(eng, PROMPT, TOKENS, adapter=adapters["a"]),
                await generate(eng, PROMPT, TOKENS),  # the context's adapter must be gone again
                await generate(eng, PROMPT, TOKENS, adapter=adapters["a"]),  # loaded once, used twice
            ]
            return outputs, eng.stats()
        finally:
            await eng.stop()

    outputs, stats = run(scenario())
    assert outputs == [expected[None], expected["a"], expected[None], expected["a"]]
    assert stats["adapter_loads"] == 1 and stats["loaded_adapters"] == 1


def test_sequences_with_different_adapters_share_the_batch(
    adapters: dict[str, AdapterRef], expected: dict[str | None, Output]
) -> None:
    async def scenario() -> list[Output]:
        eng = engine(parallel=4, prefix_cache=False)
        await eng.start()
        try:
            return list(
                await asyncio.gather(
                    generate(eng, PROMPT, TOKENS, adapter=adapters["a"]),
                    generate(eng, PROMPT, TOKENS, adapter=adapters["b"]),
                    generate(eng, PROMPT, TOKENS),
                    generate(eng, PROMPT, TOKENS, adapter=adapters["a"]),
                )
            )
        finally:
            await eng.stop()

    assert run(scenario()) == [expected["a"], expected["b"], expected[None], expected["a"]]


def test_the_prefix_cache_is_keyed_by_adapter(
    adapters: dict[str, AdapterRef], expected: dict[str | None, Output]
) -> None:
    """KV values depend on the adapter: a cached or running prompt's cells serve only the same adapter."""

    async def one_after_another(order: list[str | None]) -> tuple[list[Output], int]:
        eng = engine()
        await eng.start()
        try:
            outputs = [await generate(eng, PROMPT, TOKENS, adapter=adapters[k] if k else None) for k in order]
            return outputs, eng.stats()["reused_prompt_tokens"]
        finally:
            await eng.stop()

    for order in ([None, "a", "b"], ["a", None]):
        outputs, reused = run(one_after_another(order))
        assert outputs == [expected[k] for k in order], order
        assert reused == 0, order  # the same prompt, but never under the same adapter

    _, reused = run(one_after_another(["a", "a"]))
    assert reused > 0  # the same adapter still shares

    async def together() -> tuple[list[Output], int]:
        eng = engine(parallel=4)
        await eng.start()
        try:
            outputs = await asyncio.gather(
                generate(eng, PROMPT, TOKENS), generate(eng, PROMPT, TOKENS, adapter=adapters["a"])
            )
            return list(outputs), eng.stats()["reused_prompt_tokens"]
        finally:
            await eng.stop()

    outputs, reused = run(together())
    assert outputs == [expected[None], expected["a"]]
    assert reused == 0  # a running base prompt's cells are not shared with the adapter's sequence


async def read(handle: GenerationHandle) -> Output:
    text, finish, tokens = "", None, 0
    async for chunk in handle:
        text, finish, tokens = text + chunk.text, chunk.finish_reason, tokens + chunk.n_tokens
    return text, finish, tokens


def test_least_recently_used_adapters_are_evicted(
    adapters: dict[str, AdapterRef], expected: dict[str | None, Output]
) -> None:
    async def scenario() -> tuple[list[Output], list[Output], list[int], dict[str, int]]:
        eng = engine(parallel=4, prefix_cache=False, max_adapters=1)
        await eng.start()
        try:
            order = ["a", "b", "a", "b"]
            alternating = [await generate(eng, PROMPT, TOKENS, adapter=adapters[k]) for k in order]
            # a is loaded again (b, unheld, is evicted) and held by its sequence, so b must load beside it:
            # adapters in use stay loaded past the bound.
            # (a runs longer than b's load takes, so that it is still held when b arrives)
            first = await eng.submit(GenerationRequest(PROMPT, GREEDY, 8 * TOKENS, adapter=adapters["a"]))
            second = await eng.submit(GenerationRequest(PROMPT, GREEDY, TOKENS, adapter=adapters["b"]))
            loaded_while_held = eng.stats()["loaded_adapters"]
            both = await asyncio.gather(read(first), read(second))
            await generate(eng, PROMPT, 1)  # a step after both finished, where the evicted one is freed
            return alternating, list(both), [loaded_while_held], eng.stats()
        finally:
            await eng.stop()

    alternating, both, [loaded_while_held], stats = run(scenario())
    assert alternating == [expected["a"], expected["b"], expected["a"], expected["b"]]
    assert both[0][0].startswith(expected["a"][0]) and both[1] == expected["b"]
    assert loaded_while_held == 2
    assert stats["adapter_loads"] == 6  # a, b, a, b, a, b: every change of adapter reloaded it
    assert stats["loaded_adapters"] == 1


def test_kv_cache_pressure_preempts_across_adapter_groups(adapters: dict[str, AdapterRef]) -> None:
    """Four sequences in three adapter groups overflow a small KV cache: the youngest is preempted and
    recomputed under its own adapter, and every sequence still runs to its length."""
    ban_eos = SamplingParams(temperature=0.0, logit_bias={0: -100.0, 2: -100.0})

    async def scenario() -> tuple[list[Output], dict[str, int]]:
        eng = engine(parallel=4, kv_tokens=256, prefix_cache=False)
        await eng.start()
        try:
            groups = [None, adapters["a"], adapters["b"], adapters["a"]]
            jobs = [
                generate(eng, chat(f"Story {i}"), max_tokens=80, sampling=ban_eos, adapter=adapter)
                for i, adapter in enumerate(groups)
            ]
            return list(await asyncio.wait_for(asyncio.gather(*jobs), timeout=300)), eng.stats()
        finally:
            await eng.stop()

    results, stats = run(scenario())
    assert [(finish, tokens) for _, finish, tokens in results] == [("length", 80)] * 4
    assert stats["active"] == 0 and stats["waiting"] == 0


def test_a_bad_adapter_fails_only_its_request(
    tmp_path: Path, adapters: dict[str, AdapterRef], expected: dict[str | None, Output]
) -> None:
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + b"\x00" * 64)
    wrong_shapes = tmp_path / "wrong.gguf"
    write_adapter(wrong_shapes, 3, layers=[40])  # the base has 30 layers: tensors llama.cpp cannot place

    async def scenario() -> tuple[list[str], list[Output], dict[str, int]]:
        eng = engine(parallel=4, prefix_cache=False)
        await eng.start()
        try:
            errors = []
            for path in (tmp_path / "missing.gguf", corrupt, wrong_shapes):
                with pytest.raises(AdapterLoadError) as caught:
                    await eng.submit(GenerationRequest(PROMPT, GREEDY, TOKENS, adapter=AdapterRef("ft:x", str(path))))
                errors.append(str(caught.value))
            # Failing beside a running generation leaves it alone, and the engine serves on.
            running = asyncio.create_task(generate(eng, PROMPT, TOKENS, adapter=adapters["a"]))
            with pytest.raises(AdapterLoadError):
                await generate(eng, PROMPT, TOKENS, adapter=AdapterRef("ft:y", str(corrupt)))
            outputs = [await running, await generate(eng, PROMPT, TOKENS)]
            return errors, outputs, eng.stats()
        finally:
            await eng.stop()

    errors, outputs, stats = run(scenario())
    assert "missing" in errors[0] and all("ft:x" in e and "cannot load" in e for e in errors[1:])
    assert outputs == [expected["a"], expected[None]]
    assert stats["loaded_adapters"] == 1 and stats["active"] == 0


def test_engines_without_adapters_refuse_them_and_remote_ones_name_them() -> None:
    ref = AdapterRef("ft:glm-4:acme:x1", "/nowhere.gguf")
    scripted = ScriptedEngine(ModelSpec(id="s", engine="scripted", source=""), Settings())
    with pytest.raises(AdapterUnsupportedError):
        run(scripted.submit(GenerationRequest("hi", GREEDY, 4, adapter=ref)))
    assert completion_body(GenerationRequest("hi", GREEDY, 4, adapter=ref), "glm-4", "grammar")["model"] == ref.key
    assert completion_body(GenerationRequest("hi", GREEDY, 4), "glm-4", "grammar")["model"] == "glm-4"
