#!/usr/bin/env python
"""What the adapter's decision costs a plain request: time to the first word and to the end of a short reply from
the agent on the base weights (``glm-4-alltools-base``: no adapter, no probe) and from the shipped agent
(``glm-4-alltools``: the adapter's probe reads the first token, stops, and the base writes the reply), on the
same plain prompts, one request at a time, the two agents alternating which goes first. A prompt's first request
finds nothing of it cached (the tool listing before it is); the second finds the base's round cached by the first
(a shipped agent's probe runs on the adapter, whose cache is its own): medians are given apart.

The prompts are the ``instructions`` suite's (seed 3: not a seed the suite's reported runs use), offered every
built-in tool as the evals offer them. The server is ``openglm serve`` on the operator's catalog plus the eval
environment (the browser's website, the stand-in image model), started once. Prompts either agent called a tool
for are left out (their time is the tool's, not the probe's).

    .venv/bin/python benchmarks/bench_agent_probe.py --requests 24 --max-tokens 32
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
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AGENTS = ("glm-4-alltools-base", "glm-4-alltools")


async def timed(http: Any, agent: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    """One streamed request: seconds to the first text, to the end, and whether a tool was called."""
    from openglm.evals.client import AGENT_TOOLS

    body = {
        "model": agent,
        "messages": [{"role": "user", "content": prompt}],
        "tools": [{"type": kind} for kind in AGENT_TOOLS],
        "stream": True,
        "temperature": 0,
        "max_tokens": max_tokens,
    }
    start = time.perf_counter()
    first: float | None = None
    tool, text = False, ""
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            delta = json.loads(line[6:])["choices"][0].get("delta") or {}
            tool = tool or bool(delta.get("tool_calls"))
            text += delta.get("content") or ""
            if first is None and (delta.get("content") or delta.get("tool_calls")):
                first = time.perf_counter() - start
    return {"first_s": first, "total_s": time.perf_counter() - start, "tool": tool, "text": text}


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from openglm.evals.environment import EvalEnvironment
    from openglm.evals.server import EvalServer
    from openglm.evals.suites.alltools import AllToolsSuite
    from openglm.evals.suites.instructions import InstructionsSuite

    # Each prompt once (the suite repeats some): a prompt's first request must find nothing of it cached.
    prompts = list(dict.fromkeys(task.data["prompt"] for task in InstructionsSuite().tasks(3)))[: args.requests]
    env = EvalEnvironment.start(AllToolsSuite().website(0))
    server = EvalServer(env)
    rows: list[dict[str, Any]] = []
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=600) as http:
            await timed(http, AGENTS[1], "Hello!", 4)  # warm both: the adapter and the tool listing's prefix
            await timed(http, AGENTS[0], "Hello!", 4)
            for number, prompt in enumerate(prompts):
                order = AGENTS if number % 2 == 0 else AGENTS[::-1]
                for position, agent in zip(("first", "second"), order, strict=True):
                    timing = await timed(http, agent, prompt, args.max_tokens)
                    rows.append({"agent": agent, "prompt": number, "position": position, **timing})
    finally:
        server.stop()
        env.stop()
    return {
        "benchmark": "agent_probe",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "load_after": os.getloadavg(),
        "command": " ".join(sys.argv),
        **summary(rows),
        "rows": rows,
    }


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the prompts neither agent called a tool for, apart for the agent that went first on a prompt
    (nothing of it cached: what a new request meets) and the one that went second (the base's round finds the
    prompt cached by the other agent's)."""
    with_tool = sorted({row["prompt"] for row in rows if row["tool"]})
    plain = [row for row in rows if row["prompt"] not in with_tool]
    table: dict[str, Any] = {}
    for agent in AGENTS:
        for position in ("first", "second"):
            mine = [row for row in plain if row["agent"] == agent and row["position"] == position]
            table[f"{agent}, {position}"] = {
                "requests": len(mine),
                "first_text_p50_s": median([r["first_s"] for r in mine if r["first_s"] is not None]),
                "total_p50_s": median([r["total_s"] for r in mine]),
            }
    base, shipped = table[f"{AGENTS[0]}, first"], table[f"{AGENTS[1]}, first"]
    ratio = None
    if base["first_text_p50_s"] and shipped["first_text_p50_s"]:
        ratio = round(shipped["first_text_p50_s"] / base["first_text_p50_s"], 2)
    return {
        "summary": table,
        "prompts_left_out_a_tool_was_called": with_tool,
        "first_text_ratio_shipped_to_base_first": ratio,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    result = asyncio.run(measure(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "agent_probe.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
