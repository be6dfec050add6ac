"""One choice's output path: engine chunks → stop strings → tool-call parser → events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ..engines.base import GenerationHandle, TokenLogprob
from .toolcalls.base import ContentDelta, Delta, ToolCallStream, partial_suffix


class StopMatcher:
    """Cuts text at the first stop string; holds back what may be the start of one."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        text = self._held + text
        self._held = ""
        if not self.stops:
            return text, False
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if hits:
            return text[: min(hits)], True
        keep = max(partial_suffix(text, s) for s in self.stops)
        if keep:
            text, self._held = text[:-keep], text[-keep:]
        return text, False

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


@dataclass
class ChoiceEvent:
    index: int
    deltas: list[Delta] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    n_tokens: int = 0
    finish_reason: str | None = None


class ChoiceDecoder:
    """Turns one generation into events; the same events feed SSE and JSON responses."""

    def __init__(self, index: int, stops: list[str], tool_stream: ToolCallStream | None):
        self.index = index
        self.stop = StopMatcher(stops)
        self.tools = tool_stream

    def _deltas(self, text: str, final: bool) -> list[Delta]:
        if self.tools is None:
            return [ContentDelta(text)] if text else []
        deltas = self.tools.feed(text) if text else []
        return deltas + self.tools.finish() if final else deltas

    async def events(self, handle: GenerationHandle) -> AsyncIterator[ChoiceEvent]:
        async for chunk in handle:
            text, stopped = self.stop.feed(chunk.text)
            finish = "stop" if stopped else chunk.finish_reason
            if finish is not None and not stopped:
                text += self.stop.flush()
            event = ChoiceEvent(self.index, self._deltas(text, finish is not None), chunk.logprobs, chunk.n_tokens)
            if finish is not None:
                event.finish_reason = self._finish_reason(finish)
                if stopped:
                    event.n_tokens += await self._close(handle)
                yield event
                return
            if event.deltas or event.logprobs or event.n_tokens:
                yield event

    @staticmethod
    async def _close(handle: GenerationHandle) -> int:
        """Tokens generated after the stop string: counted when the engine ends by itself, else cancelled."""
        if not handle.ends_at_stop_strings:
            handle.cancel()
            return 0
        return sum([chunk.n_tokens async for chunk in handle])

    def _finish_reason(self, reason: str) -> str:
        if reason == "stop" and self.tools is not None and self.tools.call_ids:
            return "tool_calls"
        return reason
