"""Small asyncio helpers the event-loop code shares."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def to_the_end(work: Awaitable[T]) -> tuple[T, bool]:
    """``work`` awaited to its end even if this task is cancelled meanwhile: its result, and whether a cancel came
    (the caller decides what to do with it — re-raise, or drop it because acting on it now would lose something
    already paid for). Its own failure, or its own cancellation, propagates as usual."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while True:
        try:
            return await asyncio.shield(task), cancelled
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
