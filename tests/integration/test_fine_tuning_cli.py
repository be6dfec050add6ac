"""``openglm finetune`` against the real server (auth on, a CLI-made key), as a user runs it: a local JSONL
uploaded and trained with ``--follow`` to success (plain lines through a pipe; a progress bar redrawn in place on
a terminal, through a pty), ``list``/``show``/``events``; an invalid file's problems printed line by line with exit
status 2 and nothing left behind; a running job cancelled, ``show --follow`` exiting 3.

The trainer is the test double ``tests/fixtures/step_trainer.py`` (as in test_fine_tuning.py), so a job takes a
second; the commands run in this process through ``openglm.cli.main`` except the terminal's, a real subprocess."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from openglm.cli import main

from .conftest import write_catalog
from .fine_tuning_catalog import BASE, CATALOG
from .server import RunningServer
from .test_fine_tuning import LINES, TOKENS_PER_EXAMPLE, jsonl


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("fine-tuning-cli")
    running = RunningServer(
        models_file=write_catalog(tmp / "models.toml", CATALOG),
        log=tmp / "server.log",
        env={
            "OPENGLM_AUTH": "on",
            "OPENGLM_SANDBOX_WARM": "0",
            "OPENGLM_PLUGINS": "tests.fixtures.step_trainer",
            "OPENGLM_FINE_TUNING_TRAINER": "test-steps",
            "OPENGLM_TEST_STEP_SECONDS": "0.05",
            "OPENGLM_JOB_POLL_SECONDS": "0.2",
            "OPENGLM_JOB_HEARTBEAT_SECONDS": "0.5",
        },
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def key(server: RunningServer) -> str:
    server.cli("accounts", "create", "cli-ft", "--grant", "100")
    return server.cli("keys", "create", "--account", "cli-ft").strip()


class Cli:
    """``openglm finetune …`` with the server's URL and key as flags; (exit status, stdout, stderr)."""

    def __init__(self, server: RunningServer, key: str, capsys: pytest.CaptureFixture[str]):
        self.server, self.key, self.capsys = server, key, capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        status = main(["finetune", *args, "--url", self.server.url, "--api-key", self.key])
        out, err = self.capsys.readouterr()
        return status, out, err

    def get(self, path: str, **params: Any) -> Any:
        answer = httpx.get(f"{self.server.url}{path}", params=params, headers={"Authorization": f"Bearer {self.key}"})
        answer.raise_for_status()
        return answer.json()


@pytest.fixture
def cli(server: RunningServer, key: str, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(server, key, capsys)


def test_create_follow_trains_to_success_then_list_show_and_events(cli: Cli, tmp_path: Path) -> None:
    training, validation = tmp_path / "train.jsonl", tmp_path / "valid.jsonl"
    training.write_bytes(jsonl(LINES))
    validation.write_bytes(jsonl(LINES[:1]))
    status, out, err = cli(
        "create", str(training), "--model", BASE, "--validation-file", str(validation), "--epochs", "2",
        "--batch-size", "1", "--suffix", "cli", "--follow", "--interval", "0.1",
    )  # fmt: skip
    assert status == 0, err
    lines = out.splitlines()
    job_id = lines[0]
    assert re.fullmatch(r"ftjob-\w+", job_id) and f"created {job_id} (queued): supervised on {BASE}" in err
    steps = [line for line in lines if line.startswith("step ")]
    assert len(steps) == 4 and steps[0].startswith("step 1/4  epoch 0.50  loss 2.0000  eval loss 2.5000  ")
    assert "tok/s" in steps[0] and "ETA 00:00:00" in steps[-1]
    assert "checkpoint at step 2" in lines and any(line.startswith("training ") for line in lines)
    model = re.fullmatch(rf"succeeded: (ft:{BASE}:cli:\w+) \({4 * TOKENS_PER_EXAMPLE} trained tokens\)", lines[-1])
    assert model is not None, lines[-1]

    job = cli.get(f"/v1/fine_tuning/jobs/{job_id}")  # what the CLI sent, as the server has it
    assert (job["status"], job["fine_tuned_model"], job["hyperparameters"]["n_epochs"]) == ("succeeded", model[1], 2)
    cards = {card["id"]: card.get("fine_tunable") for card in cli.get("/v1/models")["data"]}
    # The fine-tuned model cannot be trained further here: the test trainer cannot start from an adapter.
    assert (cards[BASE], cards["default"], cards[model[1]]) == (True, True, False)
    assert cli.get(f"/v1/models/{BASE}")["fine_tunable"] is True
    uploaded = cli.get(f"/v1/files/{job['training_file']}")
    assert (uploaded["filename"], uploaded["purpose"]) == ("train.jsonl", "fine-tune")

    status, out, _ = cli("list")
    row = next(line for line in out.splitlines() if line.startswith(job_id))
    assert status == 0 and out.startswith("id ") and "succeeded" in row and model[1] in row
    status, out, _ = cli("show", job_id)
    shown = dict(re.split(r":\s+", line, maxsplit=1) for line in out.splitlines())
    assert status == 0 and shown["status"] == "succeeded" and shown["fine_tuned_model"] == model[1]
    assert shown["validation_file"] == job["validation_file"] and shown["trained_tokens"] == "400"
    status, out, _ = cli("show", job_id, "--json")
    assert json.loads(out)["id"] == job_id
    status, out, _ = cli("events", job_id)
    assert status == 0 and "step 4/4: training loss 0.5000, validation loss 0.6250" in out
    assert '"train_loss": 0.5' in out and f"the fine-tuned model {model[1]} is ready" in out


def test_an_invalid_file_prints_its_lines_exits_2_and_leaves_nothing(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(
        jsonl([LINES[0], {"messages": [{"role": "user", "content": "no answer"}]}, {"messages": "x"}, LINES[0]])
    )
    jobs_before = len(cli.get("/v1/fine_tuning/jobs", limit=100)["data"])
    files_before = len(cli.get("/v1/files", purpose="fine-tune", limit=100)["data"])
    status, out, err = cli("create", str(bad), "--model", BASE)
    assert status == 2 and out == ""
    assert err.splitlines() == [
        "error (1214): training_file is not a valid supervised training file:",
        "  line 2: messages: no assistant message (nothing to train on)",
        "  line 3: messages must be a list of messages",
    ], err
    assert len(cli.get("/v1/fine_tuning/jobs", limit=100)["data"]) == jobs_before
    assert len(cli.get("/v1/files", purpose="fine-tune", limit=100)["data"]) == files_before  # the upload removed

    good = tmp_path / "good.jsonl"
    good.write_bytes(jsonl(LINES))
    status, _, err = cli("create", str(good), "--model", "glm-9-ultra")
    assert status == 2 and err.startswith("error (1211): ") and BASE in err  # names the bases it could train
    status, _, err = cli("create", str(tmp_path / "missing.jsonl"), "--model", BASE)
    assert status == 2 and "missing.jsonl: no such file" in err
    status, _, err = cli("show", "ftjob-doesnotexist")
    assert status == 1 and err.startswith("error (") and "ftjob-doesnotexist" in err  # a 404: not "invalid"


def test_a_running_job_is_cancelled_and_show_follow_exits_3(cli: Cli, tmp_path: Path) -> None:
    training = tmp_path / "train.jsonl"
    training.write_bytes(jsonl(LINES))
    status, out, _ = cli("create", str(training), "--model", BASE, "--epochs", "50", "--batch-size", "1")
    job_id = out.strip()
    deadline = time.monotonic() + 30
    while cli.get(f"/v1/fine_tuning/jobs/{job_id}")["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    status, out, _ = cli("cancel", job_id)
    assert status == 0 and out == f"{job_id}  running: cancellation requested\n"
    status, out, _ = cli("show", job_id, "--follow", "--interval", "0.1")
    lines = out.splitlines()
    assert status == 3 and lines[-1] == "cancelled" and "cancellation requested" in lines
    assert cli.get(f"/v1/fine_tuning/jobs/{job_id}")["fine_tuned_model"] is None


def test_a_terminal_gets_a_progress_bar_redrawn_in_place(server: RunningServer, key: str, tmp_path: Path) -> None:
    """A real ``openglm`` process on a pty, the server and key from OPENGLM_URL / OPENGLM_API_KEY."""
    training = tmp_path / "train.jsonl"
    training.write_bytes(jsonl(LINES))
    env = {**server.env, "OPENGLM_URL": server.url, "OPENGLM_API_KEY": key, "COLUMNS": "100"}
    command = [sys.executable, "-m", "openglm", "finetune", "create", str(training), "--model", BASE]
    command += ["--epochs", "3", "--batch-size", "1", "--follow", "--interval", "0.05"]
    leader, follower = pty.openpty()
    process = subprocess.Popen(command, stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""
    text = screen.decode()
    frames = re.findall(r"\r(\[[#.]+\] [^\r\n]*)", text)
    assert frames and frames[-1].startswith("[" + "#" * 10) and "100% step 6/6" in frames[-1]
    assert all(len(frame.rstrip()) <= 99 for frame in frames)  # fitted to the terminal's 100 columns
    last_line = [line for line in text.splitlines() if line.strip()][-1]
    assert last_line.startswith("succeeded: ft:")
