"""What a call has delivered so far, for metering; the response code updates it as output reaches the client."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Tally:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    images: int = 0

    @property
    def delivered_anything(self) -> bool:
        return bool(self.completion_tokens or self.images)
