"""What a run gives back to whoever asked for it: a stream of chunks, or a result to await. A route renders one as
server-sent events or JSON; a job collects it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass
class Streamed(Generic[T]):
    """Chunks as they are made; ``close`` runs when the consumer is done with them, however it ended (stop
    generating, settle the call): a consumer must call it."""

    chunks: AsyncIterator[T]
    close: Callable[[], None]


@dataclass
class Collected(Generic[T]):
    """The whole answer, once ``result`` is awaited (metered inside it). Not awaited, it is closed: nothing ran."""

    result: Coroutine[Any, Any, T]


Outcome = Streamed[Any] | Collected[Any]
