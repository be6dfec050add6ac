#!/usr/bin/env python
"""Platform-layer benchmark: what authentication and metering cost per call.

Part 1, in process: the platform path alone (authenticate → admit → settle: one key lookup, one balance read,
the limiter, one usage record and one ledger entry) driven by ``--concurrency`` coroutines, on a SQLite file and
on a fresh database of the local PostgreSQL, with raw keys and with Zhipu JWTs.

Part 2, end to end: the same server binary on the default model, small non-streaming chat calls
(``max_tokens`` 1), authentication off (every call still metered to the local account) against authentication
on with a key per client, on SQLite; reported as requests/s and latency, side by side, as a ratio.

    .venv/bin/python benchmarks/bench_platform.py --calls 2000 --requests 400 --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import jwt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openglm.accounts.auth import Authenticator  # noqa: E402
from openglm.accounts.limits import KeyLimits, MemoryLimiter  # noqa: E402
from openglm.accounts.metering import Meter  # noqa: E402
from openglm.accounts.money import to_nano  # noqa: E402
from openglm.accounts.sealing import SecretBox  # noqa: E402
from openglm.accounts.store import AccountStore  # noqa: E402
from openglm.catalog import ModelSpec, Prices  # noqa: E402
from openglm.serving.usage import UsageBound  # noqa: E402
from openglm.store.db import open_database  # noqa: E402
from tests.databases import database_url  # noqa: E402
from tests.integration.server import RunningServer  # noqa: E402

SPEC = ModelSpec(id="bench", source="-", prices=Prices(input="0.1", output="0.1"))  # type: ignore[arg-type]
BOUND = UsageBound(prompt_tokens=64, completion_tokens=16)  # reserved by each call, as a short chat call would


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(calls: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> dict[str, float]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(calls):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            started = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "calls_per_s": calls / elapsed,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def zhipu_jwt(key: str) -> str:
    key_id, secret = key.split(".")
    now = int(time.time() * 1000)
    payload = {"api_key": key_id, "exp": now + 210_000, "timestamp": now}
    return jwt.encode(payload, secret, algorithm="HS256", headers={"alg": "HS256", "sign_type": "SIGN"})


async def platform_path(url: str, calls: int, concurrency: int, use_jwt: bool) -> dict[str, float]:
    db = await open_database(url)
    try:
        store = AccountStore(db, SecretBox(secrets.token_bytes(32)))
        await store.create_account("bench", grant=to_nano(10_000))
        keys = [(await store.create_key("bench"))[1] for _ in range(10)]
        headers = [f"Bearer {zhipu_jwt(k) if use_jwt else k}" for k in keys]
        auth = Authenticator(store.key_for_auth, defaults=KeyLimits())
        meter = Meter(db, MemoryLimiter())

        async def one(i: int) -> None:
            principal = await auth.authenticate(headers[i % len(headers)])
            call = await meter.admit(principal, SPEC, "chat.completions", bound=BOUND)
            call.bind(f"bench-{i}-{secrets.token_hex(4)}", None)
            call.tally.prompt_tokens, call.tally.completion_tokens = 30, 1
            await call.settle("succeeded")

        return await drive(calls, concurrency, one)
    finally:
        await db.close()


async def end_to_end(server: RunningServer, keys: list[str], requests: int, concurrency: int) -> dict[str, float]:
    body = {"model": "default", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:

        async def one(i: int) -> None:
            response = await client.post(
                "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {keys[i % len(keys)]}"}
            )
            response.raise_for_status()

        await drive(concurrency * 2, concurrency, one)  # warm-up
        return await drive(requests, concurrency, one)


def start(tmp: Path, auth: str) -> tuple[RunningServer, list[str]]:
    server = RunningServer(log=tmp / f"server-{auth}.log", env={"OPENGLM_AUTH": auth, "OPENGLM_KEY_CONCURRENCY": "0"})
    if auth == "off":
        return server, ["unused"]
    server.cli("accounts", "create", "bench", "--grant", "10000")
    return server, [server.cli("keys", "create", "--account", "bench").strip() for _ in range(10)]


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="platform-path calls per run (part 1)")
    parser.add_argument("--requests", type=int, default=400, help="HTTP requests per run (part 2)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {platform.python_version()}",
        "command": " ".join(sys.argv),
        "platform_path": {},
        "end_to_end": {},
    }
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for kind in ("sqlite", "postgresql"):
            for use_jwt in (False, True):
                runs = []
                for r in range(args.repeats):
                    with database_url(kind, tmp / f"{kind}-{use_jwt}-{r}") as url:
                        runs.append(asyncio.run(platform_path(url, args.calls, args.concurrency, use_jwt)))
                name = f"{kind} {'jwt' if use_jwt else 'raw key'}"
                results["platform_path"][name] = median_of(runs)
                print(name, results["platform_path"][name], flush=True)
        for auth in ("off", "on"):
            server, keys = start(tmp, auth)
            try:
                runs = [
                    asyncio.run(end_to_end(server, keys, args.requests, args.concurrency)) for _ in range(args.repeats)
                ]
            finally:
                server.stop()
            results["end_to_end"][f"auth {auth}"] = median_of(runs)
            print(f"auth {auth}", results["end_to_end"][f"auth {auth}"], flush=True)
    off, on = results["end_to_end"]["auth off"], results["end_to_end"]["auth on"]
    results["end_to_end"]["ratio on/off requests_per_s"] = on["calls_per_s"] / off["calls_per_s"]
    print("ratio on/off requests/s", results["end_to_end"]["ratio on/off requests_per_s"])
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    (args.out / f"platform-{stamp}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
