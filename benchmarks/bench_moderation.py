#!/usr/bin/env python
"""Content safety (issue #16): what the checks cost and how well they judge.

1. **Cost.** The same chat requests on one in-process server twice — with the default word list on input and
   output, and with no checks — alternating, on a scripted model that streams ``--tokens`` tokens as fast as the
   event loop goes (so the checks' share is as large as it can be). Reported: added latency per request (p50 of
   the non-streamed call) and per streamed token (p50 of the streamed call's time / tokens), and the ratio. Also
   the checker alone: one input check per text of the labelled set, and the stream guard per token.
2. **Quality.** Precision and recall on ``benchmarks/data/moderation.jsonl`` (how it was made: its generator's
   docstring) of each checker: the default word list, and the LLM judge on the embedded default model — every
   text through ``POST /moderations`` of a real in-process server.

    .venv/bin/python benchmarks/bench_moderation.py --requests 200 --tokens 400
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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from openglm.api.app import create_app
from openglm.config import Settings
from openglm.safety.checkers import BuildContext
from openglm.safety.config import DEFAULT_LIST
from openglm.safety.guard import TextGuard
from openglm.safety.words import words

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "moderation.jsonl"
DEFAULT_CATALOG = HERE.parent / "openglm" / "models.toml"


def scripted_catalog(tokens: int, checks: bool) -> str:
    reply = ("Kites fly when wind lifts the sail; " * tokens)[: tokens * 4]  # 4 characters a token
    lists = "" if checks else "input = []\noutput = []\n"
    return f"""
[safety]
{lists}
[[models]]
id = "echo"
engine = "scripted"
source = "-"
template = "chatml"
[[models.options.script]]
when = ""
reply = {json.dumps(reply)}
"""


def judge_catalog() -> str:
    models = DEFAULT_CATALOG.read_text(encoding="utf-8").split("\n[safety]\n")[0]  # its own [safety] replaced
    return (
        models
        + """
[safety]
moderations = ["words"]
[[safety.checkers]]
name = "words"
kind = "words"
options = { lists = ["package:openglm/safety/lists/default.toml"] }
[[safety.checkers]]
name = "judge"
kind = "llm_judge"
options = { model = "smollm2-135m-instruct" }
"""
    )


@asynccontextmanager
async def server(home: Path, catalog: str) -> AsyncIterator[httpx.AsyncClient]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "models.toml").write_text(catalog, encoding="utf-8")
    settings = Settings(
        models_file=home / "models.toml",
        data_dir=home / "data",
        secret_key_file=home / "secret.key",
        sandbox_warm=0,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000", timeout=600) as client:
            yield client


async def one_call(client: httpx.AsyncClient, stream: bool) -> tuple[float, int]:
    body = {"model": "echo", "messages": [{"role": "user", "content": "Tell me about kites, please."}]}
    started = time.perf_counter()
    if not stream:
        answer = (await client.post("/v1/chat/completions", json=body)).json()
        assert answer["choices"][0]["finish_reason"] == "stop", answer
        return time.perf_counter() - started, answer["usage"]["completion_tokens"]
    tokens = 0
    async with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
    return time.perf_counter() - started, tokens


async def cost(requests: int, tokens: int, home: Path) -> dict[str, Any]:
    timings: dict[str, dict[str, list[float]]] = {k: {"request": [], "token": []} for k in ("checked", "unchecked")}
    async with (
        server(home / "checked", scripted_catalog(tokens, True)) as checked,
        server(home / "unchecked", scripted_catalog(tokens, False)) as unchecked,
    ):
        clients = {"checked": checked, "unchecked": unchecked}
        for _ in range(5):  # warm both
            for client in clients.values():
                await one_call(client, False)
                await one_call(client, True)
        for _ in range(requests):
            for name, client in clients.items():  # alternating: the machine's noise falls on both alike
                seconds, _ = await one_call(client, False)
                timings[name]["request"].append(seconds)
                seconds, n = await one_call(client, True)
                timings[name]["token"].append(seconds / max(1, n))
    out: dict[str, Any] = {}
    for kind in ("request", "token"):
        a = statistics.median(timings["checked"][kind])
        b = statistics.median(timings["unchecked"][kind])
        out[kind] = {
            "checked_p50_ms": a * 1000,
            "unchecked_p50_ms": b * 1000,
            "added_p50_ms": (a - b) * 1000,
            "ratio": a / b,
        }
    return out


def checker_alone(texts: list[str], tokens: int) -> dict[str, float]:
    checker = words("words", {"lists": [DEFAULT_LIST]}, BuildContext())
    per_text = []
    for _ in range(20):
        for text in texts:
            started = time.perf_counter()
            checker.search(text)
            per_text.append(time.perf_counter() - started)
    answer = ("Kites fly when wind lifts the sail; " * tokens)[: tokens * 4]
    per_token = []
    held = []  # characters written but not yet sent, after each token: what the guard delays

    async def stream() -> None:
        for _ in range(20):
            guard = TextGuard([checker])
            for i in range(0, len(answer), 4):
                started = time.perf_counter()
                await guard.feed(answer[i : i + 4], final=False)
                per_token.append(time.perf_counter() - started)
                held.append(len(guard.pending))

    asyncio.run(stream())
    return {
        "input_check_p50_us": statistics.median(per_text) * 1e6,
        "input_check_p99_us": sorted(per_text)[int(len(per_text) * 0.99)] * 1e6,
        "guard_per_token_p50_us": statistics.median(per_token) * 1e6,
        "guard_per_token_p99_us": sorted(per_token)[int(len(per_token) * 0.99)] * 1e6,
        "held_chars_p50": statistics.median(held),
        "held_chars_max": max(held),
    }


async def quality(rows: list[dict[str, Any]], home: Path, judge: bool) -> dict[str, Any]:
    checkers = {"words": "words", **({"llm_judge (SmolLM2-135M)": "smollm2-135m-instruct"} if judge else {})}
    report: dict[str, Any] = {}
    async with server(home / "quality", judge_catalog()) as client:
        for label, model in checkers.items():
            flagged = []
            started = time.perf_counter()
            for row in rows:
                answer = (await client.post("/v1/moderations", json={"model": model, "input": row["text"]})).json()
                flagged.append(answer["results"][0]["flagged"])
            report[label] = scores(rows, flagged) | {"seconds_per_text": (time.perf_counter() - started) / len(rows)}
    return report


def scores(rows: list[dict[str, Any]], flagged: list[bool]) -> dict[str, Any]:
    harmful = [r["label"] == "harmful" for r in rows]
    tp = sum(f and h for f, h in zip(flagged, harmful, strict=True))
    fp = sum(f and not h for f, h in zip(flagged, harmful, strict=True))
    fn = sum(h and not f for f, h in zip(flagged, harmful, strict=True))
    by_kind: dict[str, list[int]] = {}
    for row, flag in zip(rows, flagged, strict=True):
        hits = by_kind.setdefault(f"{row['label']}/{row['kind']}/{row['language']}", [0, 0])
        hits[0] += int(flag)
        hits[1] += 1
    return {
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "flagged_by_kind": {k: f"{v[0]}/{v[1]}" for k, v in sorted(by_kind.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=400)
    parser.add_argument("--no-judge", action="store_true", help="skip the LLM judge's quality run")
    args = parser.parse_args()
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        result = {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "load": os.getloadavg(),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
            "labelled_set": {"lines": len(rows), "harmful": sum(r["label"] == "harmful" for r in rows)},
            "checker_alone": checker_alone([r["text"] for r in rows], args.tokens),
            "cost": asyncio.run(cost(args.requests, args.tokens, home)),
            "quality": asyncio.run(quality(rows, home, not args.no_judge)),
        }
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
