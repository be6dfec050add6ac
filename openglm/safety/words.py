"""The ``words`` checker: the operator's word and pattern lists, by category.

Options: ``lists`` (TOML files — a path or ``package:<module>/<file>`` — each ``[categories.<name>]`` with
``terms`` and ``patterns``), inline ``terms`` / ``patterns`` (``{category = [...]}``), ``window`` (the longest
text a pattern may match, default 100 characters) and ``allow`` (phrases inside which a term does not count: "bomb
squad" for "bomb").

Texts are compared normalized (NFKC, case-folded, zero-width and other format characters dropped, runs of spaces
as one), so full-width letters, capitals and invisible joiners do not slip past. A term that starts or ends with a
letter or digit matches whole words only at that end ("ass" not in "class"); other terms (Chinese) match anywhere.
Terms compile into one trie-shaped regular expression per category, so a list of thousands of terms costs about
what a short one does."""

from __future__ import annotations

import asyncio
import functools
import re
import tomllib
import unicodedata
from pathlib import Path
from typing import Any

import regex

from ..catalog import resolve_source
from .checkers import CHECKER_KINDS, BuildContext, Hit

_SPACES = re.compile(r"\s+")
_ASCII_WORD = re.compile(r"[a-z0-9]")
# Longer texts are searched in a worker thread: the event loop serves other requests meanwhile.
_THREAD_THRESHOLD = 64_000


@functools.cache
def _format_characters() -> dict[int, str | None]:
    """Invisible format characters (Unicode category Cf: zero-width joiners, soft hyphens, direction marks)
    dropped; the zero-width space read as the space it stands for. Built on first use (a pass over Unicode)."""
    table: dict[int, str | None] = {cp: None for cp in range(0x110000) if unicodedata.category(chr(cp)) == "Cf"}
    table[0x200B] = " "
    return table


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().translate(_format_characters())
    return _SPACES.sub(" ", text)


def trie_pattern(terms: set[str]) -> str:
    """One regular expression matching exactly ``terms``, shaped as their trie (shared prefixes read once)."""
    trie: dict[str, Any] = {}
    for term in terms:
        node = trie
        for ch in term:
            node = node.setdefault(ch, {})
        node[""] = {}

    def render(node: dict[str, Any]) -> str:
        branches = [re.escape(ch) + render(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return render(trie)


def bounded(terms: set[str]) -> str:
    """The terms, whole words at each end that is a letter or digit (a Latin word inside a longer one is not it)."""
    groups: dict[tuple[bool, bool], set[str]] = {}
    for term in terms:
        groups.setdefault((bool(_ASCII_WORD.match(term[0])), bool(_ASCII_WORD.match(term[-1]))), set()).add(term)
    parts = []
    for (start, end), group in sorted(groups.items()):
        before = r"(?<![a-z0-9])" if start else ""
        after = r"(?![a-z0-9])" if end else ""
        parts.append(f"{before}(?:{trie_pattern(group)}){after}")
    return "|".join(parts)


class WordList:
    incremental = True

    def __init__(
        self,
        name: str,
        terms: dict[str, set[str]],
        patterns: dict[str, list[str]],
        *,
        window: int = 100,
        allow: set[str] | None = None,
    ):
        self.name = name
        # Every category's terms in one trie (the category looked up from what matched: one pass over the text,
        # not one per category), then each category's patterns as a group of its own.
        self.term_category: dict[str, str] = {}
        for category in sorted(terms):
            for term in terms[category]:
                self.term_category.setdefault(normalize(term).strip(), category)
        self.term_category.pop("", None)
        longest = max([1, *(len(t) for t in self.term_category)])
        alternatives = [f"(?P<terms>{bounded(set(self.term_category))})"] if self.term_category else []
        self.categories: list[str] = []
        for category in sorted(patterns):
            for pattern in patterns[category]:
                if "(?P<" in pattern:
                    raise ValueError(f"moderation checker {name!r}: patterns may not name groups: {pattern!r}")
                re.compile(pattern)  # a broken pattern is the operator's error, reported at startup with its text
                regex.compile(pattern)
            if patterns[category]:
                alternatives.append(f"(?P<c{len(self.categories)}>{'|'.join(f'(?:{p})' for p in patterns[category])})")
                self.categories.append(category)
                longest = max(longest, window)
        combined = "|".join(alternatives) or r"(?!)"
        # The standard library's engine searches whole texts (2-3x faster here than the regex package's on this
        # alternation); the regex package's partial matching answers what a stream must hold back.
        self.regex = re.compile(combined)
        self.partial = regex.compile(combined)
        self.allow = [normalize(a).strip() for a in allow or set() if a.strip()]
        # Mid-stream, a hit this close to the end waits for more text: the next character may make it another
        # word (bomb → bombastic), the next words an allowed phrase (bomb → bomb squad).
        self.lookahead = max([1, *(len(a) for a in self.allow)])
        # The longest stretch a hit and what decides it span (how far back a stream's end is searched), and what
        # of the text already released a stream keeps: enough to see an allowed phrase or a word begin before.
        self.window = longest + self.lookahead
        self.before = self.lookahead + 1

    async def check(self, text: str, *, partial: bool = False) -> list[Hit]:
        if len(text) > _THREAD_THRESHOLD:
            return await asyncio.to_thread(self.search, text, partial)
        return self.search(text, partial)

    def search(self, text: str, partial: bool = False) -> list[Hit]:
        normalized = normalize(text)
        hits = []
        for match in self.regex.finditer(normalized):
            if partial and len(normalized) - match.end() < self.lookahead:
                continue
            if self._allowed(normalized, match.start(), match.end()):
                continue
            group = next(name for name, value in match.groupdict().items() if value is not None)
            matched = match.group()
            category = self.term_category[matched] if group == "terms" else self.categories[int(group[1:])]
            hits.append(Hit(self.name, category, matched))
        return hits

    def holdback(self, text: str) -> int:
        """How many of ``text``'s last characters a stream must not release yet: from the start of whatever the
        next text could still make a hit — the beginning of a term or pattern (partial matching: "the pi" could
        become "the pipe bomb") or a hit so near the end that an allowed phrase could still cover it. Usually
        none or part of a word, so answers stream on as they are written."""
        normalized = normalize(text)
        end = len(normalized)
        held_from = end
        for match in self.partial.finditer(normalized, pos=max(0, end - self.window), partial=True):
            if match.partial or end - match.end() < self.lookahead:
                held_from = min(held_from, match.start())
        return _raw_tail(text, end - held_from)

    def _allowed(self, text: str, start: int, end: int) -> bool:
        for phrase in self.allow:
            lo = max(0, end - len(phrase))
            at = text.find(phrase, lo, start + len(phrase))
            while at != -1 and at <= start:
                if at + len(phrase) >= end:
                    return True
                at = text.find(phrase, at + 1, start + len(phrase))
        return False


def _raw_tail(text: str, normalized_chars: int) -> int:
    """The fewest last characters of ``text`` whose normalized form is at least ``normalized_chars`` long (they
    differ where normalization drops invisible characters or collapses spaces)."""
    if normalized_chars <= 0:
        return 0
    k = normalized_chars
    while k < len(text) and len(normalize(text[-k:])) < normalized_chars:
        k += 1
    return min(k, len(text))


def read_list(source: str) -> dict[str, Any]:
    path = Path(resolve_source(source))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read word list {source}: {exc}") from exc
    categories = data.get("categories", {})
    if not isinstance(categories, dict):
        raise ValueError(f"word list {source}: [categories.<name>] tables expected")
    return categories


@CHECKER_KINDS.register("words")
def words(name: str, options: dict[str, Any], context: BuildContext) -> WordList:
    terms: dict[str, set[str]] = {}
    patterns: dict[str, list[str]] = {}
    allow: set[str] = set(options.get("allow", []))
    tables = [table for source in options.get("lists", []) for table in read_list(source).items()]
    tables += [(c, {"terms": t}) for c, t in options.get("terms", {}).items()]
    tables += [(c, {"patterns": p}) for c, p in options.get("patterns", {}).items()]
    for category, table in tables:
        terms.setdefault(category, set()).update(table.get("terms", []))
        patterns.setdefault(category, []).extend(table.get("patterns", []))
        allow.update(table.get("allow", []))
    return WordList(name, terms, patterns, window=int(options.get("window", 100)), allow=allow)
