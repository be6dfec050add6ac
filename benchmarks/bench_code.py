#!/usr/bin/env python
"""Code interpreter round trips: sandboxed kernels against a plain Jupyter kernel.

- warm: ``print(1)`` on a conversation's kernel that has already run something (the common case);
- handoff: a new conversation's first ``print(1)``, taking a pre-started kernel from the pool;
- cold sandbox: booting a sandboxed kernel (namespaces, limits, IPython, inline matplotlib) and running
  ``print(1)``, as when the pool is empty;
- peer: a fresh, unsandboxed Jupyter kernel (``jupyter_client.manager.start_new_async_kernel``, the python3
  kernelspec) started and asked for ``print(1)`` — what a tool without a pool pays per conversation.

    .venv/bin/python benchmarks/bench_code.py --warm 200 --cold 10
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openglm.agent.sandbox.policy import SandboxPolicy  # noqa: E402
from openglm.agent.sandbox.pool import KernelPool  # noqa: E402


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
    }


async def timed(work: Any) -> float:
    started = time.perf_counter()
    await work
    return time.perf_counter() - started


async def sandboxed(root: Path, warm_runs: int, cold_runs: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    pool = KernelPool(SandboxPolicy(), root / "warm", warm=1)
    await pool.start()
    try:
        async with pool.session("bench") as kernel:
            await kernel.execute("print(0)")
            results["warm"] = summary([await timed(kernel.execute("print(1)")) for _ in range(warm_runs)])
        handoffs = []
        for i in range(cold_runs):
            while not pool._ready:  # a pre-started kernel is waiting, as in steady state
                await asyncio.sleep(0.05)

            async def first_run(conversation: str) -> None:
                async with pool.session(conversation) as kernel:
                    await kernel.execute("print(1)")

            handoffs.append(await timed(first_run(f"c{i}")))
            await pool.release(f"c{i}")
        results["handoff"] = summary(handoffs)
    finally:
        await pool.close()
    empty = KernelPool(SandboxPolicy(), root / "cold", warm=0)
    await empty.start()
    try:
        colds = []
        for i in range(cold_runs):

            async def boot_and_run(conversation: str) -> None:
                async with empty.session(conversation) as kernel:
                    await kernel.execute("print(1)")

            colds.append(await timed(boot_and_run(f"c{i}")))
            await empty.release(f"c{i}")
        results["cold sandbox"] = summary(colds)
    finally:
        await empty.close()
    return results


async def peer(cold_runs: int, warm_runs: int) -> dict[str, Any]:
    from jupyter_client.manager import start_new_async_kernel

    colds, warms = [], []
    for i in range(cold_runs):
        started = time.perf_counter()
        manager, client = await start_new_async_kernel(kernel_name="python3")
        await client.execute_interactive("print(1)", timeout=60)
        colds.append(time.perf_counter() - started)
        if i == 0:
            for _ in range(warm_runs):
                warms.append(await timed(client.execute_interactive("print(1)", timeout=60)))
        client.stop_channels()
        await manager.shutdown_kernel(now=True)
    return {"peer cold": summary(colds), "peer warm": summary(warms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--cold", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, Python {platform.python_version()}",
        "command": " ".join(sys.argv),
    }
    with tempfile.TemporaryDirectory() as tmp:
        results.update(asyncio.run(sandboxed(Path(tmp), args.warm, args.cold)))
    results.update(asyncio.run(peer(args.cold, args.warm)))
    results["ratio peer cold / handoff (p50)"] = results["peer cold"]["p50_ms"] / results["handoff"]["p50_ms"]
    for name, value in results.items():
        print(f"{name}: {value}")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    (args.out / f"code-{stamp}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
