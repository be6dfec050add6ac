"""The needle and instructions suites through the real server and the real default model (SmolLM2-135M on
llama.cpp): a few tasks of each, the report written, and ``openglm eval list`` naming both suites."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from openglm.evals.client import EvalClient
from openglm.evals.environment import EvalEnvironment
from openglm.evals.report import write_report
from openglm.evals.runner import run_suites
from openglm.evals.suites.instructions import InstructionsSuite
from openglm.evals.suites.needle import ANSWER_TOKENS, NeedleSuite

from .conftest import MODEL
from .server import RunningServer

PNG = b"\x89PNG\r\n\x1a\n"
OVER_CONTEXT = 12_000  # tokens: past the default model's 8192


async def test_needle_and_instructions_run_through_the_server_and_report(server: RunningServer, tmp_path: Path) -> None:
    needle = NeedleSuite(lengths=(512, 1024, OVER_CONTEXT), trials=1)
    # Short answers keep the test quick on a shared CPU (the suite's own limit is 300 tokens).
    instructions = InstructionsSuite(kinds=("max_words", "lowercase", "no_commas"), max_tokens=96)
    client = EvalClient(server.url, "sk-test")
    try:
        run = await run_suites(
            [needle, instructions], [MODEL], client, EvalEnvironment(work_dir=tmp_path), per_family=1, concurrency=8
        )
    finally:
        await client.close()
    report = write_report(run, [needle, instructions], tmp_path / "report")

    needles = run.results["needle"][MODEL]
    assert sorted(o.family for o in needles) == ["len-1024", "len-12000", "len-512"]
    for outcome in needles:
        assert 0.0 <= outcome.score <= 1.0
        assert outcome.metrics["depth"] in (0.0, 0.25, 0.5, 0.75, 1.0)
        length = int(outcome.metrics["context_tokens"])
        if length == OVER_CONTEXT:  # refused by the server, kept as a failed task in its cell
            assert outcome.error is not None and "too long" in outcome.error, outcome
            assert not outcome.passed
        else:
            assert outcome.error is None, outcome
            # The character budget holds on this tokenizer: the prompt fills the length, leaving the answer room.
            assert 0.85 * length <= outcome.metrics["prompt_tokens"] <= length - ANSWER_TOKENS
            assert outcome.transcript[-1]["role"] == "assistant"
            assert outcome.passed == (outcome.score == 1.0)

    chats = run.results["instructions"][MODEL]
    assert sorted(o.family for o in chats) == ["lowercase", "max_words", "no_commas"]
    for outcome in chats:
        assert outcome.error is None, outcome
        assert 0.0 <= outcome.score <= 1.0
        assert outcome.transcript[-1]["content"].strip(), outcome  # the model answered
        assert outcome.score == outcome.metrics["followed"] / outcome.metrics["instructions"]
        assert outcome.passed == (outcome.score == 1.0)

    assert report == tmp_path / "report" / "report.md"
    text = report.read_text()
    assert "## needle" in text and "## instructions" in text and "needle-heatmap.png" in text
    saved = json.loads((tmp_path / "report" / "results.json").read_text())
    assert set(saved["summaries"]) == {"needle", "instructions"}
    assert saved["summaries"]["needle"][MODEL]["errors"] == 1
    assert 0.0 <= saved["summaries"]["instructions"][MODEL]["score"] <= 1.0
    for plot in ("needle-heatmap", "needle-families", "instructions-families"):
        assert (tmp_path / "report" / "plots" / f"{plot}.png").read_bytes().startswith(PNG)


def test_eval_list_names_both_suites() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "openglm", "eval", "list"], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stdout.splitlines()
    for suite, tasks, families in (("needle", 50, 5), ("instructions", 60, 12)):
        at = next(n for n, line in enumerate(lines) if line.startswith(f"{suite}: "))
        assert lines[at + 1].strip().startswith(f"{tasks} tasks in {families} families:"), done.stdout


def _command(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_text()


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_an_eval_run_stopped_with_sigterm_stops_the_server_it_started(tmp_path: Path) -> None:
    """A job runner or ``kill`` stops ``openglm eval run`` with SIGTERM: the server it started goes with it."""
    command = [sys.executable, "-m", "openglm", "eval", "run", "--suite", "needle", "--model", "default"]
    run = subprocess.Popen(
        [*command, "--per-family", "1", "--out", str(tmp_path / "report")], stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        servers: list[int] = []
        while not servers and time.monotonic() < deadline:  # the server it starts: `openglm serve --port N`
            servers = [pid for pid in _children(run.pid) if "serve" in _command(pid)]
            time.sleep(0.2)
        assert servers, "the eval run started no server"
        port = _command(servers[0]).split("--port\0", 1)[1].split("\0", 1)[0]
        while time.monotonic() < deadline:  # up and answering: the run is under way
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == 128 + signal.SIGTERM
        for pid in servers:
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    finally:
        run.kill()
        run.wait()
