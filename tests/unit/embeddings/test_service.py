"""EmbeddingService on a fake backend registered through the real registry: what is refused before the model
is touched, dimensions, encodings, usage."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from openglm.catalog import Catalog, CatalogError, EmbeddingSpec
from openglm.embeddings.backends import Embedded, EmbeddingBackend, embedding_backends
from openglm.embeddings.service import EmbeddingService, shorten
from openglm.errors import EngineError, InvalidFieldError, ModelNotFoundError
from openglm.protocol.embeddings import EmbeddingRequest
from openglm.serving.usage import Tally

DIMS = 8


@embedding_backends.register("fake")
class FakeBackend(EmbeddingBackend):
    """Unit vectors seeded by the text; one token per word. ``options.dims`` lies about the length."""

    async def embed(self, texts: Sequence[str]) -> Embedded:
        dims = int(self.spec.options.get("dims", self.spec.dimensions))
        rows = []
        for text in texts:
            row = np.random.default_rng(sum(text.encode())).standard_normal(dims).astype(np.float32)
            rows.append(row / np.linalg.norm(row))
        return Embedded(np.stack(rows), sum(len(t.split()) for t in texts))


def spec(**fields: object) -> EmbeddingSpec:
    values: dict[str, object] = {"id": "fake-embed", "engine": "fake", "source": "-", "dimensions": DIMS}
    return EmbeddingSpec.model_validate(values | fields)


def service(*specs: EmbeddingSpec) -> EmbeddingService:
    return EmbeddingService(Catalog([], embeddings=list(specs) or [spec(max_inputs=3, aliases=["alias"])]), 1)


def request(**fields: object) -> EmbeddingRequest:
    return EmbeddingRequest.model_validate({"model": "fake-embed", "input": "hello"} | fields)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "input: must not be an empty string"),
        ([], "input: must not be empty"),
        (["a", ""], "input[1]: must not be an empty string"),
        ([1, 2, 3], "token-id arrays are not supported"),
        ([[1, 2], [3]], "token-id arrays are not supported"),
        (["a", "b", "c", "d"], "at most 3 inputs per request, got 4"),
    ],
)
def test_bad_inputs_are_refused_before_the_model(value: object, message: str) -> None:
    with pytest.raises(InvalidFieldError, match=message.replace("[", r"\[").replace("]", r"\]")) as refused:
        service().plan(request(input=value))
    assert refused.value.code == "1214" and refused.value.status == 400


def test_inputs_a_string_or_a_list() -> None:
    assert service().plan(request(input="one")).texts == ["one"]
    assert service().plan(request(input=["one", "two"], model="alias")).texts == ["one", "two"]


def test_unknown_models_are_1211_and_list_the_known_ones() -> None:
    with pytest.raises(
        ModelNotFoundError, match="'text-embedding-3-small' does not exist; available: alias, fake-embed"
    ):
        service().plan(request(model="text-embedding-3-small"))
    with pytest.raises(ModelNotFoundError, match=r"none is configured \(add \[\[embeddings\]\]"):
        EmbeddingService(Catalog([]), 1).plan(request())


def test_dimensions_must_be_the_models_own_unless_it_truncates() -> None:
    assert service().plan(request(dimensions=DIMS)).dimensions == DIMS
    with pytest.raises(InvalidFieldError, match="gives 8-dimensional vectors only \\(it cannot truncate\\)"):
        service().plan(request(dimensions=4))
    matryoshka = service(spec(truncate_dimensions=True))
    assert matryoshka.plan(request(dimensions=4)).dimensions == 4
    for wrong in (0, -1, DIMS + 1):
        with pytest.raises(InvalidFieldError, match="from 1 to 8 dimensions"):
            matryoshka.plan(request(dimensions=wrong))


async def test_float_and_base64_give_the_same_little_endian_float32_vectors() -> None:
    embeddings = service()
    tally = Tally()
    as_floats = await embeddings.run(embeddings.plan(request(input=["a b c", "d"], model="alias")), tally)
    as_base64 = await embeddings.run(embeddings.plan(request(input=["a b c", "d"], encoding_format="base64")), Tally())
    assert as_floats.model == "alias" and as_floats.usage.prompt_tokens == 4 and as_floats.usage.total_tokens == 4
    assert tally.prompt_tokens == 4 and tally.completion_tokens == 0
    for f, b in zip(as_floats.data, as_base64.data, strict=True):
        assert isinstance(b.embedding, str) and isinstance(f.embedding, list)
        decoded = np.frombuffer(base64.b64decode(b.embedding), dtype="<f4")
        assert decoded.tolist() == f.embedding and len(f.embedding) == DIMS
        assert abs(float(np.linalg.norm(decoded)) - 1) < 1e-6
    assert [d.index for d in as_floats.data] == [0, 1]
    body = as_floats.model_dump(mode="json", exclude_none=True)
    assert body["object"] == "list" and body["data"][0]["object"] == "embedding"
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 0, "total_tokens": 4}


async def test_truncated_vectors_are_the_renormalized_prefix() -> None:
    embeddings = service(spec(truncate_dimensions=True))
    full = (await embeddings.embed(embeddings.resolve("fake-embed"), ["x y"])).vectors[0]
    short = (await embeddings.embed(embeddings.resolve("fake-embed"), ["x y"], 3)).vectors[0]
    assert np.allclose(short, full[:3] / np.linalg.norm(full[:3])) and abs(np.linalg.norm(short) - 1) < 1e-6
    assert shorten(np.zeros((1, 4), dtype=np.float32), 2).tolist() == [[0.0, 0.0]]  # no division by zero


async def test_a_backend_giving_the_wrong_length_is_an_engine_error() -> None:
    embeddings = service(spec(options={"dims": DIMS + 1}))
    with pytest.raises(EngineError, match=r"shape \(1, 9\); expected \(1, 8\)"):
        await embeddings.embed(embeddings.resolve("fake-embed"), ["x"])


def test_an_unknown_backend_fails_at_startup() -> None:
    with pytest.raises(
        CatalogError, match="unknown embedding backend 'tei'; known: fake, llamacpp, remote, sentence_transformers"
    ):
        service(spec(engine="tei"))


def test_catalog_embeddings(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(
        '[[embeddings]]\nid = "embedding-2"\naliases = ["e2"]\nsource = "-"\ndimensions = 1024\n'
        '[[embeddings]]\nid = "mine"\nsource = "-"\ndimensions = 4\n[embeddings.prices]\ninput = 0.00002\n'
    )
    catalog = Catalog.from_file(path)
    assert sorted(catalog.embeddings) == ["e2", "embedding-2", "mine"]
    seeded = catalog.embeddings["e2"]
    assert seeded.engine == "sentence_transformers" and seeded.max_inputs == 2048 and seeded.max_input_tokens is None
    assert seeded.effective_prices().input == Decimal("0.0005")  # Zhipu's list price for embedding-2
    assert catalog.embeddings["mine"].effective_prices().input == Decimal("0.00002")
    path.write_text('[[embeddings]]\nid = "a"\nsource = "-"\ndimensions = 4\ntemplate = "glm4"\n')
    with pytest.raises(CatalogError, match="template"):
        Catalog.from_file(path)  # chat-only fields are typos here
    with pytest.raises(CatalogError, match="'a' is used twice"):
        Catalog([], embeddings=[spec(id="a"), spec(id="b", aliases=["a"])])


def test_importing_the_server_loads_no_torch() -> None:
    code = (
        "import sys, openglm.api.app, openglm.embeddings.local, openglm.embeddings.remote\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
