"""The function-calling and retrieval eval suites against the real server (default catalog: SmolLM2 through
llama.cpp, MiniLM embeddings), a few families each, through the runner and the report as ``openglm eval`` runs
them. What the tiny model scores is not asserted; that every task ran and the numbers are consistent is."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from openglm.evals.base import Task
from openglm.evals.client import EvalClient
from openglm.evals.environment import EvalEnvironment
from openglm.evals.report import write_report
from openglm.evals.runner import run_suites
from openglm.evals.suites.function_calling import CATEGORIES, FunctionCallingSuite
from openglm.evals.suites.retrieval import RetrievalSuite

from .conftest import MODEL
from .server import RunningServer

FAMILIES = {"simple-imperative", "multiple-question", "parallel-situational", "irrelevance-indirect"}
DOCUMENTS = 40  # a fixed sample of the corpus: ingested in a few seconds on two cores


class FewFamilies(FunctionCallingSuite):
    def tasks(self, seed: int = 0) -> list[Task]:
        return [task for task in super().tasks(seed) if task.family in FAMILIES]


async def test_both_suites_run_through_the_api_and_report(server: RunningServer, tmp_path: Path) -> None:
    calling, retrieval = FewFamilies(), RetrievalSuite(questions=3, documents=DOCUMENTS)
    env = EvalEnvironment(work_dir=tmp_path / "env")
    client = EvalClient(server.url, "sk-test")
    try:
        run = await run_suites([calling, retrieval], [MODEL], client, env, per_family=1, concurrency=4)
        again = await retrieval.knowledge_base(client, EvalEnvironment(work_dir=tmp_path / "env2"))
    finally:
        await client.close()

    calls = run.results["function-calling"][MODEL]
    assert {o.family for o in calls} == FAMILIES and len(calls) == len(FAMILIES)
    assert [o for o in calls if o.error] == []
    assert all(o.detail and o.transcript[0]["content"] for o in calls)
    assert all((o.score == 1.0) == o.passed and (o.passed or o.detail != "") for o in calls)
    summary = run.summaries["function-calling"][MODEL]
    assert set(summary["metrics"]) == set(CATEGORIES) and {"train", "heldout"} <= set(summary)

    answers = run.results["retrieval"][MODEL]
    assert answers and [o for o in answers if o.error] == []
    assert all(o.split == "heldout" and o.transcript[-1]["retrieval"] for o in answers)
    metrics = run.summaries["retrieval"][MODEL]["metrics"]
    assert metrics["recall@1"] <= metrics["recall@3"] <= metrics["recall@5"] <= 1.0
    assert metrics["recall@1"] <= metrics["mrr@10"] <= 1.0
    assert metrics["recall@5"] >= 0.6  # MiniLM + BM25 find most golds among 40 documents
    assert 0.0 <= metrics["citation_accuracy"] <= metrics["cites_gold"] <= metrics["cites_any"] <= 1.0

    # The base was built once, named after its documents, and a later run on the same server reuses it.
    bases = httpx.get(f"{server.url}/v1/knowledge", params={"size": 100}).json()["list"]
    [base] = [b for b in bases if b["name"].startswith("openglm-eval-retrieval-")]
    assert again == base["id"]
    listing = httpx.get(f"{server.url}/v1/knowledge/{base['id']}/documents", params={"limit": 100}).json()
    assert listing["total"] == DOCUMENTS and all(d["status"] == "ready" for d in listing["list"])

    report = write_report(run, [calling, retrieval], tmp_path / "report")
    text = report.read_text()
    assert "## function-calling" in text and "## retrieval" in text and "citation_accuracy" in text
    saved = json.loads((tmp_path / "report" / "results.json").read_text())
    assert set(saved["summaries"]) == {"function-calling", "retrieval"}
