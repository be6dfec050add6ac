"""Text for the full-text index, prepared the same way for documents and queries.

Both databases tokenize simply (FTS5 ``unicode61``, PostgreSQL's ``simple`` configuration): they split on
non-word characters and would index a run of Chinese characters as one "word", so a query could only match the
whole run. Here each CJK run becomes its overlapping bigrams (the usual approach for Chinese without a
dictionary), and other words are lower-cased, so ``北京天气`` is found by ``北京``.
"""

from __future__ import annotations

import re

WORD = re.compile(r"\w+", re.UNICODE)
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]+")
MAX_QUERY_TERMS = 64


def terms(text: str) -> list[str]:
    out: list[str] = []
    for word in WORD.findall(text.lower()):
        position = 0
        for run in CJK.finditer(word):
            out.extend(_split_other(word[position : run.start()]))
            out.extend(_bigrams(run.group()))
            position = run.end()
        out.extend(_split_other(word[position:]))
    return out


def _split_other(word: str) -> list[str]:
    return [word] if word else []


def _bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def search_text(*parts: str) -> str:
    """What the index stores for a chunk (its headings and its text)."""
    return " ".join(term for part in parts for term in terms(part))


def query_terms(query: str) -> list[str]:
    """A query's distinct terms, in order, at most ``MAX_QUERY_TERMS``."""
    return list(dict.fromkeys(terms(query)))[:MAX_QUERY_TERMS]


def fts5_query(terms_: list[str]) -> str:
    """Any of the terms (BM25 ranks chunks with more, and rarer, of them first); each quoted, so no term is
    read as FTS5 syntax."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms_)


def tsquery(terms_: list[str]) -> str:
    """The same for PostgreSQL's ``to_tsquery('simple', …)``: terms are word characters only, quoted anyway."""
    return " | ".join("'" + term.replace("'", "''") + "'" for term in terms_)
