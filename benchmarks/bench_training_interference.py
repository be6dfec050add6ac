#!/usr/bin/env python
"""What a running fine-tuning job costs interactive chat: TTFT p50 at concurrency 4, idle against while training.

The real server (``openglm serve``) on the embedded default model (SmolLM2-135M Q4_1, llama.cpp with
``OPENGLM_THREADS`` threads) and the real ``local`` trainer (a niced process with ``OPENGLM_FINE_TUNING_THREADS``
torch threads). Phases alternate: ``idle`` (no job) and ``training`` (a long SFT job through the OpenAI SDK,
measured only once its first optimizer step is reported, so model loading is not counted, then cancelled). In each
phase ``--rounds`` rounds of 4 concurrent streamed chat calls (``--max-tokens`` tokens each, greedy) are sent;
TTFT is the time to the first content chunk, end to end through HTTP and metering.

    .venv/bin/python benchmarks/bench_training_interference.py --repeats 2 --rounds 10
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

import httpx
import openai

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.conftest import write_catalog  # noqa: E402
from tests.integration.fine_tuning_catalog import BASE, CATALOG  # noqa: E402
from tests.integration.server import RunningServer  # noqa: E402

PROMPTS = [
    "Write two sentences about rivers.",
    "Name three colours and a fruit.",
    "What is a good name for a cat?",
    "Describe the sea in one sentence.",
]
TOPICS = ["gardens", "trains", "music", "winter", "bread", "stars", "maps", "bees", "clocks", "islands"]


def training_lines(n: int) -> bytes:
    lines = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        question = f"Tell me something about {topic}, item {i}. " + " ".join([topic] * 30)
        answer = f"Here is a note on {topic}: " + " ".join([f"{topic}-{i}"] * 40)
        lines.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


async def ttft(client: httpx.AsyncClient, prompt: str, max_tokens: int) -> float:
    body = {
        "model": BASE,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "temperature": 0,
        "max_tokens": max_tokens,
    }
    start = time.perf_counter()
    first: float | None = None
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if first is None and line.startswith("data: {") and '"content":"' in line.replace(" ", ""):
                first = time.perf_counter() - start
    assert first is not None, "no content chunk"
    return first


async def phase(url: str, key: str, rounds: int, max_tokens: int) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"}
    out: list[float] = []
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        await ttft(client, PROMPTS[0], 4)  # warm the connection
        for _ in range(rounds):
            out += await asyncio.gather(*(ttft(client, p, max_tokens) for p in PROMPTS))
    return out


def start_training(sdk: openai.OpenAI, file_id: str) -> str:
    job = sdk.fine_tuning.jobs.create(
        model=BASE,
        training_file=file_id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3, "batch_size": 4}}},
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # until the first optimizer step is reported: loading is over
        events = sdk.fine_tuning.jobs.list_events(job.id, limit=100).data
        if any(e.type == "metrics" for e in events):
            return job.id
        status = sdk.fine_tuning.jobs.retrieve(job.id).status
        if status in ("failed", "cancelled", "succeeded"):
            raise RuntimeError(f"training job ended early: {status}")
        time.sleep(1)
    raise RuntimeError("training did not start")


def stop_training(sdk: openai.OpenAI, job_id: str) -> None:
    sdk.fine_tuning.jobs.cancel(job_id)
    while sdk.fine_tuning.jobs.retrieve(job_id).status not in ("cancelled", "failed", "succeeded"):
        time.sleep(0.5)
    time.sleep(3)  # the training process is gone and its memory returned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--serving-threads", default="2")
    parser.add_argument("--training-threads", default="1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-interference-") as tmp:
        tmp_path = Path(tmp)
        env = {
            "OPENGLM_THREADS": args.serving_threads,
            "OPENGLM_FINE_TUNING_THREADS": args.training_threads,
            "OPENGLM_AUTH": "on",
        }
        catalog = write_catalog(tmp_path / "models.toml", CATALOG.replace("parallel = 2", "parallel = 4"))
        server = RunningServer(models_file=catalog, env=env, log=tmp_path / "server.log")
        try:
            server.cli("accounts", "create", "bench", "--grant", "100000")
            key = server.cli("keys", "create", "--account", "bench").strip()
            sdk = openai.OpenAI(api_key=key, base_url=f"{server.url}/v1", max_retries=0, timeout=120)
            file_id = sdk.files.create(file=("train.jsonl", training_lines(400)), purpose="fine-tune").id
            runs: dict[str, list[float]] = {"idle": [], "training": []}
            per_repeat: list[dict[str, float]] = []
            loads: list[float] = []
            for _ in range(args.repeats):
                idle = asyncio.run(phase(server.url, key, args.rounds, args.max_tokens))
                loads.append(os.getloadavg()[0])
                job_id = start_training(sdk, file_id)
                busy = asyncio.run(phase(server.url, key, args.rounds, args.max_tokens))
                loads.append(os.getloadavg()[0])
                stop_training(sdk, job_id)
                runs["idle"] += idle
                runs["training"] += busy
                per_repeat.append({"idle": statistics.median(idle), "training": statistics.median(busy)})
                print(json.dumps(per_repeat[-1]), file=sys.stderr, flush=True)
        finally:
            server.stop()
    idle_p50, busy_p50 = statistics.median(runs["idle"]), statistics.median(runs["training"])
    print(
        json.dumps(
            {
                "date": dt.datetime.now().isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "args": vars(args),
                "load_average_after_phases": loads,
                "ttft_p50_seconds": {"idle": idle_p50, "training": busy_p50},
                "ttft_p90_seconds": {k: sorted(v)[int(0.9 * len(v))] for k, v in runs.items()},
                "ratio": busy_p50 / idle_p50,
                "per_repeat": per_repeat,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
