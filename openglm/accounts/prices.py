"""The price list: every model of the catalog with the prices metering charges for it."""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog import Catalog, PricedModel
from .metering import PriceBook


@dataclass(frozen=True)
class ModelPrice:
    model: str
    kind: str  # chat | image | embedding
    prices: PriceBook


def price_list(catalog: Catalog) -> list[ModelPrice]:
    """Chat models, then image models, then embedding models, each once (not once per alias)."""
    groups: list[tuple[str, list[PricedModel]]] = [
        ("chat", list(catalog.specs)),
        ("image", list(catalog.images.values())),
        ("embedding", list(catalog.embeddings.values())),
    ]
    out: list[ModelPrice] = []
    for kind, specs in groups:
        seen: set[str] = set()
        for spec in specs:
            if spec.id not in seen:
                seen.add(spec.id)
                out.append(ModelPrice(spec.id, kind, PriceBook.of(spec.effective_prices())))
    return out
