#!/usr/bin/env python
"""Batches against interactive traffic, on one OpenGLM server with the embedded default model (issue #15):

1. **Priority.** Interactive streaming chat at concurrency 4 (TTFT p50, p99) with nothing else running, then the
   same load while a 500-line batch runs. Target: TTFT p50 with the batch ≤ 1.5× without it.
2. **Throughput.** A batch of ``--lines`` requests alone (lines answered per second, from the batch's start to its
   end as seen by polling every 0.2 s) against the same requests sent as plain concurrent calls at the batch's
   concurrency (``OPENGLM_BATCH_CONCURRENCY``). Target: ≥ 0.9×.

Every request bans the end tokens so it generates exactly ``--max-tokens`` tokens.

    .venv/bin/python benchmarks/bench_batches.py --lines 200 --priority-lines 500 --repeats 3
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

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_serving import (  # noqa: E402
    locate_gguf,
    percentile,
    request_body,
    run_requests,
    running_server,
)


def batch_file(lines: int, max_tokens: int) -> bytes:
    """The same requests the plain calls send (``request_body``: prompt, sampling, seed), unstreamed."""
    rows = []
    for i in range(lines):
        body = {k: v for k, v in request_body(i, max_tokens, 7).items() if k not in ("stream", "stream_options")}
        rows.append({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body})
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


async def start_batch(client: httpx.AsyncClient, lines: int, max_tokens: int) -> str:
    upload = await client.post(
        "/v1/files", files={"file": ("b.jsonl", batch_file(lines, max_tokens))}, data={"purpose": "batch"}
    )
    upload.raise_for_status()
    body = {"input_file_id": upload.json()["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    created = await client.post("/v1/batches", json=body)
    created.raise_for_status()
    return str(created.json()["id"])


async def batch_state(client: httpx.AsyncClient, batch_id: str) -> dict[str, Any]:
    return dict((await client.get(f"/v1/batches/{batch_id}")).json())


async def wait_running(client: httpx.AsyncClient, batch_id: str) -> float:
    while (await batch_state(client, batch_id))["request_counts"]["completed"] < 1:
        await asyncio.sleep(0.1)
    return time.perf_counter()


async def interactive(client: httpx.AsyncClient, requests: int, max_tokens: int, seed: int) -> dict[str, Any]:
    """``requests`` streamed chats, 4 at a time. Each prompt is new to the server (a unique tag leads the user's
    message), so no measurement is helped by the prefix cache a previous one (or a batch line) left."""
    bodies = [request_body(i, max_tokens, seed) for i in range(requests)]
    for i, body in enumerate(bodies):
        body["messages"][0]["content"] = f"(Request {seed}-{i}) " + body["messages"][0]["content"]
    results = await run_requests(client, bodies, 4)
    ttfts = [r.ttft_s * 1000 for r in results if r.ttft_s is not None and r.error is None]
    return {
        "ttft_p50_ms": percentile(ttfts, 50),
        "ttft_p99_ms": percentile(ttfts, 99),
        "errors": sum(1 for r in results if r.error),
    }


async def priority_round(client: httpx.AsyncClient, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    idle = await interactive(client, args.interactive, args.max_tokens, seed)
    batch_id = await start_batch(client, args.priority_lines, args.max_tokens)
    await wait_running(client, batch_id)
    busy = await interactive(client, args.interactive, args.max_tokens, seed + 1000)
    state = await batch_state(client, batch_id)
    await client.post(f"/v1/batches/{batch_id}/cancel")  # the rest is not needed: its lines would slow round 2
    while (await batch_state(client, batch_id))["status"] not in ("cancelled", "completed"):
        await asyncio.sleep(0.2)
    return {
        "idle": idle,
        "with_batch": busy,
        "batch_lines_done_during": state["request_counts"]["completed"],
        "ratio_p50": busy["ttft_p50_ms"] / idle["ttft_p50_ms"],
    }


async def throughput_round(client: httpx.AsyncClient, args: argparse.Namespace) -> dict[str, Any]:
    batch_id = await start_batch(client, args.lines, args.max_tokens)
    started = time.perf_counter()
    while (state := await batch_state(client, batch_id))["status"] not in ("completed", "failed", "cancelled"):
        await asyncio.sleep(0.2)
    batch_s = time.perf_counter() - started
    assert state["request_counts"]["completed"] == args.lines, state
    bodies = [request_body(i, args.max_tokens, 7) for i in range(args.lines)]
    started = time.perf_counter()
    results = await run_requests(client, bodies, args.concurrency)
    plain_s = time.perf_counter() - started
    assert not any(r.error for r in results)
    return {
        "batch_lines_per_s": args.lines / batch_s,
        "plain_lines_per_s": args.lines / plain_s,
        "ratio": plain_s / batch_s,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    os.environ["OPENGLM_BATCH_CONCURRENCY"] = str(args.concurrency)
    priority, throughput = [], []
    with tempfile.TemporaryDirectory(prefix="bench-batches-") as scratch:
        os.environ["OPENGLM_DATA_DIR"] = str(Path(scratch) / "data")
        with running_server("openglm", locate_gguf(), sys.executable, Path(scratch)) as server:
            timeout = httpx.Timeout(600)
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
            async with httpx.AsyncClient(base_url=server.base_url, timeout=timeout, limits=limits) as client:
                await interactive(client, 4, args.max_tokens, 1)  # warm-up
                for repeat in range(args.repeats):
                    priority.append(await priority_round(client, args, 100 + repeat))
                    print(f"priority round {repeat + 1}: {priority[-1]}", file=sys.stderr)
                    throughput.append(await throughput_round(client, args))
                    print(f"throughput round {repeat + 1}: {throughput[-1]}", file=sys.stderr)
    return {"priority": priority, "throughput": throughput}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200, help="lines of the throughput batch")
    parser.add_argument("--priority-lines", type=int, default=500, help="lines of the batch under interactive load")
    parser.add_argument("--interactive", type=int, default=32, help="interactive requests per measurement")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=8, help="OPENGLM_BATCH_CONCURRENCY, and the plain calls'")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / f"batches-{dt.date.today().isoformat()}.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    runs = asyncio.run(main_async(args))
    summary = {
        "ttft_p50_idle_ms": statistics.median(r["idle"]["ttft_p50_ms"] for r in runs["priority"]),
        "ttft_p50_with_batch_ms": statistics.median(r["with_batch"]["ttft_p50_ms"] for r in runs["priority"]),
        "ttft_ratio_median": statistics.median(r["ratio_p50"] for r in runs["priority"]),
        "throughput_ratio_median": statistics.median(r["ratio"] for r in runs["throughput"]),
    }
    payload = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "command": [sys.executable, *sys.argv],
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "summary": summary,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
