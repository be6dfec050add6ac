"""/embeddings through the real server with the unmodified openai and zhipuai SDKs: the default model
(all-MiniLM-L6-v2 through sentence-transformers), and on a second server the same model as a GGUF through
llama.cpp and the first server as a remote endpoint."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from zhipuai import ZhipuAI
from zhipuai.core._errors import APIRequestFailedError

from ..fixtures.minilm_gguf import write_minilm_gguf
from .conftest import write_catalog
from .server import RunningServer, free_port

MODEL = "all-minilm-l6-v2"
TEXTS = ["hello world", "The cat sits on the mat."]
TOKENS = 13  # 4 + 9, [CLS] and [SEP] included


def usage_row(server: RunningServer, model: str) -> dict[str, Any]:
    rows = httpx.get(f"{server.url}/v1/account/usage", params={"by": "model"}).json()["data"]
    empty = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost": "0"}
    return next((r for r in rows if r["group"] == model), empty)


def passes(server: RunningServer, model: str) -> int:
    return int(httpx.get(f"{server.url}/health").json()["embeddings"][model].get("passes", 0))


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def gateway(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("embeddings")
    gguf = write_minilm_gguf(tmp / "minilm.gguf")
    catalog = f"""
[[embeddings]]
id = "minilm-gguf"
engine = "llamacpp"
source = "{gguf}"
dimensions = 384
max_input_tokens = 256
max_inputs = 4
[embeddings.options]
batch_tokens = 1024

[[embeddings]]
id = "upstream-minilm"
aliases = ["embedding-2"]
engine = "remote"
source = "{server.url}/v1"
dimensions = 384
[embeddings.options]
remote_model = "{MODEL}"

[[embeddings]]
id = "nowhere"
engine = "remote"
source = "http://127.0.0.1:{free_port()}/v1"
dimensions = 384
"""
    running = RunningServer(models_file=write_catalog(tmp / "models.toml", catalog), log=tmp / "gateway.log")
    yield running
    running.stop()


def test_openai_float_and_base64_give_the_same_vectors(client: openai.OpenAI, server: RunningServer) -> None:
    floats = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
    decoded = client.embeddings.create(model=MODEL, input=TEXTS)  # the SDK asks for base64 and decodes it
    assert [d.embedding for d in floats.data] == [d.embedding for d in decoded.data]
    assert [d.index for d in floats.data] == [0, 1] and floats.model == MODEL
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == TOKENS
    for item in floats.data:
        assert len(item.embedding) == 384 and abs(np.linalg.norm(item.embedding) - 1) < 1e-5
    raw = httpx.post(f"{server.url}/v1/embeddings", json={"model": MODEL, "input": TEXTS, "encoding_format": "base64"})
    packed = raw.json()["data"][0]["embedding"]  # the same batch as above: padding changes the last bits
    assert isinstance(packed, str) and raw.headers["content-type"] == "application/json"
    assert np.frombuffer(base64.b64decode(packed), dtype="<f4").tolist() == floats.data[0].embedding


def test_similar_sentences_score_higher(client: openai.OpenAI) -> None:
    texts = [
        "The cat sits on the mat.",
        "A kitten is resting on the rug.",
        "The central bank raised interest rates again.",
        "Borrowing costs went up after the rate decision.",
    ]
    v = [d.embedding for d in client.embeddings.create(model=MODEL, input=texts).data]
    assert cosine(v[0], v[1]) > 0.5 and cosine(v[2], v[3]) > 0.5
    assert max(cosine(v[0], v[2]), cosine(v[0], v[3]), cosine(v[1], v[2]), cosine(v[1], v[3])) < 0.2


def test_zhipu_sdk_with_its_fields(zhipu: ZhipuAI) -> None:
    result = zhipu.embeddings.create(model=MODEL, input="The cat sits on the mat.", dimensions=384, request_id="zr-1")
    assert result.object == "list" and len(result.data[0].embedding) == 384
    assert result.usage.prompt_tokens == 9 and result.usage.completion_tokens == 0
    alias = zhipu.embeddings.create(model="sentence-transformers/all-MiniLM-L6-v2", input=["The cat sits on the mat."])
    assert alias.data[0].embedding == result.data[0].embedding
    with pytest.raises(APIRequestFailedError) as refused:
        zhipu.embeddings.create(model=MODEL, input="x", dimensions=256)
    assert "384-dimensional vectors only" in str(refused.value) and refused.value.status_code == 400


def test_each_call_is_one_usage_record_and_one_charge(client: openai.OpenAI, server: RunningServer) -> None:
    before = usage_row(server, MODEL)
    client.embeddings.create(model=MODEL, input=TEXTS)
    after = usage_row(server, MODEL)
    assert after["requests"] - before["requests"] == 1
    assert after["prompt_tokens"] - before["prompt_tokens"] == TOKENS and after["completion_tokens"] == 0
    assert Decimal(after["cost"]) - Decimal(before["cost"]) == Decimal("0.0000013")  # 13 tokens at 0.0001 / 1K
    (entry,) = httpx.get(f"{server.url}/v1/account/ledger", params={"limit": 1}).json()["data"]
    assert entry["note"] == "embeddings" and entry["usage_id"].startswith("emb-") and entry["amount"] == "-0.0000013"


async def test_concurrent_requests_are_batched_and_equal_one_at_a_time(
    aclient: openai.AsyncOpenAI, server: RunningServer
) -> None:
    texts = [f"Request {n} asks about {'cats' if n % 2 else 'the weather'} today." for n in range(16)]
    await aclient.embeddings.create(model=MODEL, input="warm up")
    start = passes(server, MODEL)
    together = await asyncio.gather(*(aclient.embeddings.create(model=MODEL, input=t) for t in texts))
    coalesced = passes(server, MODEL) - start
    alone = [await aclient.embeddings.create(model=MODEL, input=t) for t in texts]
    assert coalesced < len(texts)  # several requests shared a forward pass
    for a, b in zip(together, alone, strict=True):
        assert np.abs(np.subtract(a.data[0].embedding, b.data[0].embedding)).max() < 1e-5
        assert a.usage.prompt_tokens == b.usage.prompt_tokens


BAD_REQUESTS = [
    ({"model": MODEL, "input": ""}, "1214", "empty string"),
    ({"model": MODEL, "input": []}, "1214", "must not be empty"),
    ({"model": MODEL, "input": ["a", ""]}, "1214", "input[1]"),
    ({"model": MODEL, "input": [101, 7592, 102]}, "1214", "token-id arrays"),
    ({"model": MODEL, "input": [[101, 7592, 102]]}, "1214", "token-id arrays"),
    ({"model": MODEL, "input": ["a", 3]}, "1214", "input"),
    ({"model": MODEL, "input": 5}, "1214", "input"),
    ({"model": MODEL, "input": {"text": "a"}}, "1214", "input"),
    ({"model": MODEL, "input": None}, "1214", "input"),
    ({"model": MODEL}, "1213", "input: field is required"),
    ({"input": "x"}, "1213", "model: field is required"),
    ({"model": 7, "input": "x"}, "1214", "model"),
    ({"model": "text-embedding-3-small", "input": "x"}, "1211", "available: all-minilm-l6-v2"),
    ({"model": MODEL, "input": "x", "encoding_format": "hex"}, "1214", "encoding_format"),
    ({"model": MODEL, "input": "x", "dimensions": 1024}, "1214", "384-dimensional vectors only"),
    ({"model": MODEL, "input": "x", "dimensions": "many"}, "1214", "dimensions"),
    ({"model": MODEL, "input": "word " * 300}, "1261", "input[0] is 302 tokens"),
    ({"model": MODEL, "input": ["a"] * 2049}, "1214", "at most 2048 inputs"),
]


@pytest.mark.parametrize("prefix", ["/v1", "/api/paas/v4"])
def test_bad_requests_are_400s_and_are_not_billed(server: RunningServer, prefix: str) -> None:
    before = usage_row(server, MODEL)
    for body, code, message in BAD_REQUESTS:
        response = httpx.post(f"{server.url}{prefix}/embeddings", json=body, timeout=60)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["code"] == code and message in response.json()["error"]["message"], body
    for raw in (b"not json", b"[1, 2]"):
        response = httpx.post(
            f"{server.url}{prefix}/embeddings", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400 and response.json()["error"]["code"] == "1210"
    assert usage_row(server, MODEL)["requests"] == before["requests"]


def test_openai_sdk_sees_a_clear_error_for_a_long_input(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="reads at most 256 tokens per input"):
        client.embeddings.create(model=MODEL, input=["fine", "token " * 400])


def test_gguf_through_llamacpp_matches_sentence_transformers(client: openai.OpenAI, gateway: RunningServer) -> None:
    local = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, timeout=120)
    ours = local.embeddings.create(model="minilm-gguf", input=TEXTS)
    reference = client.embeddings.create(model=MODEL, input=TEXTS)
    assert ours.usage.prompt_tokens == TOKENS  # the GGUF's WordPiece vocabulary gives the same tokens
    for a, b in zip(ours.data, reference.data, strict=True):
        assert cosine(a.embedding, b.embedding) > 0.9999
    zhipu = ZhipuAI(api_key="id.secret", base_url=f"{gateway.url}/api/paas/v4", max_retries=0)
    assert len(zhipu.embeddings.create(model="minilm-gguf", input="hello").data[0].embedding) == 384
    with pytest.raises(openai.BadRequestError, match="at most 4 inputs"):
        local.embeddings.create(model="minilm-gguf", input=["a"] * 5)
    with pytest.raises(openai.BadRequestError, match="reads at most 256"):
        local.embeddings.create(model="minilm-gguf", input="word " * 300)


def test_remote_endpoint_gives_the_upstream_vectors_billed_at_the_seed_price(
    client: openai.OpenAI, gateway: RunningServer
) -> None:
    proxied = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, timeout=120)
    through = proxied.embeddings.create(model="embedding-2", input=TEXTS)
    direct = client.embeddings.create(model=MODEL, input=TEXTS)
    assert [d.embedding for d in through.data] == [d.embedding for d in direct.data]  # float32, exactly
    assert through.usage.prompt_tokens == TOKENS and through.model == "embedding-2"
    row = usage_row(gateway, "upstream-minilm")
    assert row["prompt_tokens"] >= TOKENS and Decimal(row["cost"]) == row["prompt_tokens"] * Decimal("0.0000005")
    with pytest.raises(openai.BadRequestError) as too_long:  # the upstream's 1261 stays a 1261
        proxied.embeddings.create(model="upstream-minilm", input="word " * 300)
    assert too_long.value.body["code"] == "1261"  # type: ignore[index]
    with pytest.raises(openai.InternalServerError, match="unreachable") as down:
        proxied.embeddings.create(model="nowhere", input="x")
    assert down.value.body["code"] == "1260"  # type: ignore[index]


def test_embedding_models_are_listed_with_the_models(client: openai.OpenAI, gateway: RunningServer) -> None:
    listed = {m.id: m for m in client.models.list()}
    assert {"smollm2-135m-instruct", MODEL, "sentence-transformers/all-MiniLM-L6-v2"} <= set(listed)
    card = client.models.retrieve("sentence-transformers/all-MiniLM-L6-v2")
    assert card.root == MODEL and card.context_length == 256  # type: ignore[attr-defined]
    remote = httpx.get(f"{gateway.url}/api/paas/v4/models").json()["data"]
    assert {m["id"] for m in remote} == {"minilm-gguf", "upstream-minilm", "embedding-2", "nowhere"}
