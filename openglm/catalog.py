"""The model catalog: which models exist, where their weights live, how to talk to them."""

from __future__ import annotations

import importlib.util
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ModelNotFoundError
from .safety.config import ModelSafety, SafetyConfig


class Prices(BaseModel):
    """CNY: ``input``/``output`` per 1K tokens (embeddings bill input tokens), ``image`` per generated image,
    ``fine_tuning`` per 1K trained tokens (a job's tokens × epochs; 0, free, unless the entry sets it); ``batch``:
    the fraction of the first three a batch line pays."""

    model_config = ConfigDict(extra="forbid")

    input: Decimal = Field(default=Decimal(0), ge=0, decimal_places=9)
    output: Decimal = Field(default=Decimal(0), ge=0, decimal_places=9)
    image: Decimal = Field(default=Decimal(0), ge=0, decimal_places=9)
    fine_tuning: Decimal = Field(default=Decimal(0), ge=0, decimal_places=9)
    # The fraction of the input, output and image prices a batch line pays (OpenAI's batch discount: half).
    batch: Decimal = Field(default=Decimal("0.5"), ge=0, le=1, decimal_places=6)

    def for_batches(self) -> Prices:
        """What a batch line pays."""
        nano = Decimal("1e-9")  # prices are whole nano-yuan
        return self.model_copy(
            update={name: (getattr(self, name) * self.batch).quantize(nano) for name in ("input", "output", "image")}
        )


# The early-2024 Zhipu price list (CNY), used for catalog entries with these names that set no prices.
SEED_PRICES: dict[str, Prices] = {
    "glm-4": Prices(input=Decimal("0.1"), output=Decimal("0.1")),
    "glm-4v": Prices(input=Decimal("0.1"), output=Decimal("0.1")),
    "glm-3-turbo": Prices(input=Decimal("0.005"), output=Decimal("0.005")),
    "charglm-3": Prices(input=Decimal("0.015"), output=Decimal("0.015")),
    "embedding-2": Prices(input=Decimal("0.0005")),
    "cogview-3": Prices(image=Decimal("0.25")),
}


def seed_prices(prices: Prices | None, names: tuple[str, ...]) -> Prices:
    """An entry's own prices, else the seed price of its id or an alias, else free."""
    if prices is not None:
        return prices
    for name in names:
        if name in SEED_PRICES:
            return SEED_PRICES[name]
    return Prices()


class PricedModel(Protocol):
    """What metering needs of a catalog entry (chat, image or embedding model)."""

    @property
    def id(self) -> str: ...

    def effective_prices(self) -> Prices: ...


class ModelVariant(BaseModel):
    """Another name for a catalog model, with prices of its own: the same engine and weights, its own line on the
    bill (``[[models.variants]]``: ``charglm-3`` on the default model). None: the seed price of its name, else
    the model's."""

    model_config = ConfigDict(extra="forbid")

    id: str
    prices: Prices | None = None


class ModelSpec(BaseModel):
    id: str
    aliases: list[str] = Field(default_factory=list)
    engine: str = "llamacpp"
    source: str
    template: str = "auto"
    tool_parser: str = "auto"
    context_length: int = Field(default=4096, gt=0)
    # None: the seed price for the entry's id or an alias, else free.
    prices: Prices | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    owned_by: str = "openglm"
    # A LoRA adapter (a llama.cpp adapter GGUF: a path or "package:<module>/<file>") that All Tools agents running
    # on this model (catalog agents, GLMs, the Assistant API) plan with; plain chat with the model stays the base.
    agent_adapter: str | None = None
    # Who writes an agent's plain reply — a turn where the adapter chose no tool: "adapter", or "base" (the adapter
    # only decides; the reply is written again on the base weights, so tuning for tools leaves plain chat as it was).
    agent_plain_replies: Literal["adapter", "base"] = "adapter"
    # With plain replies on the base: how sure the adapter must be that a user's message needs a tool — the
    # probability of the first token of its call — for the call to go on; a less certain call is dropped and the
    # base answers. 0 keeps every call (benchmarks/bench_tool_decision.py measures the trade).
    agent_tool_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    # The model's own content-safety checkers ({input = [...], output = [...]}); None: the catalog's [safety].
    safety: ModelSafety | None = None
    variants: list[ModelVariant] = Field(default_factory=list)
    # The model sees images (GLM-4V, Qwen-VL...): image parts reach it — a remote engine passes them on as chat
    # messages; the llamacpp engine reads them with the model's projector, ``mmproj``.
    vision: bool = False
    # llamacpp: the model's image projector (an mmproj GGUF for llama.cpp's multimodal library: a path or
    # "package:<module>/<file>"). Giving one makes the model a vision model.
    mmproj: str | None = None

    @model_validator(mode="after")
    def _confidence_judges_a_deciding_adapter(self) -> ModelSpec:
        if self.agent_tool_confidence > 0 and (self.agent_adapter is None or self.agent_plain_replies != "base"):
            raise ValueError(
                f"model {self.id!r}: agent_tool_confidence judges the calls of an agent_adapter whose plain replies "
                'are the base\'s: set agent_adapter and agent_plain_replies = "base", or leave it out'
            )
        return self

    @model_validator(mode="after")
    def _projector_sees(self) -> ModelSpec:
        if self.mmproj is not None:
            if self.engine != "llamacpp":
                raise ValueError(f"model {self.id!r}: mmproj is for the llamacpp engine (a remote server has its own)")
            self.vision = True
        return self

    def effective_prices(self) -> Prices:
        return seed_prices(self.prices, (self.id, *self.aliases))


class EmbeddingSpec(BaseModel):
    """An embedding model ([[embeddings]]): ``engine`` names an embedding backend, ``source`` its model (a
    directory, ``package:<module>/<dir>``, a GGUF path, or an OpenAI-compatible base URL)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    aliases: list[str] = Field(default_factory=list)
    engine: str = "sentence_transformers"
    source: str
    dimensions: int = Field(gt=0)
    # Tokens per input as the model reads them (special tokens included); None: the model's own limit.
    max_input_tokens: int | None = Field(default=None, gt=0)
    max_inputs: int = Field(default=2048, ge=1)
    max_request_tokens: int = Field(default=300_000, ge=1)
    # Matryoshka models: a smaller ``dimensions`` keeps the first components, renormalized to unit length.
    truncate_dimensions: bool = False
    preload: bool = False  # load in the lifespan instead of on the first request
    prices: Prices | None = None  # ``input`` per 1K tokens
    options: dict[str, Any] = Field(default_factory=dict)
    owned_by: str = "openglm"

    def effective_prices(self) -> Prices:
        return seed_prices(self.prices, (self.id, *self.aliases))


class HttpApiSpec(BaseModel):
    """Server-side HTTP tools: an OpenAPI document (a file path, or the document inline) and how to call it."""

    model_config = ConfigDict(extra="forbid")

    openapi: str
    base_url: str | None = None
    # {"type": "bearer", "value": ...} | {"type": "header" | "query", "name": ..., "value": ...}
    auth: dict[str, str] = Field(default_factory=dict)


class AgentSpec(BaseModel):
    """An All Tools agent: a name clients send as ``model``, run as a tool-using loop over a catalog model."""

    model_config = ConfigDict(extra="forbid")

    id: str
    model: str
    max_rounds: int = Field(default=10, ge=1, le=50)
    system: str | None = None
    http_apis: list[HttpApiSpec] = Field(default_factory=list)
    # True: plan on the model's base weights even when the model has an ``agent_adapter`` (to compare, or opt out).
    base_only: bool = False


class CatalogError(ValueError):
    """The catalog file is unreadable or inconsistent."""


def resolve_source(source: str) -> str:
    """Turn ``package:<module>/<file>`` into a path without importing the module."""
    if not source.startswith("package:"):
        return source
    module, _, relative = source.removeprefix("package:").partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise CatalogError(f"package {module!r} named by source {source!r} is not installed")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / relative
        if candidate.exists():
            return str(candidate)
    raise CatalogError(f"{relative!r} not found inside package {module!r}")


class Catalog:
    def __init__(
        self,
        specs: list[ModelSpec],
        agents: list[AgentSpec] | None = None,
        images: list[ModelSpec] | None = None,
        embeddings: list[EmbeddingSpec] | None = None,
        safety: SafetyConfig | None = None,
    ):
        self.specs = specs
        self.safety = safety or SafetyConfig()
        self.path: Path | None = None  # the file it was read from (``from_file``)
        self.agents = {agent.id: agent for agent in agents or []}
        # Image models ([[images]]): ``engine`` names an image provider, ``source`` its URL or model path.
        self.images = {name: spec for spec in images or [] for name in (spec.id, *spec.aliases)}
        # Embedding models ([[embeddings]]), by every name; a namespace of their own, like images.
        self.embeddings: dict[str, EmbeddingSpec] = {}
        for embedding in embeddings or []:
            for name in (embedding.id, *embedding.aliases):
                if name in self.embeddings:
                    raise CatalogError(f"embedding model name {name!r} is used twice in the catalog")
                self.embeddings[name] = embedding
        self._by_name: dict[str, ModelSpec] = {}
        # Variants by name: the model's entry under the variant's id and prices (served by the model's engine).
        self.variants: dict[str, ModelSpec] = {}
        for spec in specs:
            for name in (spec.id, *spec.aliases, *(v.id for v in spec.variants)):
                if name in self._by_name:
                    raise CatalogError(f"model name {name!r} is used twice in the catalog")
                self._by_name[name] = spec
            for variant in spec.variants:
                prices = variant.prices or seed_prices(None, (variant.id,))
                if variant.prices is None and variant.id not in SEED_PRICES:
                    prices = spec.effective_prices()
                self.variants[variant.id] = spec.model_copy(
                    update={"id": variant.id, "aliases": [], "variants": [], "prices": prices}
                )
        for agent in self.agents.values():
            if agent.id in self._by_name:
                raise CatalogError(f"agent {agent.id!r} has the name of a model")
            if agent.model not in self._by_name:
                raise CatalogError(f"agent {agent.id!r} runs on {agent.model!r}, which is not in the catalog")

    @classmethod
    def from_file(cls, path: Path) -> Catalog:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            catalog = cls(
                [ModelSpec.model_validate(entry) for entry in data.get("models", [])],
                [AgentSpec.model_validate(entry) for entry in data.get("agents", [])],
                [ModelSpec.model_validate(entry) for entry in data.get("images", [])],
                [EmbeddingSpec.model_validate(entry) for entry in data.get("embeddings", [])],
                SafetyConfig.model_validate(data.get("safety", {})),
            )
            catalog.path = path
            return catalog
        except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
            raise CatalogError(f"cannot read model catalog {path}: {exc}") from exc

    def lookup(self, name: str) -> ModelSpec:
        try:
            return self._by_name[name]
        except KeyError:
            raise ModelNotFoundError(
                f"模型不存在 / model {name!r} does not exist; available: " + ", ".join(sorted(self._by_name))
            ) from None

    def names(self) -> list[str]:
        return list(self._by_name)
