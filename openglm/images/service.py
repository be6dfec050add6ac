"""The image models a server offers ([[images]] in the catalog), their providers, and pictures drawn for an
account and kept as its files — all or none of a batch, within its storage quota.

Pictures are billed once drawn: the provider was paid for them. So room is checked before drawing, for the whole
batch at the size the largest picture of that model and size had so far (only "any room" before the first), and
again for the pictures' real total once drawn; pictures that still cannot be kept (bigger than the estimate, or a
concurrent upload took the room) are all removed again, and the call fails with 1210 saying they were drawn and
charged. No picture is kept unbilled, and none is billed silently.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass

from ..catalog import Catalog, ModelSpec
from ..errors import InvalidFieldError, ModelNotFoundError, StorageQuotaError
from ..files.store import FileRecord, FileStore
from ..serving.usage import Tally
from .providers import GeneratedImage, ImageProvider, create_provider

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Picture:
    image: GeneratedImage
    file: FileRecord | None  # None: not kept (answered inline)


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


class ImageService:
    def __init__(self, catalog: Catalog):
        self.images = catalog.images
        self._providers: dict[str, ImageProvider] = {}
        self._largest: dict[tuple[str, str], int] = {}  # bytes of the largest picture drawn, per model and size

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

    async def draw(
        self,
        account_id: str,
        spec: ModelSpec,
        prompt: str,
        *,
        n: int = 1,
        size: str | None = None,
        files: FileStore | None,
        tally: Tally,
    ) -> list[Picture]:
        """``n`` pictures for the account, kept as its files when ``files`` is given (else answered inline), and
        counted in ``tally`` once drawn. StorageQuotaError before drawing when the batch will not fit, or after it
        (nothing kept, the pictures billed) when the drawn pictures do not."""
        if files is not None:
            await files.quota.check(account_id, n * self._largest.get((spec.id, size or ""), 1))
        drawn = await self.generate(spec, prompt, n, size)
        tally.images = len(drawn)  # billed from here: the provider was paid for them
        if drawn:
            key = (spec.id, size or "")
            self._largest[key] = max(self._largest.get(key, 0), *(len(image.png) for image in drawn))
        if files is None:
            return [Picture(image, None) for image in drawn]
        return await self._keep(account_id, drawn, files)

    async def _keep(self, account_id: str, drawn: list[GeneratedImage], files: FileStore) -> list[Picture]:
        kept: list[Picture] = []
        try:
            await files.quota.check(account_id, sum(len(image.png) for image in drawn))
            for number, image in enumerate(drawn):
                record = await files.create(
                    account_id, "image-generation", f"image-{number}.png", image.png, "image/png"
                )
                kept.append(Picture(image, record))
        except BaseException as exc:
            for picture in kept:  # all of the batch or none of it
                assert picture.file is not None
                await files.delete(account_id, picture.file.id)
            if isinstance(exc, StorageQuotaError):
                raise StorageQuotaError(
                    f"{len(drawn)} picture(s) were drawn, and are charged (the image provider was paid for them), "
                    f"but none could be kept: {exc.message}; or ask for response_format b64_json"
                ) from None
            raise
        return kept

    async def close(self) -> None:
        for provider in self._providers.values():
            await provider.close()
