"""Reciprocal rank fusion: one ranking from several, by rank alone (Cormack et al., 2009).

Scores from BM25 and cosine similarity are on different scales; ranks are not. Each list contributes
``1 / (k + rank)`` for every item it ranks; ``k = 60`` damps the weight of the very top ranks, as in the paper.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

K = 60
T = TypeVar("T", bound=Hashable)


def reciprocal_rank_fusion(rankings: Sequence[Sequence[T]], k: int = K) -> list[tuple[T, float]]:
    """Items of every ranking (best first), fused, best first; ties keep the order of first appearance."""
    scores: dict[T, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])
