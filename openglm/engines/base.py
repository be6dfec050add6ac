"""The engine interface: prompt in, a stream of generated text pieces out.

Engines know nothing of HTTP, chat messages, tools or billing. The chat
service renders the prompt, asks for a generation and post-processes text.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import AdapterUnsupportedError, UnsupportedError
from ..registry import Registry

if TYPE_CHECKING:
    from ..catalog import ModelSpec
    from ..config import Settings


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    logprobs: bool = False
    top_logprobs: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass(frozen=True)
class AdapterRef:
    """A LoRA adapter to serve a request with, on the engine's base model.

    ``key`` names the adapter stably (a fine-tuned model's id): a remote engine sends it as the model name, and
    the llamacpp engine keys its loaded adapters and prefix cache by it with ``path`` (a llama.cpp LoRA adapter
    GGUF) and ``scale`` (llama.cpp multiplies each delta by ``scale * alpha / rank``).
    """

    key: str
    path: str
    scale: float = 1.0

    @property
    def identity(self) -> tuple[str, str, float]:
        """What the KV values computed under this adapter depend on."""
        return (self.key, self.path, self.scale)


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    sampling: SamplingParams
    max_tokens: int | None = None
    grammar: str | None = None
    # With triggers the grammar is lazy: free text until the output matches one of these regexes (whole-output
    # match, llama.cpp's lazy grammars), then constrained from the regex's first group on. Auto-mode tool calls.
    grammar_triggers: tuple[str, ...] = ()
    # Extra stop markers (special tokens of the chat template, e.g. "<|observation|>").
    stop_markers: tuple[str, ...] = ()
    # The caller's stop strings. The chat service cuts the text at them itself; an engine
    # may also stop there (a remote one does, so that it still reports usage).
    stop: tuple[str, ...] = ()
    # Serve with this LoRA adapter on the base model (a fine-tune); None: the base model itself.
    adapter: AdapterRef | None = None
    # A request with images, to a model that sees: the chat messages in OpenAI's format (images as data: URLs) for
    # an engine that takes them (``Engine.takes_messages``); ``prompt`` is then the text-only rendering (bounds).
    messages: tuple[dict[str, Any], ...] | None = None
    # A request with images, to an engine that reads them itself (``Engine.takes_images``): the images' bytes in
    # order, and the marker that stands for each of them in ``prompt`` (made per request: no text can forge it).
    images: tuple[bytes, ...] = ()
    image_marker: str = ""
    # A batch line: an engine that can tell serves interactive requests first (the llamacpp engine queues it after
    # them, pauses it while one is reading its prompt, and gives up its slot to one that finds none free).
    background: bool = False


@dataclass(frozen=True)
class TopLogprob:
    token: str
    logprob: float
    bytes: list[int]


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    bytes: list[int]
    top: list[TopLogprob]


@dataclass
class GenerationChunk:
    text: str
    n_tokens: int = 1
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None  # "stop" | "length" on the last chunk


class GenerationHandle(abc.ABC):
    """One running generation. Iterate for chunks; ``cancel`` frees its slot."""

    prompt_tokens: int = 0
    # True when the engine itself ends the generation at the request's stop strings: the
    # caller then reads on to the end (for usage) instead of cancelling.
    ends_at_stop_strings: bool = False

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[GenerationChunk]: ...

    @abc.abstractmethod
    def cancel(self) -> None: ...


class Engine(abc.ABC):
    """An engine serves one catalog entry."""

    spec: ModelSpec
    # Whether ``submit`` serves a request's LoRA ``adapter`` on this engine's model; engines that cannot refuse
    # such a request with AdapterUnsupportedError (``refuse_adapter``).
    serves_adapters: bool = False
    # Whether ``submit`` takes a request's chat ``messages`` (images for a model that sees) instead of its prompt.
    takes_messages: bool = False
    # Whether ``submit`` reads a request's ``images`` itself (a llamacpp model with a projector).
    takes_images: bool = False
    # Whether generations asked for logprobs carry them (``agent_tool_confidence`` needs the probe's first token's).
    reports_logprobs: bool = True

    def refuse_adapter(self, request: GenerationRequest) -> None:
        if request.adapter is not None and not self.serves_adapters:
            raise AdapterUnsupportedError(
                f"model {self.spec.id}: the {self.spec.engine} engine cannot serve LoRA adapters "
                f"(asked for {request.adapter.key})"
            )

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Load weights, open connections."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release everything ``start`` took."""

    @abc.abstractmethod
    async def submit(self, request: GenerationRequest) -> GenerationHandle:
        """Validate and enqueue; errors about the request are raised here, before any output."""

    async def count_tokens(self, prompt: str) -> int:
        """The tokens ``prompt`` (a rendered prompt) takes, as ``submit`` would count them."""
        raise UnsupportedError(f"model {self.spec.id}: the {self.spec.engine} engine cannot count tokens")

    def stats(self) -> dict[str, int]:
        """Load figures for /health (running and queued generations)."""
        return {}

    def template_hints(self) -> dict[str, str]:
        """What the weights say about their chat format (architecture, jinja template, tokens)."""
        return {}


EngineFactory = type[Engine]
engines: Registry[EngineFactory] = Registry("engine")


def create_engine(spec: ModelSpec, settings: Settings) -> Engine:
    # Importing the modules registers the built-in engines; kept lazy so that
    # importing openglm does not load llama.cpp.
    from . import llamacpp, remote, scripted  # noqa: F401

    factory = engines.get(spec.engine)
    return factory(spec, settings)  # type: ignore[call-arg]
