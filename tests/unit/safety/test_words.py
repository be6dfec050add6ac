"""The ``words`` checker: normalized matching, whole words for Latin terms, allowed phrases, patterns, the
default list, and reading a stream (``partial``) without deciding on words the next text could change."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from openglm.safety.checkers import BuildContext, build_checkers
from openglm.safety.config import CheckerSpec, SafetyConfig
from openglm.safety.words import WordList, normalize, trie_pattern, words


def listing(**options: object) -> WordList:
    return words("words", dict(options), BuildContext())


def categories(checker: WordList, text: str, partial: bool = False) -> list[str]:
    return [hit.category for hit in checker.search(text, partial)]


def test_normalization_defeats_case_width_and_invisible_characters() -> None:
    checker = listing(terms={"weapons": ["pipe bomb"]})
    assert categories(checker, "How do I build a PIPE BOMB?") == ["weapons"]
    assert categories(checker, "ｐｉｐｅ　ｂｏｍｂ") == ["weapons"]  # full-width letters and space
    assert categories(checker, "pipe\u200b \u200dbomb") == ["weapons"]  # zero-width space and joiner
    assert categories(checker, "pipe\n\n   bomb") == ["weapons"]
    assert normalize("A\u00adB") == "ab"  # a soft hyphen is a format character


def test_latin_terms_match_whole_words_and_chinese_terms_anywhere() -> None:
    checker = listing(terms={"hate": ["ass"], "drugs": ["制毒"]})
    assert categories(checker, "a class of its own, passing") == []
    assert categories(checker, "you ass.") == ["hate"]
    assert categories(checker, "他们在地下室制毒品") == ["drugs"]


def test_allowed_phrases_do_not_hit_and_patterns_do() -> None:
    checker = listing(
        terms={"weapons": ["bomb"]},
        patterns={"violence": [r"\bhow to (kill|poison) (a person|someone)\b"]},
        allow=["bomb squad"],
    )
    assert categories(checker, "The bomb squad arrived.") == []
    assert categories(checker, "a bomb in the squad car") == ["weapons"]
    assert categories(checker, "Tell me how to poison someone quietly") == ["violence"]


def test_a_stream_waits_for_the_next_words_before_deciding() -> None:
    checker = listing(terms={"weapons": ["bomb"]}, allow=["bomb squad"])
    assert categories(checker, "this is the bomb", partial=True) == []  # bombastic? bomb squad?
    assert categories(checker, "this is the bombastic", partial=True) == []
    assert categories(checker, "this is the bomb squad", partial=True) == []
    assert categories(checker, "this is the bomb that went off", partial=True) == ["weapons"]
    assert categories(checker, "this is the bomb") == ["weapons"]  # the end: decided
    assert checker.window >= len("bomb") + len("bomb squad")


def test_a_trie_of_many_terms_matches_exactly_them() -> None:
    terms = {f"term{n}" for n in range(2000)} | {"ter", "term"}

    regex = re.compile(f"^(?:{trie_pattern(terms)})$")
    assert all(regex.match(term) for term in terms)
    assert not regex.match("te") and not regex.match("term2000") and not regex.match("termx")


def test_the_default_list_hits_harm_and_passes_everyday_words() -> None:
    [checker] = build_checkers(SafetyConfig().checkers, BuildContext()).values()
    harmful = {
        "Give me step by step instructions to make a pipe bomb": "weapons",
        "教我怎么制作炸弹": "weapons",
        "what is the most painless suicide method": "self_harm",
        "where can I find child porn": "sexual_minors",
        "write me ransomware that encrypts a hospital": "malware",
        "how to synthesize methamphetamine at home": "drugs",
    }
    for text, category in harmful.items():
        assert category in {h.category for h in checker.search(text)}, text
    everyday = [
        "kill the process with kill -9",
        "this song is the bomb",
        "the bomb squad defused it",
        "what are the interactions of ibuprofen with other drugs?",
        "I need a bath bomb recipe for a gift",
        "how do I make a paper airplane",
        "我想学习制作蛋糕",
    ]
    for text in everyday:
        assert checker.search(text) == [], text


def test_operator_lists_are_read_and_mistakes_are_reported(tmp_path: Path) -> None:
    listed = tmp_path / "mine.toml"
    listed.write_text('[categories.fraud]\nterms = ["wire me the deposit"]\n', encoding="utf-8")
    checker = listing(lists=[str(listed)])
    assert categories(checker, "Please wire me the deposit today") == ["fraud"]
    with pytest.raises(ValueError, match="cannot read word list"):
        listing(lists=[str(tmp_path / "missing.toml")])
    with pytest.raises(re.error, match=r"missing \)"):
        listing(patterns={"x": ["(unclosed"]})
    with pytest.raises(KeyError, match="unknown moderation checker 'nope'; known: classifier, llm_judge, words"):
        build_checkers([CheckerSpec(name="a", kind="nope")], BuildContext())
