"""Text for the full-text index, prepared the same way for documents and queries.

Both databases tokenize simply (FTS5 ``unicode61``, PostgreSQL's ``simple`` configuration), so the work is done
here, once, identically for both:

- a run of Chinese (or Japanese, Korean) characters becomes its overlapping bigrams — a database would index the
  whole run as one "word", and a query could only match the run exactly; with bigrams ``北京天气`` is found by
  ``北京`` (the usual dictionary-free approach for Chinese);
- other words are lower-cased and stemmed (Snowball English: ``returns`` and ``returned`` meet ``return``);
- identifiers are also split into their parts (``copy_file`` and ``copyFile`` give ``copy`` and ``file`` as well as
  the whole), which matters for technical documents;
- queries leave out English stop words (unless nothing else is left), which only add noise to an OR query.
"""

from __future__ import annotations

import re
from functools import lru_cache

import snowballstemmer

WORD = re.compile(r"\w+", re.UNICODE)
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]+")
CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
MAX_QUERY_TERMS = 64
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "should",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)
_stemmer = snowballstemmer.stemmer("english")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    return str(_stemmer.stemWord(word))


def terms(text: str) -> list[str]:
    out: list[str] = []
    for word in WORD.findall(text):
        position = 0
        for run in CJK.finditer(word):
            out.extend(_word_terms(word[position : run.start()]))
            out.extend(_bigrams(run.group()))
            position = run.end()
        out.extend(_word_terms(word[position:]))
    return out


def _word_terms(word: str) -> list[str]:
    if not word:
        return []
    whole = stem(word.lower())
    parts = [part for piece in word.split("_") for part in CAMEL.findall(piece)]
    if len(parts) <= 1:
        return [whole]
    return [whole, *(stem(part.lower()) for part in parts)]


def _bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def search_text(*parts: str) -> str:
    """What the index stores for a chunk (its headings and its text)."""
    return " ".join(term for part in parts for term in terms(part))


def query_terms(query: str) -> list[str]:
    """A query's distinct terms, in order, without stop words (unless only stop words were asked), at most
    ``MAX_QUERY_TERMS``."""
    words = WORD.findall(query)
    content = [word for word in words if word.lower() not in STOP_WORDS] or words
    return list(dict.fromkeys(terms(" ".join(content))))[:MAX_QUERY_TERMS]


def fts5_query(terms_: list[str]) -> str:
    """Any of the terms (BM25 ranks chunks with more, and rarer, of them first); each quoted, so no term is
    read as FTS5 syntax."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms_)


def tsquery(terms_: list[str]) -> str:
    """The same for PostgreSQL's ``to_tsquery('simple', …)``: terms are word characters only, quoted anyway."""
    return " | ".join("'" + term.replace("'", "''") + "'" for term in terms_)
