"""The document walked as sections (blocks under one heading path) and tables, each cut into draft chunk spans."""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from .document import Heading, ParsedDocument, Table, TableRow, TextBlock, trimmed
from .options import ChunkingOptions
from .splitting import Budget, TokenCounter, Unit, pack, split_units

PATH_SEPARATOR = " > "


@dataclass(frozen=True)
class Draft:
    kind: Literal["text", "table"]
    start: int
    end: int
    headings: tuple[str, ...]
    prefix: str  # what is embedded before text[start:end]
    whole_section: bool = False  # the section's only chunk: it may join a neighbour


@dataclass(frozen=True)
class _Section:
    headings: tuple[str, ...]
    blocks: tuple[TextBlock | Heading, ...] | Table  # a heading here is one with nothing under it


def section_drafts(document: ParsedDocument, options: ChunkingOptions, count: TokenCounter) -> list[Draft]:
    drafts: list[Draft] = []
    for section in _sections(document):
        headings = section.headings
        if isinstance(section.blocks, Table):
            drafts.extend(_table_drafts(document.text, section.blocks, headings, options, count))
        else:
            drafts.extend(_text_drafts(document.text, section.blocks, headings, options, count))
    return drafts


def _sections(document: ParsedDocument) -> Iterator[_Section]:
    """Runs of text blocks and single tables, in order, with the heading path each lies under.

    A heading with nothing under it before the next heading of its level or above is yielded as text of its own,
    so a document of bare headings still has chunks.
    """
    path: list[Heading] = []
    run: list[TextBlock | Heading] = []
    empty: Heading | None = None  # the last heading, while nothing has come under it
    for block in document.blocks:
        if isinstance(block, Heading):
            if run:
                yield _Section(_titles(path), tuple(run))
            run = []
            if empty is not None and block.level <= empty.level:
                yield _Section(_titles(path[:-1]), (empty,))
            while path and path[-1].level >= block.level:
                path.pop()
            path.append(block)
            empty = block
            continue
        empty = None
        if isinstance(block, Table):
            if run:
                yield _Section(_titles(path), tuple(run))
            run = []
            yield _Section(_titles(path), block)
        else:
            run.append(block)
    if run:
        yield _Section(_titles(path), tuple(run))
    if empty is not None:
        yield _Section(_titles(path[:-1]), (empty,))


def _titles(path: Sequence[Heading]) -> tuple[str, ...]:
    return tuple(heading.title for heading in path)


def text_prefix(headings: tuple[str, ...]) -> str:
    return PATH_SEPARATOR.join(headings) + "\n\n" if headings else ""


def context_prefix(headings: tuple[str, ...], head: str, options: ChunkingOptions, count: TokenCounter) -> str:
    """The breadcrumbs (when ``heading_context``) and a table's header, embedded before each chunk's text.

    Held to half the budget: outer headings go first when the path is too long; a header too long alone is cut.
    """
    limit = options.chunk_tokens // 2
    crumbs = headings if options.heading_context else ()
    while True:
        prefix = text_prefix(crumbs) + (head + "\n" if head else "")
        if not prefix or count(prefix) <= limit:
            return prefix
        if not crumbs:
            return _cut_to(head, limit, count) + "\n"
        crumbs = crumbs[1:]


def _cut_to(text: str, limit: int, count: TokenCounter) -> str:
    low, high = 0, len(text)  # the longest prefix within ``limit`` tokens has a length in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        if count(text[:middle] + "\n") <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def _text_drafts(
    text: str,
    blocks: Sequence[TextBlock | Heading],
    headings: tuple[str, ...],
    options: ChunkingOptions,
    count: TokenCounter,
) -> list[Draft]:
    budget = Budget(text, context_prefix(headings, "", options, count), options.chunk_tokens, options.max_chars, count)
    spans: list[tuple[int, int]] = []
    for run in _runs(text, blocks, options.boundaries):
        units = [unit for start, end in run for unit in split_units(budget, start, end, options.separators)]
        spans.extend(pack(budget, units, options.overlap_tokens, options.separators))
    whole = len(spans) == 1
    return [Draft("text", start, end, headings, budget.prefix, whole) for start, end in spans]


def _runs(text: str, blocks: Sequence[TextBlock | Heading], boundaries: tuple[str, ...]) -> list[list[tuple[int, int]]]:
    """The section's spans, split wherever a boundary occurs (inside a block or between two): runs never mix."""
    if not boundaries:
        return [[(block.start, block.end) for block in blocks]]
    runs: list[list[tuple[int, int]]] = [[]]
    previous_end: int | None = None
    for block in blocks:
        if previous_end is not None and next(boundary_matches(text, previous_end, block.start, boundaries), None):
            runs.append([])
        position = block.start
        for start, end in boundary_matches(text, block.start, block.end, boundaries):
            runs[-1].append((position, start))
            runs.append([])
            position = end
        runs[-1].append((position, block.end))
        previous_end = block.end
    return [run for run in runs if any(trimmed(text, *span) for span in run)]


def boundary_matches(text: str, start: int, end: int, boundaries: Sequence[str]) -> Iterator[tuple[int, int]]:
    """The spans of ``boundaries`` in ``text[start:end]``, left to right without overlap; where several start at
    the same place, the longest.

    Each boundary's next occurrence is found with ``str.find`` and looked for again only once the scan has passed
    it, so the work is linear in the text for each boundary. (An alternation regex of the boundaries tried every
    boundary at every position: 16 boundaries sharing a prefix with the text took 3.6 s over 2 MB at 64
    characters, 45 s at 1,024.)
    """
    queue = [
        (at, -len(boundary), boundary) for boundary in set(boundaries) if (at := text.find(boundary, start, end)) != -1
    ]
    heapq.heapify(queue)  # each boundary's next occurrence; the first (and at a tie the longest) on top
    while queue:
        at, negative_length, _ = queue[0]
        position = at - negative_length
        yield at, position
        while queue and queue[0][0] < position:  # passed: look again after the match
            _, _, boundary = heapq.heappop(queue)
            if (again := text.find(boundary, position, end)) != -1:
                heapq.heappush(queue, (again, -len(boundary), boundary))


def _table_drafts(
    text: str, table: Table, headings: tuple[str, ...], options: ChunkingOptions, count: TokenCounter
) -> list[Draft]:
    """Whole rows under the repeated header; a row too big for a chunk is cut between cells (then inside them)."""
    if not table.rows:  # a header and nothing else: the header is the content
        budget = Budget(
            text, context_prefix(headings, "", options, count), options.chunk_tokens, options.max_chars, count
        )
        units = (
            [unit]
            if (unit := budget.unit(table.start, table.end))
            else _cell_units(budget, table.header, options.separators)
        )
        return [Draft("table", start, end, headings, budget.prefix) for start, end in pack(budget, units)]
    head = text[table.start : table.rows[0].start].rstrip()  # the header row, and the delimiter row under it
    budget = Budget(
        text, context_prefix(headings, head, options, count), options.chunk_tokens, options.max_chars, count
    )
    spans: list[tuple[int, int]] = []
    rows: list[Unit] = []
    for row in table.rows:
        if (unit := budget.unit(row.start, row.end)) is not None:
            rows.append(unit)
            continue
        spans.extend(pack(budget, rows))
        rows = []
        spans.extend(pack(budget, _cell_units(budget, row, options.separators)))
    spans.extend(pack(budget, rows))
    return [Draft("table", start, end, headings, budget.prefix) for start, end in spans]


def _cell_units(budget: Budget, row: TableRow, separators: tuple[str, ...]) -> list[Unit]:
    units: list[Unit] = []
    for cell in row.cells:
        if cell.end > cell.start:
            units.extend(split_units(budget, cell.start, cell.end, separators))
    return units
