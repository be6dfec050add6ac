"""Per-conversation tool state that is dropped when the conversation goes quiet (and capped in number)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")
IDLE_SECONDS = 900.0  # as long as an idle conversation keeps its kernel


class ConversationState(Generic[V]):
    def __init__(
        self,
        *,
        idle_seconds: float = IDLE_SECONDS,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.idle_seconds = idle_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()  # least recently used first

    def get(self, conversation: str) -> V | None:
        self._reap()
        entry = self._entries.get(conversation)
        if entry is None:
            return None
        self.set(conversation, entry[1])
        return entry[1]

    def setdefault(self, conversation: str, make: Callable[[], V]) -> V:
        value = self.get(conversation)
        if value is None:
            value = make()
            self.set(conversation, value)
        return value

    def set(self, conversation: str, value: V) -> None:
        self._entries[conversation] = (self._clock(), value)
        self._entries.move_to_end(conversation)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        self._reap()
        return len(self._entries)

    def _reap(self) -> None:
        cutoff = self._clock() - self.idle_seconds
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest[0] >= cutoff:
                break
            self._entries.popitem(last=False)
