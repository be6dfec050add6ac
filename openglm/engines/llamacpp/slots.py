"""Sequence slots and prefix reuse over llama.cpp's unified KV cache.

A finished sequence leaves its KV cells in place and its slot is remembered
with the tokens it holds. A new sequence whose prompt starts the same way
(a shared system prompt, the earlier turns of a conversation) takes over
that slot and skips those tokens, or, when the longest match is a sequence
still running, shares its cells (``llama_memory_seq_cp`` tags the cells with
a second sequence id; nothing is copied). Cached slots are evicted oldest
first when a slot or KV room is needed.

KV values depend on the LoRA adapter a sequence is decoded with, so every
match is keyed by the adapter too (``LoraKey``: None for the base model): a
prompt served with an adapter never reuses cells computed without it, with
another adapter, or with another scale, and the other way round.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import llama_cpp as lc

if TYPE_CHECKING:
    from .adapters import LoraKey

MIN_REUSE = 8  # shorter matches are not worth a slot


def common_prefix(held: Sequence[int], prompt: Sequence[int], limit: int) -> int:
    n = min(len(held), limit)
    i = 0
    while i < n and held[i] == prompt[i]:
        i += 1
    return i


def _longest_match(
    candidates: Iterable[tuple[int, LoraKey, Sequence[int]]], lora: LoraKey, prompt: Sequence[int], limit: int
) -> tuple[int | None, int]:
    best, best_len = None, 0
    for slot, held_lora, held in candidates:
        if held_lora != lora:
            continue
        length = common_prefix(held, prompt, limit)
        if length > best_len:
            best, best_len = slot, length
    return best, best_len


class SlotPool:
    def __init__(self, memory: lc.llama_memory_t, n_slots: int, *, reuse: bool = True):
        self.memory = memory
        # Sharing cells between sequences needs the unified KV cache.
        self.reuses = reuse
        self.min_reuse = MIN_REUSE if reuse else 1 << 30
        self._free = list(range(n_slots - 1, -1, -1))
        self._cached: OrderedDict[int, tuple[LoraKey, list[int]]] = OrderedDict()

    @property
    def cached_tokens(self) -> int:
        return sum(len(tokens) for _, tokens in self._cached.values())

    @property
    def n_cached(self) -> int:
        return len(self._cached)

    def _cached_items(self) -> list[tuple[int, LoraKey, list[int]]]:
        return [(slot, lora, tokens) for slot, (lora, tokens) in self._cached.items()]

    def best_cached(self, prompt: list[int], lora: LoraKey) -> tuple[int | None, int]:
        """The cached slot that holds the longest start of ``prompt`` under ``lora``, and how many tokens."""
        slot, length = _longest_match(self._cached_items(), lora, prompt, len(prompt) - 1)
        return (slot, length) if length >= self.min_reuse else (None, 0)

    def acquire(
        self, prompt: list[int], running: Iterable[tuple[int, LoraKey, Sequence[int]]], lora: LoraKey
    ) -> tuple[int, int] | None:
        """A slot for ``prompt`` (decoded under ``lora``) and how many of its tokens are already in it; None if
        all are busy. ``running``: each running sequence's slot, adapter and the tokens its cells hold."""
        limit = len(prompt) - 1  # the last prompt token is always decoded, for its logits
        best_cached, cached_len = _longest_match(self._cached_items(), lora, prompt, limit)
        best_running, running_len = _longest_match(running, lora, prompt, limit)
        if best_cached is not None and cached_len >= max(self.min_reuse, running_len):
            del self._cached[best_cached]
            lc.llama_memory_seq_rm(self.memory, best_cached, cached_len, -1)
            return best_cached, cached_len
        free = self._take()
        if free is None:
            return None
        if best_running is not None and running_len >= self.min_reuse:
            lc.llama_memory_seq_cp(self.memory, best_running, free, 0, running_len)
            return free, running_len
        return free, 0

    def release(self, slot: int, held: list[int], lora: LoraKey) -> None:
        """A sequence is done; keep what its cells hold for the next prompt that starts the same way."""
        if len(held) >= self.min_reuse:
            self._cached[slot] = (lora, held)
        else:
            self.drop(slot)

    def drop(self, slot: int) -> None:
        lc.llama_memory_seq_rm(self.memory, slot, -1, -1)
        self._free.append(slot)

    def evict_one(self, keep: int | None = None) -> bool:
        """Drop the least recently cached prefix (never ``keep``); False if there is none to drop."""
        victim = next((slot for slot in self._cached if slot != keep), None)
        if victim is None:
            return False
        del self._cached[victim]
        self.drop(victim)
        return True

    def _take(self) -> int | None:
        if not self._free and not self.evict_one():
            return None
        return self._free.pop()
