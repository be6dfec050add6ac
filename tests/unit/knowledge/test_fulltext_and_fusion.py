"""Search text and query terms (CJK as bigrams), and reciprocal rank fusion."""

from __future__ import annotations

from openglm.knowledge.fulltext import fts5_query, query_terms, search_text, terms, tsquery
from openglm.knowledge.fusion import reciprocal_rank_fusion


def test_words_are_lower_cased_and_cjk_runs_become_bigrams() -> None:
    assert terms("Beijing 北京天气, 2024年") == ["beijing", "北京", "京天", "天气", "2024", "年"]
    assert search_text("Weather", "晴") == "weather 晴"


def test_query_terms_are_distinct_and_quoted_for_each_engine() -> None:
    assert query_terms("the weather, THE weather") == ["the", "weather"]
    assert fts5_query(["a", 'b"c']) == '"a" OR "b""c"'
    assert tsquery(["a", "b'c"]) == "'a' | 'b''c'"
    assert query_terms("") == [] and query_terms("!!! ???") == []


def test_fusion_rewards_agreement_and_keeps_everything() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "d"]])
    assert [item for item, _ in fused] == ["b", "a", "d", "c"]
    assert fused[0][1] == 1 / 62 + 1 / 61


def test_fusion_of_one_ranking_keeps_its_order() -> None:
    assert [item for item, _ in reciprocal_rank_fusion([["x", "y", "z"]])] == ["x", "y", "z"]
