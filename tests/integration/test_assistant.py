"""The assistant API through the real server and the unmodified zhipuai SDK: stored conversations (the server
holds the history, a conversation keeps its GLM version), the list endpoints, the REST conversation endpoints,
usage attributed to GLMs and their creators (with a revenue share), and clear refusals that store nothing.

A scripted engine plays the model (a reply per prompt content), with prices, so that costs are not zero."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from zhipuai import ZhipuAI

from .conftest import MODEL, write_catalog
from .server import RunningServer
from .test_alltools import CODE, call

CATALOG = f"""
[[models]]
id = "script-asst"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[models.prices]
input = 1.0
output = 2.0
[[models.options.script]]
when = "short follow-up questions"
reply = {json.dumps(json.dumps({"suggest_list": ["Why 42?", "Show the code?", "Try 7 times 6?"]}))}
[[models.options.script]]
when = "LONG-STORY"
reply = "{"word " * 20000}"
[[models.options.script]]
when = "ATTACHED-MARKER-7"
reply = "I read your file."
[[models.options.script]]
when = "Limericks."
reply = "There once was a cat."
[[models.options.script]]
when = "Answer in rhyme."
reply = "Roses are red."
[[models.options.script]]
when = "sum=42"
reply = "The sum is 42."
[[models.options.script]]
when = ""
reply = {call("python", {"code": CODE})}

[[agents]]
id = "glm-4-alltools"
model = "script-asst"
"""
SHARE = 0.5


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("assistant")
    running = RunningServer(
        models_file=write_catalog(tmp / "models.toml", CATALOG),
        log=tmp / "server.log",
        env={"OPENGLM_AUTH": "on", "OPENGLM_SANDBOX_WARM": "0", "OPENGLM_CREATOR_SHARE": str(SHARE)},
    )
    yield running
    running.stop()


class Account:
    def __init__(self, server: RunningServer, name: str):
        server.cli("accounts", "create", name, "--grant", "100")
        self.key = server.cli("keys", "create", "--account", name).strip()
        self.server = server
        self.sdk = ZhipuAI(api_key=self.key, base_url=f"{server.url}/api/paas/v4", max_retries=0, timeout=120)
        self.id = self.get("/v1/account").json()["id"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.server.url}{path}", params=params, headers=self.headers, timeout=60)

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.server.url}{path}", json=body, headers=self.headers, timeout=120)

    def delete(self, path: str) -> httpx.Response:
        return httpx.delete(f"{self.server.url}{path}", headers=self.headers, timeout=60)

    def converse(self, assistant_id: str, text: str, **extra: Any) -> list[Any]:
        """One turn through the SDK, iterated to the end."""
        response = self.sdk.assistant.conversation(
            assistant_id=assistant_id,
            model="glm-4-assistant",
            messages=[{"role": "user", "content": [{"type": "text", "text": text}]}],  # type: ignore[list-item]
            stream=True,
            **extra,
        )
        return list(response)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def alice(scripted: RunningServer) -> Account:
    return Account(scripted, "alice-co")


@pytest.fixture(scope="module")
def bob(scripted: RunningServer) -> Account:
    return Account(scripted, "bob-co")


@pytest.fixture(scope="module")
def rhymer(alice: Account) -> dict[str, Any]:
    config = {"instructions": "Answer in rhyme.", "model": "script-asst", "starter_prompts": ["A cat?"]}
    created = alice.post(
        "/v1/glms", {"name": "Rhymer", "description": "rhymes", "visibility": "listed", "config": config}
    )
    assert created.status_code == 200, created.text
    agent: dict[str, Any] = created.json()
    return agent


def text_of(chunks: list[Any]) -> str:
    return "".join(getattr(c.choices[0].delta, "content", None) or "" for c in chunks)


def usage_rows(server: RunningServer, where: str, *args: Any) -> list[sqlite3.Row]:
    path = Path(server.env["OPENGLM_DATA_DIR"]) / "openglm.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return list(db.execute(f"SELECT * FROM usage_records WHERE {where}", args))


def count_conversations(account: Account) -> int:
    total: int = account.get("/v1/assistant/conversations").json()["total"]
    return total


# --- a GLM through the SDK ----------------------------------------------------------------------------------


def test_a_glm_conversation_keeps_its_history_and_its_version(
    alice: Account, bob: Account, rhymer: dict[str, Any]
) -> None:
    first = bob.converse(rhymer["id"], "Hi")
    assert text_of(first) == "Roses are red."
    last = first[-1]
    conversation_id = last.conversation_id
    assert {c.conversation_id for c in first} == {conversation_id} and {c.assistant_id for c in first} == {rhymer["id"]}
    assert len({c.id for c in first}) == 1 and first[0].created > 10**12  # milliseconds
    assert last.status == "completed" and last.choices[0].finish_reason == "stop"
    assert all(c.status == "in_progress" for c in first[:-1])
    assert last.usage.prompt_tokens > 0 and last.usage.completion_tokens > 0

    second = bob.converse(rhymer["id"], "Again", conversation_id=conversation_id)
    assert second[-1].conversation_id == conversation_id
    # The client sent one message; the server replayed the first turn, so the prompt grew by it.
    assert second[-1].usage.prompt_tokens > last.usage.prompt_tokens + 3

    # The creator edits the GLM: the running conversation keeps version 1, a new one gets version 2.
    edited = httpx.put(
        f"{alice.server.url}/v1/glms/{rhymer['id']}",
        json={"config": {**rhymer["config"], "instructions": "Limericks."}},
        headers=alice.headers,
    )
    assert edited.json()["version"] == 2
    assert text_of(bob.converse(rhymer["id"], "Once more", conversation_id=conversation_id)) == "Roses are red."
    fresh = bob.converse(rhymer["id"], "Hello")
    assert text_of(fresh) == "There once was a cat."

    stored = bob.get(f"/v1/assistant/conversations/{conversation_id}").json()
    assert stored["agent_version"] == 1 and stored["title"] == "Hi" and stored["assistant_id"] == rhymer["id"]
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"] * 3
    assert [m["content"] for m in stored["messages"][::2]] == ["Hi", "Again", "Once more"]
    assert stored["messages"][1] == {**stored["messages"][1], "content": "Roses are red.", "tool_calls": None}
    assert stored["usage"]["prompt_tokens"] > first[-1].usage.prompt_tokens + second[-1].usage.prompt_tokens
    assert stored["usage"]["total_tokens"] == stored["usage"]["prompt_tokens"] + stored["usage"]["completion_tokens"]
    newer = bob.get(f"/api/paas/v4/assistant/conversations/{fresh[-1].conversation_id}").json()
    assert newer["agent_version"] == 2


def test_glm_4_alltools_streams_tool_calls_the_assistant_way(bob: Account) -> None:
    chunks = bob.converse("glm-4-alltools", "What is 40 + 2?")
    tools = [c.choices[0].delta for c in chunks if getattr(c.choices[0].delta, "tool_calls", None)]
    assert [t.role for t in tools] == ["tool", "tool"]
    called, answered = (t.tool_calls[0] for t in tools)
    assert called.type == answered.type == "code_interpreter"
    assert called.code_interpreter.input == CODE and not called.code_interpreter.outputs  # the whole code, once
    assert [(o.type, o.logs) for o in answered.code_interpreter.outputs] == [("logs", "sum=42\n")]
    assert text_of(chunks) == "The sum is 42."
    assert chunks[-1].status == "completed" and chunks[-1].usage.total_tokens > 0

    conversation_id = chunks[-1].conversation_id
    again = bob.converse("glm-4-alltools", "And now?", conversation_id=conversation_id)
    assert text_of(again) == "The sum is 42."  # the stored tool result was replayed: no new call needed
    stored = bob.get(f"/v1/assistant/conversations/{conversation_id}").json()
    assert stored["agent_version"] is None
    (tool_call,) = stored["messages"][1]["tool_calls"]
    assert tool_call == {
        "type": "code_interpreter",
        "name": None,
        "input": CODE,
        "outputs": [{"type": "logs", "logs": "sum=42\n"}],
    }
    assert stored["messages"][3]["tool_calls"] is None


def test_attachments_reach_the_model_and_are_stored(bob: Account, rhymer: dict[str, Any]) -> None:
    upload = httpx.post(
        f"{bob.server.url}/v1/files",
        data={"purpose": "assistant"},
        files={"file": ("notes.txt", b"ATTACHED-MARKER-7: the launch is on Tuesday.\n")},
        headers=bob.headers,
    )
    assert upload.status_code == 200, upload.text
    file_id = upload.json()["id"]
    chunks = bob.converse(rhymer["id"], "What does my file say?", attachments=[{"file_id": file_id}])
    assert text_of(chunks) == "I read your file."
    stored = bob.get(f"/v1/assistant/conversations/{chunks[-1].conversation_id}").json()
    assert stored["messages"][0]["attachments"] == [{"file_id": file_id, "filename": "notes.txt"}]
    assert stored["messages"][0]["content"] == "What does my file say?"


def test_a_client_that_leaves_early_gets_what_it_was_sent_stored(scripted: RunningServer, bob: Account) -> None:
    body = {"assistant_id": "glm-4-alltools", "messages": [{"role": "user", "content": "LONG-STORY"}], "stream": True}
    received = []
    with httpx.stream("POST", f"{scripted.url}/v1/assistant", json=body, headers=bob.headers, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {"):
                received.append(json.loads(line[6:]))
            if len(received) == 20:
                break  # hang up
    conversation_id = received[0]["conversation_id"]
    deadline = time.monotonic() + 30
    while (stored := bob.get(f"/v1/assistant/conversations/{conversation_id}")).status_code == 404:
        assert time.monotonic() < deadline, "the turn of a stream left early was not stored"
        time.sleep(0.2)
    answer = stored.json()["messages"][1]["content"]
    assert answer.startswith("word word") and len(answer) < len("word " * 20000)
    assert len(answer) >= len("".join(c["choices"][0]["delta"].get("content") or "" for c in received))
    while not (records := usage_rows(scripted, "id = ?", received[0]["id"])):
        assert time.monotonic() < deadline, "the call was not settled"
        time.sleep(0.2)
    assert [r["status"] for r in records] == ["cancelled"]


# --- list endpoints -----------------------------------------------------------------------------------------


def test_query_support_lists_glms_and_catalog_agents(bob: Account, rhymer: dict[str, Any]) -> None:
    named = bob.sdk.assistant.query_support(assistant_id_list=[rhymer["id"], "glm-4-alltools", "0" * 24])
    assert named.code == 200 and [a.assistant_id for a in named.data] == [rhymer["id"], "glm-4-alltools"]
    glm = named.data[0]
    assert (glm.name, glm.description, glm.status, glm.tools) == ("Rhymer", "rhymes", "publish", [])
    assert glm.starter_prompts == ["A cat?"] and glm.created_at > 0
    every = bob.sdk.assistant.query_support()
    assert {rhymer["id"], "glm-4-alltools"} <= {a.assistant_id for a in every.data}


def test_query_conversation_usage_pages_the_callers_conversations(bob: Account, alice: Account) -> None:
    mine = [bob.converse("glm-4-alltools", f"Question {n}")[-1] for n in range(3)]
    page = bob.sdk.assistant.query_conversation_usage(assistant_id="glm-4-alltools", page=1, page_size=2)
    assert page.code == 200 and page.data.assistant_id == "glm-4-alltools" and page.data.has_more
    listed = page.data.conversation_list
    assert [c.id for c in listed] == [mine[2].conversation_id, mine[1].conversation_id]  # newest first
    assert listed[0].usage.total_tokens == mine[2].usage.total_tokens and listed[0].create_time > 0
    assert alice.sdk.assistant.query_conversation_usage(assistant_id="glm-4-alltools").data.conversation_list == []


def test_suggestions_for_a_stored_conversation(scripted: RunningServer, bob: Account, alice: Account) -> None:
    conversation_id = bob.converse("glm-4-alltools", "What is 40 + 2?")[-1].conversation_id
    body = {"assistant_id": "glm-4-alltools", "conversation_id": conversation_id}
    suggested = bob.post("/api/paas/v4/assistant/conversation/suggest", body)
    assert suggested.status_code == 200, suggested.text
    assert suggested.json() == {"suggest_list": ["Why 42?", "Show the code?", "Try 7 times 6?"]}
    assert [
        r["status"] for r in usage_rows(scripted, "account_id = ? AND endpoint = ?", bob.id, "assistant.suggest")
    ] == ["succeeded"]
    assert alice.post("/v1/assistant/conversation/suggest", body).status_code == 404
    wrong = bob.post("/v1/assistant/conversation/suggest", {**body, "assistant_id": "0" * 24})
    assert wrong.status_code == 400


# --- REST extensions for the web app ------------------------------------------------------------------------


def test_rest_conversations_list_get_and_delete(bob: Account, alice: Account) -> None:
    made = bob.converse("glm-4-alltools", "For the REST test")[-1].conversation_id
    listed = bob.get("/v1/assistant/conversations", assistant_id="glm-4-alltools", page=1, size=1).json()
    assert listed["total"] >= 1 and len(listed["data"]) == 1
    row = listed["data"][0]
    assert row["id"] == made and row["title"] == "For the REST test" and row["agent_version"] is None
    assert set(row) == {"id", "assistant_id", "title", "agent_version", "created_at", "updated_at", "usage"}
    assert row["updated_at"] >= row["created_at"] > 1_000_000_000 and row["created_at"] < 10**11  # seconds
    assert alice.get(f"/v1/assistant/conversations/{made}").status_code == 404  # private to bob's account
    assert alice.delete(f"/v1/assistant/conversations/{made}").status_code == 404
    deleted = bob.delete(f"/api/paas/v4/assistant/conversations/{made}")
    assert deleted.status_code == 200 and deleted.json() == {}
    assert bob.get(f"/v1/assistant/conversations/{made}").status_code == 404


# --- attribution --------------------------------------------------------------------------------------------


def test_usage_through_a_glm_is_attributed_and_shared_with_its_creator(
    scripted: RunningServer, alice: Account, bob: Account, rhymer: dict[str, Any]
) -> None:
    bob.converse(rhymer["id"], "Pay the creator")
    chat = httpx.post(
        f"{scripted.url}/v1/chat/completions",
        json={"model": rhymer["id"], "messages": [{"role": "user", "content": "via chat"}], "stream": True},
        headers=bob.headers,
        timeout=120,
    )
    assert chat.status_code == 200
    events = [json.loads(line[6:]) for line in chat.text.splitlines() if line.startswith("data: {")]
    chat_conversation = events[-1]["conversation_id"]

    rows = usage_rows(scripted, "agent_id = ?", rhymer["id"])
    assert {r["endpoint"] for r in rows} == {"assistant", "chat.completions"}
    assert {r["agent_owner"] for r in rows} == {alice.id} and {r["account_id"] for r in rows} == {bob.id}
    assert all(r["cost"] > 0 and r["agent_share"] == int(r["cost"] * SHARE) for r in rows)
    catalog = bob.converse("glm-4-alltools", "Not through a GLM")[-1]
    [plain] = usage_rows(scripted, "id = ?", catalog.id)  # the chunks' id is the usage record's
    assert (plain["endpoint"], plain["agent_id"], plain["agent_owner"], plain["agent_share"]) == (
        "assistant",
        None,
        None,
        None,
    )

    shares = [e for e in alice.get("/v1/account/ledger").json()["data"] if e["kind"] == "share"]
    assert len(shares) == len(rows)
    assert "every balance equals the sum of its ledger entries" in scripted.cli("db", "verify")

    report = alice.get(f"/v1/glms/{rhymer['id']}/usage").json()
    assert report["calls"] == len(rows)
    assert report["prompt_tokens"] == sum(r["prompt_tokens"] for r in rows)
    assert float(report["earnings"]) == pytest.approx(float(report["cost"]) * SHARE, rel=1e-6)
    assert sum(d["calls"] for d in report["by_day"]) == len(rows) and float(report["earnings"]) > 0
    assert bob.get(f"/v1/glms/{rhymer['id']}/usage").status_code == 404  # only the creator sees it
    by_agent = {g["group"]: g for g in bob.get("/v1/account/usage", by="agent").json()["data"]}
    assert by_agent[rhymer["id"]]["requests"] == len(rows)

    # The chat conversation was stored too, with the version it used.
    stored = bob.get(f"/v1/assistant/conversations/{chat_conversation}").json()
    current = alice.get(f"/v1/glms/{rhymer['id']}").json()["version"]
    assert stored["assistant_id"] == rhymer["id"] and stored["agent_version"] == current
    answer = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
    assert [m["content"] for m in stored["messages"]] == ["via chat", answer] and answer


# --- refusals -----------------------------------------------------------------------------------------------


def test_bad_requests_are_clear_4xx_and_store_nothing(
    scripted: RunningServer, alice: Account, bob: Account, rhymer: dict[str, Any]
) -> None:
    alices = alice.converse(rhymer["id"], "Alice's own")[-1].conversation_id
    bobs = bob.converse("glm-4-alltools", "Bob's own")[-1].conversation_id
    before_conversations = count_conversations(bob)
    before_usage = len(usage_rows(scripted, "account_id = ?", bob.id))
    message = [{"role": "user", "content": "Hi"}]
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"assistant_id": rhymer["id"], "messages": message, "stream": False}, 400, "1214"),
        ({"assistant_id": rhymer["id"], "messages": message}, 400, "1214"),
        ({"assistant_id": "0" * 24, "messages": message, "stream": True}, 400, "1211"),
        ({"assistant_id": "no-such-agent", "messages": message, "stream": True}, 400, "1211"),
        ({"assistant_id": rhymer["id"], "conversation_id": alices, "messages": message, "stream": True}, 404, None),
        ({"assistant_id": rhymer["id"], "conversation_id": bobs, "messages": message, "stream": True}, 400, "1214"),
        (
            {"assistant_id": rhymer["id"], "messages": message, "stream": True, "attachments": [{"file_id": "file-1"}]},
            400,
            "1214",
        ),
        (
            {"assistant_id": rhymer["id"], "messages": message, "stream": True, "attachments": [{"file_id": "f"}] * 11},
            400,
            None,
        ),
        ({"assistant_id": rhymer["id"], "messages": [], "stream": True}, 400, None),
        ({"assistant_id": rhymer["id"], "messages": [{"role": "system", "content": "x"}], "stream": True}, 400, None),
    ]
    for body, status, code in cases:
        response = bob.post("/api/paas/v4/assistant", body)
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert error["message"] and (code is None or error["code"] == code), (body, error)
    assert count_conversations(bob) == before_conversations
    assert len(usage_rows(scripted, "account_id = ?", bob.id)) == before_usage
    # A GLM conversation in chat must be with that GLM too.
    clash = bob.post(
        "/v1/chat/completions", {"model": rhymer["id"], "messages": message, "stream": True, "conversation_id": bobs}
    )
    assert clash.status_code == 400 and clash.json()["error"]["code"] == "1214"


# --- the real default model ---------------------------------------------------------------------------------


def test_a_glm_on_the_real_default_model_through_the_sdk(server: RunningServer, zhipu: ZhipuAI) -> None:
    """The session's server (the default catalog, SmolLM2-135M, no keys): structure only, never wording."""
    config = {"instructions": "You are a terse assistant.", "model": MODEL}
    glm = httpx.post(f"{server.url}/v1/glms", json={"name": "Terse", "config": config}).json()

    def turn(text: str, conversation_id: str | None = None) -> list[Any]:
        return list(
            zhipu.assistant.conversation(  # type: ignore[arg-type]
                assistant_id=glm["id"],
                messages=[{"role": "user", "content": [{"type": "text", "text": text}]}],  # type: ignore[list-item]
                stream=True,
                conversation_id=conversation_id,
                extra_body={"max_tokens": 24},  # OpenGLM's extension: the 135M model rambles otherwise
            )
        )

    first = turn("Name a colour.")
    last = first[-1]
    assert last.status == "completed" and last.choices[0].finish_reason in ("stop", "length")
    assert last.usage.completion_tokens <= 24
    assert last.usage.completion_tokens > 0 and last.usage.total_tokens == (
        last.usage.prompt_tokens + last.usage.completion_tokens
    )
    second = turn("Another one.", last.conversation_id)
    # The first question and answer were replayed: the prompt holds at least them.
    assert second[-1].usage.prompt_tokens > last.usage.prompt_tokens + last.usage.completion_tokens
    stored = httpx.get(f"{server.url}/v1/assistant/conversations/{last.conversation_id}").json()
    assert [m["content"] for m in stored["messages"][::2]] == ["Name a colour.", "Another one."]
    assert stored["messages"][1]["content"] == text_of(first) and stored["agent_version"] == 1
    # Suggestions come from a JSON-schema grammar: at most three strings of at most 80 characters.
    body = {"assistant_id": glm["id"], "conversation_id": last.conversation_id}
    suggested = httpx.post(f"{server.url}/v1/assistant/conversation/suggest", json=body, timeout=120).json()
    assert len(suggested["suggest_list"]) <= 3  # whitespace-only strings are dropped, so maybe fewer
    assert all(isinstance(s, str) and 0 < len(s) <= 80 for s in suggested["suggest_list"])


def test_glm_4_alltools_on_the_real_default_model_through_the_sdk(server: RunningServer, zhipu: ZhipuAI) -> None:
    chunks = list(
        zhipu.assistant.conversation(  # type: ignore[arg-type]
            assistant_id="glm-4-alltools",
            messages=[{"role": "user", "content": [{"type": "text", "text": "What is 6 times 7?"}]}],  # type: ignore[list-item]
            stream=True,
            extra_body={"max_tokens": 24},
        )
    )
    last = chunks[-1]
    assert last.status == "completed" and last.usage.total_tokens > 0
    assert all(c.status == "in_progress" for c in chunks[:-1])
    for chunk in chunks[:-1]:
        delta = chunk.choices[0].delta
        if delta.role == "tool":  # whatever the model chose to call: one tool per chunk, input or outputs
            (call,) = delta.tool_calls
            body = getattr(call, call.type)
            assert (body.input is not None) or (body.outputs is not None)
        else:
            assert isinstance(delta.content, str)
    stored = httpx.get(f"{server.url}/v1/assistant/conversations/{last.conversation_id}").json()
    assert stored["messages"][1]["content"] == text_of(chunks) and stored["assistant_id"] == "glm-4-alltools"
