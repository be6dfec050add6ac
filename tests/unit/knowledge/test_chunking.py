from __future__ import annotations

import csv
import io
import time
from itertools import pairwise

import pytest

from openglm.errors import InvalidFieldError
from openglm.knowledge import ChunkingOptions, Table, TokenCounter, approximate_tokens, chunk, parse

from .checks import check_chunks, check_coverage
from .documents import make_pdf, make_xlsx

SENTENCES = [
    f"Sentence number {i} talks about {topic} in some detail, so that it is not too short."
    for i, topic in enumerate(["tea", "coffee", "water", "juice", "milk", "soup"] * 8)
]


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


def _table_rows(document_text: str, table: Table) -> list[str]:
    return [document_text[row.start : row.end] for row in table.rows]


# -- tables --


def test_every_chunk_of_a_500_row_csv_repeats_the_header_and_keeps_rows_whole(count_tokens: TokenCounter) -> None:
    rows = [["id", "product", "price", "description"]]
    rows += [[str(i), f"item-{i}", f"{i * 1.5:.2f}", f"a plain description of item {i}"] for i in range(500)]
    document = parse(_csv(rows), "products.csv")
    options = ChunkingOptions(chunk_tokens=128, overlap_tokens=16)
    chunks = chunk(document, options, count_tokens)
    check_chunks(document, chunks, options, count_tokens)
    check_coverage(document, chunks)
    table = next(b for b in document.blocks if isinstance(b, Table))
    all_rows = _table_rows(document.text, table)
    header = "| id | product | price | description |\n| --- | --- | --- | --- |\n"
    seen: list[str] = []
    assert len(chunks) > 10
    for current in chunks:
        assert current.kind == "table"
        assert current.embed_text == header + current.text  # the header, then whole rows
        seen.extend(current.text.split("\n"))
    assert seen == all_rows  # every row once, in order, none cut and none repeated (no overlap in tables)


def test_xlsx_sheets_chunk_under_their_own_names_and_headers(count_tokens: TokenCounter) -> None:
    data = make_xlsx(
        {
            "Orders": [["order", "customer", "total"]] + [[i, f"customer {i}", i * 10] for i in range(500)],
            "Refunds": [["refund", "reason"]] + [[i, "damaged on arrival"] for i in range(60)],
        }
    )
    document = parse(data, "sales.xlsx")
    options = ChunkingOptions(chunk_tokens=100)
    chunks = chunk(document, options, count_tokens)
    check_chunks(document, chunks, options, count_tokens)
    check_coverage(document, chunks)
    for current in chunks:
        sheet = current.headings[0]
        assert current.headings == (sheet,)
        header = "| order | customer | total |" if sheet == "Orders" else "| refund | reason |"
        assert current.embed_text.startswith(f"{sheet}\n\n{header}\n")
    assert {c.headings for c in chunks} == {("Orders",), ("Refunds",)}


def test_a_row_too_big_for_a_chunk_is_cut_between_cells_and_keeps_the_header(count_tokens: TokenCounter) -> None:
    long_cell = " ".join(f"word{i}" for i in range(300))
    rows = [["key", "body", "extra"], ["a", "short", "x"], ["b", long_cell, "tail cell"], ["c", "short again", "y"]]
    document = parse(_csv(rows), "wide.csv")
    options = ChunkingOptions(chunk_tokens=64)
    chunks = chunk(document, options, count_tokens)
    check_chunks(document, chunks, options, count_tokens)
    check_coverage(document, chunks)
    assert all(c.embed_text.startswith("| key | body | extra |\n| --- | --- | --- |\n") for c in chunks)
    assert chunks[0].text == "| a | short | x |"
    assert chunks[-1].text == "| c | short again | y |"
    fragments = chunks[1:-1]
    assert len(fragments) > 2 and fragments[-1].text.endswith("tail cell")


def test_a_header_wider_than_half_the_budget_is_cut_so_chunks_still_fit(count_tokens: TokenCounter) -> None:
    rows = [[f"column number {i}" for i in range(80)], [str(i) for i in range(80)]]
    document = parse(_csv(rows), "wide-header.csv")
    options = ChunkingOptions(chunk_tokens=64)
    chunks = chunk(document, options, count_tokens)
    check_chunks(document, chunks, options, count_tokens)
    check_coverage(document, chunks)


# -- text --


def test_text_chunks_fit_the_budget_and_overlap(count_tokens: TokenCounter) -> None:
    document = parse("\n".join(SENTENCES).encode(), "notes.txt")
    options = ChunkingOptions(chunk_tokens=64, overlap_tokens=16)
    chunks = chunk(document, options, count_tokens)
    check_chunks(document, chunks, options, count_tokens)
    check_coverage(document, chunks)
    assert len(chunks) > 5
    for previous, current in pairwise(chunks):
        assert previous.start < current.start < previous.end  # the next one begins inside the one before
        overlap = document.text[current.start : previous.end]
        assert 0 < count_tokens(overlap) <= 16
        assert current.text.startswith(overlap)


def test_no_overlap_when_it_is_off(count_tokens: TokenCounter) -> None:
    document = parse(" ".join(SENTENCES).encode(), "notes.txt")
    chunks = chunk(document, ChunkingOptions(chunk_tokens=64, overlap_tokens=0), count_tokens)
    assert all(current.start >= previous.end for previous, current in pairwise(chunks))


def test_a_word_longer_than_a_chunk_is_cut_where_the_budget_ends(count_tokens: TokenCounter) -> None:
    document = parse(("https://example.com/" + "abcdefghij" * 200 + " and then words").encode(), "url.txt")
    options = ChunkingOptions(chunk_tokens=32, overlap_tokens=0)
    chunks = chunk(document, options, count_tokens)
    check_chunks(document, chunks, options, count_tokens)
    check_coverage(document, chunks)


def test_chinese_text_is_cut_at_sentence_ends(count_tokens: TokenCounter) -> None:
    text = "".join(f"这是第{i}个句子，它讲述了知识库的切片方法。" for i in range(60))
    document = parse(text.encode(), "中文.txt")
    options = ChunkingOptions(chunk_tokens=64, overlap_tokens=0)
    chunks = chunk(document, options, count_tokens)
    check_chunks(document, chunks, options, count_tokens)
    check_coverage(document, chunks)
    assert all(c.text.endswith("。") for c in chunks)


# -- headings --

HANDBOOK = "\n\n".join(
    [
        "Preamble before any heading.",
        "# Leave",
        "## Annual leave",
        " ".join(SENTENCES[:12]),
        "## Sick leave",
        "Call in before nine.",
        "## Parental leave",
        "Twenty weeks.",
        "# Pay",
        "Paid monthly.",
        "## Bonus",
        "Once a year.",
        "# Empty chapter",
        "# Last",
        "The end.",
    ]
).encode()


def test_chunks_carry_their_heading_path_and_never_cross_a_top_level_section(count_tokens: TokenCounter) -> None:
    document = parse(HANDBOOK, "handbook.md")
    options = ChunkingOptions(chunk_tokens=80, overlap_tokens=8)
    chunks = chunk(document, options, count_tokens)
    check_chunks(document, chunks, options, count_tokens)
    check_coverage(document, chunks)
    by_text = {c.text: c for c in chunks}
    assert by_text["Preamble before any heading."].headings == ()
    assert by_text["Preamble before any heading."].embed_text == "Preamble before any heading."
    annual = [c for c in chunks if c.headings == ("Leave", "Annual leave")]
    assert len(annual) > 1 and all(c.embed_text.startswith("Leave > Annual leave\n\n") for c in annual)
    # the two small sections under "Leave" share a chunk, under the path they have in common
    assert by_text["Call in before nine.\n\n## Parental leave\n\nTwenty weeks."].headings == ("Leave",)
    assert by_text["Paid monthly.\n\n## Bonus\n\nOnce a year."].headings == ("Pay",)
    assert by_text["# Empty chapter"].headings == ()  # a bare heading is still findable
    assert by_text["The end."].headings == ("Last",)
    for current in chunks:  # no chunk reaches into the next top-level section
        assert "\n# " not in current.text


def test_sections_stay_apart_when_merging_is_off(count_tokens: TokenCounter) -> None:
    document = parse(HANDBOOK, "handbook.md")
    chunks = chunk(document, ChunkingOptions(chunk_tokens=80, merge_sections=False), count_tokens)
    assert {"Call in before nine.", "Twenty weeks.", "Paid monthly.", "Once a year."} <= {c.text for c in chunks}


def test_breadcrumbs_can_be_left_out_of_embed_text(count_tokens: TokenCounter) -> None:
    document = parse(HANDBOOK, "handbook.md")
    chunks = chunk(document, ChunkingOptions(chunk_tokens=80, heading_context=False), count_tokens)
    assert all(c.embed_text == c.text for c in chunks if c.kind == "text")
    assert chunks[1].headings == ("Leave", "Annual leave")  # still known, for citations


def test_pdf_chunks_know_their_pages() -> None:
    pages = [[f"Page {page} line {line} has some words on it." for line in range(12)] for page in (1, 2, 3)]
    document = parse(make_pdf(pages), "book.pdf")
    options = ChunkingOptions(chunk_tokens=48, overlap_tokens=8)
    chunks = chunk(document, options, approximate_tokens)
    check_chunks(document, chunks, options, approximate_tokens)
    for current in chunks:
        mentioned = {int(part.split()[0]) for part in current.text.split("Page ")[1:]}
        assert current.pages and set(current.pages) >= mentioned
    assert any(len(c.pages) == 2 for c in chunks)  # a chunk may run over a page break, and says so


# -- separators, boundaries and Zhipu's knobs --


def test_separators_are_where_pieces_are_cut(count_tokens: TokenCounter) -> None:
    text = " ".join(f"clause {i} of the contract applies here §" for i in range(40))
    document = parse(text.encode(), "contract.txt")
    options = ChunkingOptions(chunk_tokens=48, overlap_tokens=0, separators=("§",))
    chunks = chunk(document, options, count_tokens)
    check_chunks(document, chunks, options, count_tokens)
    assert all(c.text.endswith("§") for c in chunks)


def test_zhipu_custom_separator_always_cuts_and_is_left_out(count_tokens: TokenCounter) -> None:
    faq = "\n".join(f"Q{i}: how do I do thing {i}? A: like this, number {i}." for i in range(30))
    document = parse(faq.encode(), "faq.txt")
    options = ChunkingOptions.from_zhipu(sentence_size=300, custom_separator=["\n"])
    chunks = chunk(document, options, count_tokens)
    check_chunks(document, chunks, options, count_tokens)
    check_coverage(document, chunks)
    assert [c.text for c in chunks] == faq.split("\n")  # one per line although several would fit


def test_boundaries_between_paragraphs_cut_too(count_tokens: TokenCounter) -> None:
    document = parse(b"first record\n###\nsecond record\n\n###\n\nthird record", "records.txt")
    chunks = chunk(document, ChunkingOptions(boundaries=("###",)), count_tokens)
    assert [c.text for c in chunks] == ["first record", "second record", "third record"]


def test_zhipu_sentence_size_bounds_characters(count_tokens: TokenCounter) -> None:
    document = parse(" ".join(f"Short sentence {i}." for i in range(100)).encode(), "notes.txt")
    options = ChunkingOptions.from_zhipu(sentence_size=120)
    chunks = chunk(document, options, count_tokens)
    check_chunks(document, chunks, options, count_tokens)
    check_coverage(document, chunks)
    assert max(len(c.text) for c in chunks) > 90  # packed up to the limit, not one sentence each


@pytest.mark.parametrize(
    "make",
    [
        lambda: ChunkingOptions(chunk_tokens=8),
        lambda: ChunkingOptions(chunk_tokens=64, overlap_tokens=40),
        lambda: ChunkingOptions(max_chars=5),
        lambda: ChunkingOptions(separators=("",)),
        lambda: ChunkingOptions.from_zhipu(sentence_size=10),
        lambda: ChunkingOptions.from_zhipu(sentence_size=3000),
        lambda: ChunkingOptions.from_zhipu(custom_separator=[""]),
    ],
)
def test_options_out_of_range_are_a_400(make: object) -> None:
    with pytest.raises(InvalidFieldError):
        make()  # type: ignore[operator]


# -- identity --


def test_the_same_bytes_and_options_give_the_same_chunks() -> None:
    options = ChunkingOptions(chunk_tokens=64, overlap_tokens=8)
    first = chunk(parse(HANDBOOK, "handbook.md"), options, approximate_tokens)
    again = chunk(parse(HANDBOOK, "copy.md"), options, approximate_tokens)
    assert first == again
    changed = chunk(parse(HANDBOOK + b"\n\nOne more line.", "handbook.md"), options, approximate_tokens)
    assert {c.id for c in changed}.isdisjoint(c.id for c in first)  # ids name the bytes, not only the span


# -- work bounded by the document's size --


@pytest.mark.parametrize("length", [64, 1024])
def test_sixteen_custom_separators_over_two_megabytes_split_in_linear_time(length: int) -> None:
    """Boundaries were one alternation regex, which tries every separator at every position: 16 separators that
    share a long prefix with the text cost ~1,000 steps a character (3.6 s for 2 MB at 64 characters, 45 s at
    1,024, in a thread holding the GIL). Each is now found with ``str.find``, linear in the text."""
    separators = ["a" * (length - 1) + chr(ord("A") + i) for i in range(15)] + ["b" * length]
    count = 2_050_000 // (4 * length + 1)
    words = ["a" * (4 * length)] * count  # each position looks like the start of 15 separators
    for nth in range(1, 10):
        words[nth * count // 10] = separators[nth]  # nine real boundaries among the look-alikes
    text = " ".join(words)
    assert len(text) > 2_000_000
    document = parse(text.encode(), "notes.txt")
    options = ChunkingOptions(boundaries=tuple(separators))
    started = time.monotonic()
    chunks = chunk(document, options, approximate_tokens)
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"{elapsed:.1f} s"
    assert not any(separator in c.text for c in chunks for separator in separators)
    starts = {c.start for c in chunks}
    assert all(text.index(separators[i]) + length + 1 in starts for i in range(1, 10))  # cut after each boundary


def test_custom_separators_are_bounded() -> None:
    assert ChunkingOptions.from_zhipu(custom_separator=["x" * 64] * 16).boundaries == ("x" * 64,) * 16
    with pytest.raises(InvalidFieldError, match="at most 16 separators"):
        ChunkingOptions.from_zhipu(custom_separator=["x"] * 17)
    with pytest.raises(InvalidFieldError, match="at most 64 characters"):
        ChunkingOptions.from_zhipu(custom_separator=["x" * 65])
