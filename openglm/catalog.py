"""The model catalog: which models exist, where their weights live, how to talk to them."""

from __future__ import annotations

import importlib.util
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ModelNotFoundError


class Prices(BaseModel):
    """CNY: ``input``/``output`` per 1K tokens (embeddings bill input tokens), ``image`` per generated image."""

    model_config = ConfigDict(extra="forbid")

    input: Decimal = Field(default=Decimal(0), ge=0, decimal_places=9)
    output: Decimal = Field(default=Decimal(0), ge=0, decimal_places=9)
    image: Decimal = Field(default=Decimal(0), ge=0, decimal_places=9)


# The early-2024 Zhipu price list (CNY), used for catalog entries with these names that set no prices.
SEED_PRICES: dict[str, Prices] = {
    "glm-4": Prices(input=Decimal("0.1"), output=Decimal("0.1")),
    "glm-4v": Prices(input=Decimal("0.1"), output=Decimal("0.1")),
    "glm-3-turbo": Prices(input=Decimal("0.005"), output=Decimal("0.005")),
    "charglm-3": Prices(input=Decimal("0.015"), output=Decimal("0.015")),
    "embedding-2": Prices(input=Decimal("0.0005")),
    "cogview-3": Prices(image=Decimal("0.25")),
}


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

    def effective_prices(self) -> Prices:
        if self.prices is not None:
            return self.prices
        for name in (self.id, *self.aliases):
            if name in SEED_PRICES:
                return SEED_PRICES[name]
        return Prices()


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
        self, specs: list[ModelSpec], agents: list[AgentSpec] | None = None, images: list[ModelSpec] | None = None
    ):
        self.specs = specs
        self.agents = {agent.id: agent for agent in agents or []}
        # Image models ([[images]]): ``engine`` names an image provider, ``source`` its URL or model path.
        self.images = {name: spec for spec in images or [] for name in (spec.id, *spec.aliases)}
        self._by_name: dict[str, ModelSpec] = {}
        for spec in specs:
            for name in (spec.id, *spec.aliases):
                if name in self._by_name:
                    raise CatalogError(f"model name {name!r} is used twice in the catalog")
                self._by_name[name] = spec
        for agent in self.agents.values():
            if agent.id in self._by_name:
                raise CatalogError(f"agent {agent.id!r} has the name of a model")
            if agent.model not in self._by_name:
                raise CatalogError(f"agent {agent.id!r} runs on {agent.model!r}, which is not in the catalog")

    @classmethod
    def from_file(cls, path: Path) -> Catalog:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            return cls(
                [ModelSpec.model_validate(entry) for entry in data.get("models", [])],
                [AgentSpec.model_validate(entry) for entry in data.get("agents", [])],
                [ModelSpec.model_validate(entry) for entry in data.get("images", [])],
            )
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
