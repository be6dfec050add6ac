"""The image models a server offers ([[images]] in the catalog) and their providers."""

from __future__ import annotations

import base64

from ..catalog import Catalog, ModelSpec
from ..errors import InvalidFieldError, ModelNotFoundError
from .providers import GeneratedImage, ImageProvider, create_provider


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


class ImageService:
    def __init__(self, catalog: Catalog):
        self.images = catalog.images
        self._providers: dict[str, ImageProvider] = {}

    @property
    def available(self) -> bool:
        return bool(self.images)

    def resolve(self, name: str | None) -> ModelSpec:
        if not self.images:
            raise InvalidFieldError("no image model is configured on this server (add [[images]] to the catalog)")
        if name is None:
            return next(iter(self.images.values()))
        try:
            return self.images[name]
        except KeyError:
            known = ", ".join(sorted(self.images))
            raise ModelNotFoundError(f"image model {name!r} does not exist; available: {known}") from None

    async def generate(self, spec: ModelSpec, prompt: str, n: int = 1, size: str | None = None) -> list[GeneratedImage]:
        provider = self._providers.get(spec.id)
        if provider is None:
            provider = self._providers[spec.id] = create_provider(spec)
        return await provider.generate(prompt, n, size)

    async def close(self) -> None:
        for provider in self._providers.values():
            await provider.close()
