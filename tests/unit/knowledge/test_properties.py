"""Property tests: on any text and any options, spans are exact, budgets hold and nothing is lost."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openglm.knowledge import (
    ChunkingOptions,
    DocumentError,
    ParsedDocument,
    TokenCounter,
    approximate_tokens,
    chunk,
    parse,
)

from .checks import check_chunks, check_coverage, well_formed

_FRAGMENTS = st.one_of(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12),
    st.text(alphabet="知识库文档解析切片中文", min_size=1, max_size=6),
    st.sampled_from([" ", " ", " ", "\n", "\n\n", "。", ". ", ", ", "；", "\t", "  "]),
    st.text(alphabet="xyz0123456789/", min_size=40, max_size=400),  # a long run with no separator in it
)
_TEXT = st.lists(_FRAGMENTS, min_size=1, max_size=300).map("".join)
_MARKDOWN_LINES = st.one_of(
    _TEXT.map(lambda text: text.replace("\n", " ")),
    st.tuples(st.integers(1, 4), st.text(alphabet="abc ", min_size=1, max_size=10)).map(
        lambda pair: "#" * pair[0] + " " + pair[1]
    ),
    st.lists(st.text(alphabet="abc 12", max_size=15), min_size=1, max_size=4).map(
        lambda cells: "| " + " | ".join(cells) + " |"
    ),
    st.sampled_from(["|---|---|", "| --- |", "```", "- item", "", "", "---", "==="]),
)
_MARKDOWN = st.lists(_MARKDOWN_LINES, min_size=1, max_size=60).map("\n".join)


@st.composite
def _options(draw: st.DrawFn) -> ChunkingOptions:
    chunk_tokens = draw(st.integers(16, 96))
    return ChunkingOptions(
        chunk_tokens=chunk_tokens,
        overlap_tokens=draw(st.integers(0, chunk_tokens // 2)),
        max_chars=draw(st.one_of(st.none(), st.integers(20, 400))),
        boundaries=draw(st.sampled_from([(), ("\n",)])),
        merge_sections=draw(st.booleans()),
    )


def _parsed_or_none(data: bytes, filename: str) -> ParsedDocument | None:
    try:
        return parse(data, filename)
    except DocumentError as error:
        assert error.problem == "empty"  # the only thing generated text can be refused for
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_TEXT, options=_options())
def test_text_chunks_are_exact_within_budget_and_complete(text: str, options: ChunkingOptions) -> None:
    document = _parsed_or_none(text.encode(), "random.txt")
    if document is None:
        return
    chunks = chunk(document, options, approximate_tokens)
    check_chunks(document, chunks, options, approximate_tokens)
    check_coverage(document, chunks)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_MARKDOWN, options=_options())
def test_markdown_parses_well_formed_and_chunks_keep_the_invariants(text: str, options: ChunkingOptions) -> None:
    document = _parsed_or_none(text.encode(), "random.md")
    if document is None:
        return
    well_formed(document)
    chunks = chunk(document, options, approximate_tokens)
    check_chunks(document, chunks, options, approximate_tokens)
    if not options.boundaries:
        check_coverage(document, chunks)


@pytest.fixture(scope="module")
def real_tokens(minilm_tokens: TokenCounter) -> TokenCounter:
    return minilm_tokens


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_TEXT, options=_options())
def test_the_budget_holds_with_a_real_tokenizer(text: str, options: ChunkingOptions, real_tokens: TokenCounter) -> None:
    document = _parsed_or_none(text.encode(), "random.txt")
    if document is None:
        return
    chunks = chunk(document, options, real_tokens)
    check_chunks(document, chunks, options, real_tokens)
    check_coverage(document, chunks)
