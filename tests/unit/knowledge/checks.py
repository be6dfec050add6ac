"""The invariants every parsed document and every chunking of it must keep."""

from __future__ import annotations

from openglm.knowledge import Chunk, ChunkingOptions, Heading, ParsedDocument, Table, TokenCounter


def check_chunks(document: ParsedDocument, chunks: list[Chunk], options: ChunkingOptions, count: TokenCounter) -> None:
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert len({c.id for c in chunks}) == len(chunks)
    for current in chunks:
        assert document.text[current.start : current.end] == current.text  # the citation span is exact
        assert current.text and current.text == current.text.strip()
        assert current.embed_text.endswith(current.text)
        assert current.tokens == count(current.embed_text) <= options.chunk_tokens
        if options.max_chars is not None:
            assert len(current.text) <= options.max_chars
    starts = [c.start for c in chunks]
    assert starts == sorted(starts)


def check_coverage(document: ParsedDocument, chunks: list[Chunk]) -> None:
    """No text is lost: every non-space character is in some chunk, except headings (they are breadcrumbs), the
    header of a table with rows (it is in every chunk's embed_text) and a table's pipes and delimiter row."""
    covered = bytearray(len(document.text))
    for current in chunks:
        covered[current.start : current.end] = b"\x01" * (current.end - current.start)
    spans: list[tuple[int, int]] = []
    for block in document.blocks:
        if isinstance(block, Table):
            rows = block.rows or (block.header,)  # a table of only a header is its own content
            spans.extend((cell.start, cell.end) for row in rows for cell in row.cells)
        elif not isinstance(block, Heading):
            spans.append((block.start, block.end))
    for start, end in spans:
        for position in range(start, end):
            if not document.text[position].isspace():
                assert covered[position], f"{document.text[position]!r} at {position} is in no chunk"


def well_formed(document: ParsedDocument) -> ParsedDocument:
    """Blocks in text order, disjoint, inside the text, with no whitespace at their edges; cells inside rows."""
    previous_end = 0
    for block in document.blocks:
        assert previous_end <= block.start < block.end <= len(document.text)
        span = document.text[block.start : block.end]
        assert span == span.strip()
        previous_end = block.end
        if isinstance(block, Heading):
            assert block.title in " ".join(span.split())
        if isinstance(block, Table):
            for row in (block.header, *block.rows):
                assert block.start <= row.start < row.end <= block.end
                assert all(row.start <= cell.start <= cell.end <= row.end for cell in row.cells)
    return document
