"""How a knowledge base wants its documents cut, and the Zhipu parameters that say the same thing."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InvalidFieldError
from ..protocol.knowledge import MAX_CUSTOM_SEPARATORS, MAX_SEPARATOR_CHARS

# Tried in order on a piece that is too big: paragraphs, lines, sentences (Chinese and Western), clauses, words.
DEFAULT_SEPARATORS = ("\n\n", "\n", "。", "！", "？", ". ", "! ", "? ", "；", "; ", "，", ", ", " ")
ZHIPU_SENTENCE_SIZES = range(20, 2001)  # Zhipu's documented range for ``sentence_size`` (characters)
# A user's separators are bounded on the wire (protocol/knowledge.py) and again here, in ``from_zhipu``, for the
# form upload's decoded list.


@dataclass(frozen=True)
class ChunkingOptions:
    """Per knowledge base. Every chunk keeps ``count_tokens(embed_text) <= chunk_tokens``, and
    ``len(text) <= max_chars`` when that is set.

    ``separators`` are *preferences*: where to cut a piece that is too big, tried in order. ``boundaries`` are
    *rules*: the text is always cut at every occurrence (the boundary itself is left out of both chunks) and the
    pieces on either side never share a chunk or an overlap. Table rows are never cut by either.
    """

    chunk_tokens: int = 256
    overlap_tokens: int = 32  # how much of a chunk's end the next chunk of the same section repeats
    max_chars: int | None = None
    separators: tuple[str, ...] = DEFAULT_SEPARATORS
    boundaries: tuple[str, ...] = ()
    heading_context: bool = True  # put the heading path (and a table's header) before embed_text
    merge_sections: bool = True  # small neighbouring sections under the same top heading may share a chunk

    def __post_init__(self) -> None:
        if self.chunk_tokens < 16:
            raise InvalidFieldError(f"chunk_tokens must be at least 16, not {self.chunk_tokens}")
        if not 0 <= self.overlap_tokens <= self.chunk_tokens // 2:
            raise InvalidFieldError(
                f"overlap_tokens must be between 0 and half of chunk_tokens, not {self.overlap_tokens}"
            )
        if self.max_chars is not None and self.max_chars < 20:
            raise InvalidFieldError(f"max_chars must be at least 20, not {self.max_chars}")
        if not all(self.separators) or not all(self.boundaries):
            raise InvalidFieldError("separators and boundaries must not be empty strings")

    @classmethod
    def from_zhipu(
        cls,
        sentence_size: int | None = None,
        custom_separator: Sequence[str] | None = None,
        *,
        chunk_tokens: int = 256,
        overlap_tokens: int = 32,
    ) -> ChunkingOptions:
        """Zhipu's upload parameters: ``sentence_size`` (20-2000) is ``max_chars``, and ``custom_separator``
        (cut here, always) is ``boundaries``. ``chunk_tokens`` is the embedding model's limit, which still holds."""
        if sentence_size is not None and sentence_size not in ZHIPU_SENTENCE_SIZES:
            raise InvalidFieldError(f"sentence_size must be between 20 and 2000, not {sentence_size}")
        boundaries = tuple(custom_separator or ())
        if len(boundaries) > MAX_CUSTOM_SEPARATORS:
            raise InvalidFieldError(
                f"custom_separator: at most {MAX_CUSTOM_SEPARATORS} separators, not {len(boundaries)}"
            )
        if not all(isinstance(item, str) and 0 < len(item) <= MAX_SEPARATOR_CHARS for item in boundaries):
            raise InvalidFieldError(
                f"custom_separator must be a list of non-empty strings of at most {MAX_SEPARATOR_CHARS} characters"
            )
        return cls(chunk_tokens, overlap_tokens, sentence_size, boundaries=boundaries)


# Each CJK character, each run of other word characters, each punctuation mark: roughly a subword tokenizer's count.
_APPROXIMATE_TOKEN = re.compile(
    r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff]+|[^\w\s]"
)


def approximate_tokens(text: str) -> int:
    """A tokenizer-free count, for embedding models whose tokenizer is not at hand (remote APIs)."""
    return len(_APPROXIMATE_TOKEN.findall(text))
