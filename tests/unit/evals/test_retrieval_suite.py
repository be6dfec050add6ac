"""The retrieval suite's pure parts: which excerpts an answer cites, and the labelled set it builds a base from."""

from __future__ import annotations

from openglm.evals.corpus import TOPICS
from openglm.evals.suites.retrieval import RetrievalSuite, cited_indexes, labelled_set


def test_citations_are_read_in_every_common_form() -> None:
    assert cited_indexes("Use run() [2]. It returns a CompletedProcess [1, 3][2].") == [2, 1, 3]
    assert cited_indexes("见【4】和[5，6]") == [4, 5, 6]
    assert cited_indexes("No excerpt says so; a list [a] is not a citation.") == []


def test_a_sampled_base_is_the_same_for_every_seed_and_holds_each_gold() -> None:
    documents, questions = labelled_set(0, 40)
    again, other_questions = labelled_set(5, 40)
    assert documents == again and len(documents) == 40
    names = {document.name for document in documents}
    assert questions and {q.gold for q in questions} <= names and {q.gold for q in other_questions} <= names
    assert [q.text for q in questions] != [q.text for q in other_questions]  # the seed orders the questions


def test_tasks_are_held_out_and_grouped_by_topic() -> None:
    tasks = RetrievalSuite(questions=60).tasks(0)
    assert len(tasks) == 60 and len({t.id for t in tasks}) == 60
    assert {t.split for t in tasks} == {"heldout"} and {t.family for t in tasks} <= set(TOPICS)
    assert len({t.family for t in tasks}) >= 5
