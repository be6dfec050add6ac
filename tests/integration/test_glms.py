"""GLMs through the real server: create, edit into versions, share, the agent center, and clear refusals."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import MODEL, write_catalog
from .server import RunningServer
from .test_alltools import call, stream, user
from .test_knowledge import EMBEDDINGS, wait_ready

CONFIG: dict[str, Any] = {"instructions": "Answer in rhyme.", "model": MODEL, "starter_prompts": ["Rhyme me a cat"]}


def post(server: RunningServer, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body)


def test_create_edit_version_and_list(server: RunningServer) -> None:
    created = post(server, "/v1/glms", {"name": "Rhymer", "description": "rhymes", "config": CONFIG})
    assert created.status_code == 200, created.text
    agent = created.json()
    assert agent["version"] == 1 and agent["mine"] and agent["config"]["instructions"] == "Answer in rhyme."
    edited = httpx.put(
        f"{server.url}/api/paas/v4/glms/{agent['id']}",
        json={"visibility": "listed", "config": {**CONFIG, "instructions": "Limericks."}},
    )
    assert edited.status_code == 200 and edited.json()["version"] == 2
    versions = httpx.get(f"{server.url}/v1/glms/{agent['id']}/versions").json()["data"]
    assert [v["version"] for v in versions] == [2, 1] and versions[1]["config"]["instructions"] == "Answer in rhyme."
    center = httpx.get(f"{server.url}/v1/glms/center", params={"q": "rhym"}).json()
    assert agent["id"] in [a["id"] for a in center["data"]]
    mine = httpx.get(f"{server.url}/v1/glms").json()
    assert agent["id"] in [a["id"] for a in mine["data"]]
    assert httpx.delete(f"{server.url}/v1/glms/{agent['id']}").status_code == 200
    assert httpx.get(f"{server.url}/v1/glms/{agent['id']}").status_code == 404


def test_the_operator_recommends_agents_first_in_the_center(server: RunningServer) -> None:
    made = [
        post(server, "/v1/glms", {"name": f"Center {n}", "visibility": "listed", "config": CONFIG}).json()["id"]
        for n in range(3)
    ]
    admin = httpx.Client(
        base_url=f"{server.url}/admin",
        headers={"Authorization": f"Bearer {server.cli('keys', 'create', '--admin').strip()}"},
    )

    def center() -> list[str]:
        listed = httpx.get(f"{server.url}/v1/glms/center", params={"q": "center", "size": 100}).json()["data"]
        return [a["id"] for a in listed if a["id"] in made]

    assert admin.put(f"/glms/{made[2]}/recommendation", json={"rank": 2}).json() == {"rank": 2}
    assert admin.put(f"/glms/{made[1]}/recommendation", json={"rank": 1}).status_code == 200
    assert center() == [made[1], made[2], made[0]]
    assert httpx.get(f"{server.url}/v1/glms/{made[1]}").json()["recommended"] == 1
    admin.put(f"/glms/{made[1]}/recommendation", json={"rank": 0})
    assert center()[0] == made[2]
    missing = admin.put("/glms/" + "0" * 24 + "/recommendation", json={"rank": 1})
    assert missing.status_code == 404 and "does not exist" in missing.json()["error"]["message"]
    assert admin.put(f"/glms/{made[0]}/recommendation", json={"rank": -1}).status_code == 400
    unauthorised = httpx.put(f"{server.url}/admin/glms/{made[0]}/recommendation", json={"rank": 1})
    assert unauthorised.status_code in (401, 403)


def test_bad_agents_are_refused_clearly(server: RunningServer) -> None:
    cases = [
        ({"name": "x", "config": {**CONFIG, "model": "no-such-model"}}, "1211"),
        ({"name": "x", "config": {**CONFIG, "tools": ["retrieval"]}}, "1214"),
        ({"name": "x", "config": {**CONFIG, "knowledge_ids": ["404"]}}, "1214"),
        ({"name": "x", "config": {**CONFIG, "http_apis": [{"openapi": "/etc/passwd"}]}}, None),
        ({"name": "", "config": CONFIG}, None),
        ({"name": "x"}, None),
    ]
    before = httpx.get(f"{server.url}/v1/glms").json()["total"]
    for body, code in cases:
        response = post(server, "/v1/glms", body)
        assert response.status_code == 400, (body, response.text)
        assert "error" in response.json() and (code is None or response.json()["error"]["code"] == code)
    assert httpx.get(f"{server.url}/v1/glms").json()["total"] == before  # nothing half-made


def test_broken_openapi_documents_are_refused(server: RunningServer) -> None:
    for document in ("openapi: [unclosed", '{"openapi": "3.0.0", "paths": []}', '{"openapi": "3.0.0", "paths": {}}'):
        body = {"name": "x", "config": {**CONFIG, "http_apis": [{"openapi": document}]}}
        response = post(server, "/v1/glms", body)
        assert response.status_code == 400 and "error" in response.json(), (document, response.text)


def glm_catalog() -> str:
    return f"""
[[models]]
id = "script-glm"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = "direct sunlight"
reply = "Tomatoes want six to eight hours of sun [1]."
[[models.options.script]]
when = "Consult the garden notes."
reply = {call("retrieval", {"query": "tomato sun"})}
[[models.options.script]]
when = "Answer in rhyme."
reply = "Roses are red."
[[models.options.script]]
when = ""
reply = "No instructions seen."

{EMBEDDINGS}"""


@pytest.fixture(scope="module")
def builder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("glms")
    server = RunningServer(
        models_file=write_catalog(tmp / "models.toml", glm_catalog()),
        log=tmp / "s.log",
        env={"OPENGLM_SANDBOX_WARM": "0"},
    )
    yield server
    server.stop()


def test_chatting_with_a_glm_uses_its_instructions_and_knowledge(builder: RunningServer) -> None:
    rhymer = post(
        builder, "/v1/glms", {"name": "Rhymer", "config": {"instructions": "Answer in rhyme.", "model": "script-glm"}}
    )
    answer = stream(builder, model=rhymer.json()["id"], messages=user("Hi"))
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in answer) == "Roses are red."
    knowledge = post(builder, "/v1/knowledge", {"name": "garden"}).json()
    files = {"file": ("guide.md", b"## Tomatoes\n\nTomatoes need six to eight hours of direct sunlight.\n")}
    uploaded = httpx.post(
        f"{builder.url}/v1/files", data={"purpose": "retrieval", "knowledge_id": knowledge["id"]}, files=files
    ).json()
    wait_ready(builder, uploaded["successInfos"][0]["documentId"])
    config = {
        "instructions": "Consult the garden notes.",
        "model": "script-glm",
        "tools": ["retrieval"],
        "knowledge_ids": [knowledge["id"]],
    }
    gardener = post(builder, "/v1/glms", {"name": "Gardener", "config": config}).json()
    chunks = stream(builder, model=gardener["id"], messages=user("How much sun for tomatoes?"))
    deltas = [c["choices"][0]["delta"] for c in chunks]
    (result,) = [d["tool_calls"][0] for d in deltas if d.get("role") == "tool"]
    assert result["retrieval"]["outputs"][0]["document"] == "guide.md"
    assert "".join(d.get("content") or "" for d in deltas) == "Tomatoes want six to eight hours of sun [1]."
    assert httpx.get(f"{builder.url}/v1/glms/{gardener['id']}").json()["uses"] == 1


def test_an_unknown_glm_is_an_unknown_model(builder: RunningServer) -> None:
    body = {"model": "0" * 24, "messages": user("Hi"), "stream": True}
    response = httpx.post(f"{builder.url}/v1/chat/completions", json=body)
    assert response.status_code == 400 and response.json()["error"]["code"] == "1211"


def knowledge_base(server: RunningServer, name: str, filename: str, text: bytes) -> str:
    knowledge: dict[str, Any] = post(server, "/v1/knowledge", {"name": name}).json()
    uploaded = httpx.post(
        f"{server.url}/v1/files",
        data={"purpose": "retrieval", "knowledge_id": knowledge["id"]},
        files={"file": (filename, text)},
    ).json()
    wait_ready(server, uploaded["successInfos"][0]["documentId"])
    return str(knowledge["id"])


def retrieved_documents(chunks: list[dict[str, Any]]) -> set[str]:
    deltas = [c["choices"][0]["delta"] for c in chunks]
    results = [d["tool_calls"][0]["retrieval"]["outputs"] for d in deltas if d.get("role") == "tool"]
    assert results, deltas
    return {output["document"] for outputs in results for output in outputs}


def test_an_old_conversation_loses_the_knowledge_its_glm_no_longer_has(builder: RunningServer) -> None:
    garden = knowledge_base(builder, "beds", "tomatoes.md", b"## Tomatoes\n\nTomatoes need direct sunlight.\n")
    shed = knowledge_base(builder, "shed", "stakes.md", b"## Stakes\n\nThe sun hat is for direct sunlight.\n")
    config = {
        "instructions": "Consult the garden notes.",
        "model": "script-glm",
        "tools": ["retrieval"],
        "knowledge_ids": [garden, shed],
    }
    glm = post(builder, "/v1/glms", {"name": "Two beds", "config": config}).json()
    first = stream(builder, model=glm["id"], messages=user("How much sun for tomatoes?"))
    assert retrieved_documents(first) == {"tomatoes.md", "stakes.md"}
    conversation_id = first[-1]["conversation_id"]

    # The creator takes the garden notes away: the conversation keeps version 1's instructions and tools, but
    # not a knowledge base version 2 no longer has.
    edited = httpx.put(f"{builder.url}/v1/glms/{glm['id']}", json={"config": {**config, "knowledge_ids": [shed]}})
    assert edited.json()["version"] == 2
    later = stream(builder, model=glm["id"], messages=user("And now?"), conversation_id=conversation_id)
    assert later[-1]["conversation_id"] == conversation_id
    assert retrieved_documents(later) == {"stakes.md"}
    stored = httpx.get(f"{builder.url}/v1/assistant/conversations/{conversation_id}").json()
    assert stored["agent_version"] == 1 and len(stored["messages"]) == 4

    # The retrieval embeddings inside the runs are attributed to the GLM as well as the runs themselves.
    report = httpx.get(f"{builder.url}/v1/glms/{glm['id']}/usage").json()
    retrievals = sum(1 for c in first + later if c["choices"][0]["delta"].get("role") == "tool")
    assert report["calls"] == 2 + retrievals, report  # two runs, and each retrieval's embedding
