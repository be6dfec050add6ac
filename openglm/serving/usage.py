"""What a call has delivered so far (``Tally``, which the response code updates as output reaches the client),
and the most it can use (``UsageBound``, which metering reserves the cost of before the engine is touched)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

# Tokens a tokenizer may add that are not in the text: BOS/EOS, a SentencePiece dummy prefix, a BERT [CLS]/[SEP].
TOKENIZER_EXTRAS = 16


def new_usage_id(kind: str) -> str:
    """The id of a billable call (the usage record's, and the response id its client sees): ``kind`` (chatcmpl,
    cmpl, emb, img, ret, asst, kb) and 96 random bits. Every usage id comes from here, and none from the call's
    data: an id made of, say, a document and a timestamp collides when the same data recurs, and the second
    charge is refused by the database."""
    return f"{kind}-{secrets.token_hex(12)}"


@dataclass
class Tally:
    """``completion_tokens``: what reached the client; ``generated``: what the engine produced, delivered or not
    (an answer collected whole, a chunk not yet taken). A call that ends with an error is billed for
    ``generated`` (``MeteredCall.settle``): the engine did that work even though the answer never arrived whole."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    images: int = 0
    generated: int = 0

    @property
    def delivered_anything(self) -> bool:
        return bool(self.completion_tokens or self.images)


@dataclass(frozen=True)
class UsageBound:
    """An upper bound on what a request can be billed for: its cost at the model's prices is what admission
    reserves against the account's balance."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    images: int = 0

    def __add__(self, other: UsageBound) -> UsageBound:
        return UsageBound(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.images + other.images,
        )


NOTHING = UsageBound()


def token_bound(text: str, limit: int | None = None) -> int:
    """At least as many tokens as any tokenizer makes of ``text``, without running one: every token covers at least
    one byte of the UTF-8 text (a byte-fallback token one, a special token such as ``<|user|>`` several), so the
    byte count plus what a tokenizer adds on its own is a sound bound. ``limit``: the most the model accepts (a
    longer input is refused, not billed)."""
    bound = len(text.encode("utf-8", errors="surrogatepass")) + TOKENIZER_EXTRAS
    return bound if limit is None else min(bound, limit)


def generation_bound(prompt: str, max_tokens: int | None, context_length: int, copies: int = 1) -> UsageBound:
    """One prompt answered ``copies`` times (``n``): billed for its prompt once and each answer's tokens. An engine
    never lets prompt and answer together exceed the context, so each is below it; ``max_tokens`` None: the
    answer may fill the context."""
    room = max(context_length - 1, 1)
    answer = room if max_tokens is None else min(max_tokens, room)
    return UsageBound(prompt_tokens=token_bound(prompt, room), completion_tokens=answer * copies)
