"""``retrieval``: the knowledge platform end to end, through the API — does search find the right document, and
does a grounded answer cite it?

The labelled set is the standard library's docstrings (``evals/corpus.py``, also the retrieval benchmark's): each
question is a docstring's summary line and its gold document the rest of that docstring. Once per run the suite
puts the documents in a knowledge base (``POST /v1/knowledge``, ``POST /v1/files`` with ``purpose=retrieval``,
then waits for ingestion); per question it asks the retrieval test (``POST /v1/knowledge/{id}/retrieve``, the
code path of chat's ``retrieval`` tool) for recall@1/3/5 and the reciprocal rank, and the model for an answer
with the ``retrieval`` tool. The answer is accurately cited when it cites (``[n]``) excerpts and every one is of
the gold document: a question has one gold document, and an answer that cites every excerpt it was given (small
models copy them, numbers and all) has not found it. ``cites_gold``, the lenient measure, only asks that one of
its citations is.

Retrieval does not depend on the model; the grounded answer does, so the task's score is the citation. Families
are the questions' topics; every family is held out (no retrieval question is ever training data). The base is
named after its documents and kept: suites have no teardown, and a later run on the same server reuses it (the
same bytes in the same base are one document, so uploading again costs no ingestion).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import random
import re
import time
from collections.abc import Sequence
from typing import Any

from ..base import Outcome, Suite, Task, default_summary, eval_suites, mean
from ..client import EvalApiError, EvalClient
from ..corpus import Document, Question, corpus
from ..environment import EvalEnvironment

QUESTIONS = 100
DEPTH = 10  # chunks asked of the retrieval test: recall@1/3/5 and MRR@10 are read from them
ANSWER_TOP_K = 5  # excerpts the grounded answer is given (the tool's default)
MAX_TOKENS = 160
UPLOADS_AT_ONCE = 4
PAGE = 100  # documents per listing request while waiting for ingestion
INGEST_TIMEOUT_S = 1800.0
POLL_S = 0.5
CITATION = re.compile(r"[\[【]\s*(\d+(?:\s*[,，、]\s*\d+)*)\s*[\]】]")


@functools.lru_cache(maxsize=8)
def labelled_set(seed: int, documents: int | None) -> tuple[tuple[Document, ...], tuple[Question, ...]]:
    """Every document of the corpus, or a fixed sample of ``documents`` of them (the same whatever the seed, so
    one knowledge base serves every seed), and the questions whose gold is among them, in an order drawn from
    ``seed``."""
    everything, questions = corpus(questions=10**9, seed=seed)
    if documents is not None and documents < len(everything):
        kept = set(random.Random(0).sample(range(len(everything)), documents))
        everything = [document for i, document in enumerate(everything) if i in kept]
    names = {document.name for document in everything}
    return tuple(everything), tuple(question for question in questions if question.gold in names)


def file_name(document_name: str) -> str:
    return f"{document_name}.md"


def cited_indexes(answer: str) -> list[int]:
    """The excerpt numbers an answer cites: ``[2]``, ``[1, 3]``, ``【2】``, in order, once each."""
    found: list[int] = []
    for group in CITATION.findall(answer):
        for number in re.split(r"\s*[,，、]\s*", group):
            if int(number) not in found:
                found.append(int(number))
    return found


@eval_suites.register("retrieval")
class RetrievalSuite(Suite):
    name = "retrieval"
    description = (
        "Knowledge bases through the API on the labelled stdlib-docstring corpus: recall@k and MRR of the "
        "retrieval test, and whether the answer with the retrieval tool cites the gold document (and only it)."
    )
    needs = ("chat", "knowledge")

    def __init__(self, questions: int = QUESTIONS, documents: int | None = None):
        """``documents``: a fixed sample of the corpus instead of all of it (a quicker run; fewer distractors)."""
        self.questions = questions
        self.documents = documents

    def tasks(self, seed: int = 0) -> list[Task]:
        _, questions = labelled_set(seed, self.documents)
        return [
            Task(f"retrieval-{i:03d}", question.topic, "heldout", {"question": question.text, "gold": question.gold})
            for i, question in enumerate(questions[: self.questions])
        ]

    # ------------------------------------------------------------------------------------------ the base

    def _base_name(self) -> str:
        documents, _ = labelled_set(0, self.documents)
        digest = hashlib.sha256()
        for document in documents:
            digest.update(document.name.encode() + b"\0" + document.text.encode() + b"\0")
        return f"openglm-eval-retrieval-{digest.hexdigest()[:12]}"

    async def knowledge_base(self, client: EvalClient, env: EvalEnvironment) -> str:
        """The base holding the corpus on this run's server: built by the first task, awaited by the others."""
        key = f"retrieval:{client.base_url}:{self._base_name()}"
        lock = env.extras.setdefault(f"{key}:lock", asyncio.Lock())
        async with lock:
            if key not in env.extras:
                try:
                    env.extras[key] = await self._build(client)
                except EvalApiError as exc:
                    env.extras[key] = exc  # one failure, reported by every task, not retried by each
        built = env.extras[key]
        if isinstance(built, EvalApiError):
            raise EvalApiError(f"the corpus' knowledge base: {built}")
        return str(built)

    async def _build(self, client: EvalClient) -> str:
        name = self._base_name()
        knowledge_id = await self._find(client, name)
        if knowledge_id is None:
            created = await client.request(
                "POST", "/v1/knowledge", json={"name": name, "description": "openglm eval: stdlib docstrings"}
            )
            knowledge_id = str(created["id"])
        documents, _ = labelled_set(0, self.documents)
        gate = asyncio.Semaphore(UPLOADS_AT_ONCE)

        async def upload(document: Document) -> str:
            async with gate:
                body = await client.request(
                    "POST",
                    "/v1/files",
                    data={"purpose": "retrieval", "knowledge_id": knowledge_id},
                    files={"file": (file_name(document.name), document.text.encode(), "text/markdown")},
                )
            if body.get("failedInfos"):
                raise EvalApiError(f"upload of {document.name} failed: {body['failedInfos']}")
            return str(body["successInfos"][0]["documentId"])

        ids = set(await asyncio.gather(*(upload(document) for document in documents)))
        await self._wait_ingested(client, knowledge_id, ids)
        return knowledge_id

    async def _find(self, client: EvalClient, name: str) -> str | None:
        page = 1
        while True:
            listing = await client.request("GET", "/v1/knowledge", params={"page": page, "size": PAGE})
            for base in listing["list"]:
                if base["name"] == name:
                    return str(base["id"])
            if page * PAGE >= listing["total"] or not listing["list"]:
                return None
            page += 1

    async def _wait_ingested(self, client: EvalClient, knowledge_id: str, ids: set[str]) -> None:
        deadline = time.monotonic() + INGEST_TIMEOUT_S
        while True:
            status: dict[str, dict[str, Any]] = {}
            page = 1
            while True:
                listing = await client.request(
                    "GET", f"/v1/knowledge/{knowledge_id}/documents", params={"page": page, "limit": PAGE}
                )
                status.update({str(d["id"]): d for d in listing["list"] if str(d["id"]) in ids})
                if page * PAGE >= listing["total"] or not listing["list"]:
                    break
                page += 1
            failed = [f"{d['name']}: {d.get('failInfo')}" for d in status.values() if d["status"] == "failed"]
            if failed:
                raise EvalApiError(f"{len(failed)} document(s) failed to ingest, e.g. {failed[0]}")
            if len(status) == len(ids) and all(d["status"] == "ready" for d in status.values()):
                return
            if time.monotonic() > deadline:
                raise EvalApiError(f"ingestion not done in {INGEST_TIMEOUT_S:.0f} s")
            await asyncio.sleep(POLL_S)

    # ------------------------------------------------------------------------------------------ one question

    async def run(self, task: Task, model: str, client: EvalClient, env: EvalEnvironment) -> Outcome:
        knowledge_id = await self.knowledge_base(client, env)
        question, gold = task.data["question"], file_name(task.data["gold"])
        found = await client.request(
            "POST", f"/v1/knowledge/{knowledge_id}/retrieve", json={"query": question, "top_k": DEPTH}
        )
        ranked = [chunk["document_name"] for chunk in found["chunks"]]
        rank = ranked.index(gold) + 1 if gold in ranked else None

        messages = [{"role": "user", "content": question}]
        tool = {"type": "retrieval", "retrieval": {"knowledge_id": knowledge_id, "top_k": ANSWER_TOP_K}}
        start = time.perf_counter()
        body = await client.request(
            "POST",
            "/v1/chat/completions",
            json={"model": model, "messages": messages, "tools": [tool], "temperature": 0, "max_tokens": MAX_TOKENS},
        )
        latency = time.perf_counter() - start
        answer = body["choices"][0]["message"].get("content") or ""
        given = {int(excerpt["index"]): str(excerpt["document_name"]) for excerpt in body.get("retrieval") or []}
        cited = [given[n] for n in cited_indexes(answer) if n in given]
        correct = bool(cited) and set(cited) == {gold}

        where = f"gold {gold} at rank {rank}" if rank else f"gold {gold} not in the first {DEPTH}"
        if not cited:
            detail = f"{where}; the answer cites no excerpt"
        else:
            detail = f"{where}; the answer cites {', '.join(dict.fromkeys(cited))}"
        metrics = {f"recall@{k}": float(rank is not None and rank <= k) for k in (1, 3, 5)}
        metrics |= {
            "reciprocal_rank": 1 / rank if rank else 0.0,
            "gold_given": float(gold in given.values()),
            "cited": float(bool(cited)),
            "cites_gold": float(gold in cited),
            "citation_correct": float(correct),
        }
        return Outcome(
            task.id,
            task.family,
            task.split,
            correct,
            1.0 if correct else 0.0,
            latency_s=latency,
            tools=["retrieval"],
            detail=detail,
            metrics=metrics,
            transcript=[*messages, {"role": "assistant", "content": answer, "retrieval": sorted(given.items())}],
        )

    def summarize(self, outcomes: Sequence[Outcome]) -> dict[str, Any]:
        """The default summary; ``metrics`` over every task (a failed request measured nothing: it counts 0)."""
        summary = default_summary(outcomes)

        def over_all(name: str) -> float:
            return mean([outcome.metrics.get(name, 0.0) for outcome in outcomes])

        summary["metrics"] = {
            "recall@1": over_all("recall@1"),
            "recall@3": over_all("recall@3"),
            "recall@5": over_all("recall@5"),
            f"mrr@{DEPTH}": over_all("reciprocal_rank"),
            "citation_accuracy": over_all("citation_correct"),
            "cites_gold": over_all("cites_gold"),
            "cites_any": over_all("cited"),
        }
        return summary
