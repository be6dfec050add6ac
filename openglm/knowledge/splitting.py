"""Spans of one document text cut into pieces that fit a token budget, then packed into chunk spans.

Everything here works on ``(start, end)`` offsets into the document text and never copies or rewrites text, so a
chunk's text is always exactly ``text[start:end]``. Sizes are measured with the caller's tokenizer on the text that
will actually be embedded (context prefix included); sums of piece sizes are only used as an estimate, and every
chunk is checked with one real count before it is accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from .document import trimmed

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class Unit:
    """A piece that fits in a chunk on its own; ``tokens`` estimates its share of a chunk's count."""

    start: int
    end: int
    tokens: int


@dataclass(frozen=True)
class Budget:
    """What one chunk may hold: ``prefix + text[start:end]`` within ``chunk_tokens``, the span within ``max_chars``."""

    text: str
    prefix: str  # the context embedded before the chunk's own text (breadcrumbs, a table's header)
    chunk_tokens: int
    max_chars: int | None
    count: TokenCounter
    prefix_tokens: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix_tokens", self.count(self.prefix) if self.prefix else 0)

    @property
    def room(self) -> int:
        return self.chunk_tokens - self.prefix_tokens

    def chars_fit(self, start: int, end: int) -> bool:
        return self.max_chars is None or end - start <= self.max_chars

    def tokens(self, start: int, end: int) -> int:
        """The real count of what would be embedded for this span."""
        return self.count(self.prefix + self.text[start:end])

    def fits(self, start: int, end: int) -> bool:
        return self.chars_fit(start, end) and self.tokens(start, end) <= self.chunk_tokens

    def unit(self, start: int, end: int) -> Unit | None:
        """The span as a Unit if it fits in a chunk by itself, else None."""
        if not self.chars_fit(start, end):
            return None
        tokens = self.tokens(start, end)
        return Unit(start, end, max(tokens - self.prefix_tokens, 1)) if tokens <= self.chunk_tokens else None


def split_units(budget: Budget, start: int, end: int, separators: Sequence[str]) -> list[Unit]:
    """Cuts a span at the first separator that occurs in it, recursing with the later ones on pieces too big.

    A separator stays at the end of the piece before it ("。" ends its sentence); whitespace at the edges of
    pieces is dropped. A piece with no separator left is cut where the budget runs out (``hard_split``).
    """
    span = trimmed(budget.text, start, end)
    if span is None:
        return []
    if (unit := budget.unit(*span)) is not None:
        return [unit]
    for position, separator in enumerate(separators):
        if budget.text.find(separator, span[0], span[1]) != -1:
            later = separators[position + 1 :]
            return [
                unit for piece in _pieces(budget.text, *span, separator) for unit in split_units(budget, *piece, later)
            ]
    return hard_split(budget, *span)


def _pieces(text: str, start: int, end: int, separator: str) -> Iterator[tuple[int, int]]:
    while (found := text.find(separator, start, end)) != -1:
        yield start, found + len(separator)
        start = found + len(separator)
    yield start, end


def hard_split(budget: Budget, start: int, end: int) -> list[Unit]:
    """Longest fitting prefixes, found by bisection: for a run of text with no separator in it (a long URL)."""
    units: list[Unit] = []
    while (span := trimmed(budget.text, start, end)) is not None:
        start = span[0]
        low, high = start + 1, span[1]  # the longest fitting end lies in [low, high]; one character always fits
        while low < high:
            middle = (low + high + 1) // 2
            if budget.unit(start, middle) is not None:
                low = middle
            else:
                high = middle - 1
        piece = trimmed(budget.text, start, low) or (start, low)
        units.append(budget.unit(*piece) or Unit(*piece, 1))
        start = low
    return units


def pack(
    budget: Budget, units: Sequence[Unit], overlap_tokens: int = 0, separators: Sequence[str] = ()
) -> list[tuple[int, int]]:
    """Greedy spans of consecutive units, each within the budget; each span after the first starts with the end
    of the one before it (up to ``overlap_tokens``, from a separator if one is near) when that still fits."""
    spans: list[tuple[int, int]] = []
    first, carry = 0, None  # carry: where the overlap taken from the previous chunk starts, and its tokens
    while first < len(units):
        start, used = (units[first].start, 0) if carry is None else carry
        last = _extend(budget, units, first, start, used)
        # The estimate may be optimistic: give back units, then the overlap; a unit alone was measured to fit.
        while (last > first or start != units[first].start) and not budget.fits(start, units[last].end):
            if last > first:
                last -= 1
            else:
                start = units[first].start
        spans.append((start, units[last].end))
        carry = _overlap(budget, units, first, last, overlap_tokens, separators) if overlap_tokens else None
        if carry is not None and carry[0] <= start:
            carry = None
        first = last + 1
    return spans


def _extend(budget: Budget, units: Sequence[Unit], first: int, start: int, used: int) -> int:
    """The last unit that can join a chunk starting at ``start`` with ``units[first]``, by the estimate."""
    last, total = first, used + units[first].tokens
    while last + 1 < len(units):
        following = units[last + 1]
        if total + following.tokens > budget.room or not budget.chars_fit(start, following.end):
            break
        last, total = last + 1, total + following.tokens
    return last


def _overlap(
    budget: Budget, units: Sequence[Unit], first: int, last: int, limit: int, separators: Sequence[str]
) -> tuple[int, int] | None:
    """Where the next chunk should start to repeat at most ``limit`` tokens of this one, and that overlap's size.

    Whole units are preferred; when even the last unit is too big, a tail of it: from just after a separator
    (a clause) if one is in reach, else from the start of a word.
    """
    best: tuple[int, int] | None = None
    end = units[last].end
    for index in range(last, first, -1):
        tokens = budget.count(budget.text[units[index].start : end])
        if tokens > limit:
            break
        best = (units[index].start, tokens)
    if best is not None:
        return best
    return _tail(budget, units[last].start, end, limit, separators)


def _tail(budget: Budget, start: int, end: int, limit: int, separators: Sequence[str]) -> tuple[int, int] | None:
    low, high = start + 1, end  # the earliest position whose tail fits lies in [low, high]
    while low < high:
        middle = (low + high) // 2
        if budget.count(budget.text[middle:end]) <= limit:
            high = middle
        else:
            low = middle + 1
    position = _after_separator(budget.text, low, end, separators) or _word_start(budget.text, low, end)
    span = trimmed(budget.text, position, end)
    return None if span is None else (span[0], budget.count(budget.text[span[0] : end]))


def _after_separator(text: str, position: int, end: int, separators: Sequence[str]) -> int | None:
    """Just after the first separator (other than plain whitespace) in ``text[position:end]``, if text follows it."""
    cuts = [
        found + len(separator)
        for separator in separators
        if separator.strip() and (found := text.find(separator, position, end)) != -1
    ]
    cut = min(cuts, default=None)
    return cut if cut is not None and trimmed(text, cut, end) is not None else None


def _word_start(text: str, position: int, end: int) -> int:
    """``position`` moved forward to the start of a word, unless it is one or the text has no spaces (CJK)."""
    if position == 0 or text[position - 1].isspace():
        return position
    for index in range(position, end):
        if text[index].isspace():
            return index
    return position
