"""Search text and query terms (CJK as bigrams), and reciprocal rank fusion."""

from __future__ import annotations

from openglm.knowledge.fulltext import fts5_query, query_terms, search_text, terms, tsquery
from openglm.knowledge.fusion import reciprocal_rank_fusion


def test_words_are_lower_cased_stemmed_and_cjk_runs_become_bigrams() -> None:
    assert terms("Beijing 北京天气, 2024年") == ["beij", "北京", "京天", "天气", "2024", "年"]
    assert terms("Returns returned returning") == ["return"] * 3
    assert search_text("Weather", "晴") == "weather 晴"


def test_identifiers_also_give_their_parts() -> None:
    assert terms("copy_file") == ["copy_fil", "copi", "file"]
    assert terms("BsdDbShelf") == ["bsddbshelf", "bsd", "db", "shelf"]
    assert terms("HTTPServer") == ["httpserver", "http", "server"]


def test_query_terms_are_distinct_without_stop_words_and_quoted_for_each_engine() -> None:
    assert query_terms("How does the weather, THE weather") == ["weather"]
    assert query_terms("the of") == ["the", "of"]  # nothing but stop words: kept
    assert fts5_query(["a", 'b"c']) == '"a" OR "b""c"'
    assert tsquery(["a", "b'c"]) == "'a' | 'b''c'"
    assert query_terms("") == [] and query_terms("!!! ???") == []


def test_fusion_rewards_agreement_and_keeps_everything() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "d"]])
    assert [item for item, _ in fused] == ["b", "a", "d", "c"]
    assert fused[0][1] == 1 / 62 + 1 / 61


def test_fusion_of_one_ranking_keeps_its_order() -> None:
    assert [item for item, _ in reciprocal_rank_fusion([["x", "y", "z"]])] == ["x", "y", "z"]
