"""Prompt-lookup drafts for speculative decoding.

At low concurrency a decode step is dominated by fixed costs, so checking a
few guessed tokens in the same batch is nearly free. The guess is what
followed the last time the sequence's latest n-gram appeared (in the prompt
or in its own output). Verification samples every position from the real
sampler chain and keeps going only while the sample equals the guess, so the
output is exactly what plain decoding would give for the same seed; a guess
only decides how many of those samples one step can take.
"""

from __future__ import annotations

NGRAM_MAX = 3
NGRAM_MIN = 2


def propose_draft(tokens: list[int], limit: int) -> list[int]:
    """Up to ``limit`` tokens that followed the most recent earlier match of the last n-gram."""
    if limit <= 0:
        return []
    for n in range(NGRAM_MAX, NGRAM_MIN - 1, -1):
        if len(tokens) <= n:
            continue
        pattern = tokens[-n:]
        first = pattern[0]
        for start in range(len(tokens) - n - 1, -1, -1):
            if tokens[start] == first and tokens[start : start + n] == pattern:
                return tokens[start + n : start + n + limit]
    return []


class DraftStats:
    """Per-sequence acceptance, so a sequence whose guesses keep failing stops paying for them."""

    def __init__(self) -> None:
        self.rate = 0.5
        self.cooldown = 0

    def should_try(self) -> bool:
        if self.cooldown > 0:
            self.cooldown -= 1
            return False
        return True

    def record(self, proposed: int, accepted: int) -> None:
        self.rate = 0.7 * self.rate + 0.3 * (accepted / proposed)
        if self.rate < 0.25:
            self.cooldown = 8
            self.rate = 0.3
